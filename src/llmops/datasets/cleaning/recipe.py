"""Cleaning recipes: an ordered list of registered steps with their parameters.

A recipe is YAML (text or a file), a Python list, or command-line step specs::

    steps:
      - normalize_unicode: {form: NFKC}
      - clean_whitespace            # a bare name: the step's defaults
      - drop_empty: {fields: [input]}

The top level may also be the list itself (without ``steps:``). Each item is a step name or a mapping
with exactly one key, the step name, whose value is the parameter mapping (or empty).

:meth:`Recipe.parse` checks only the shape; :meth:`Recipe.build` instantiates every step through the
registry, which validates its parameters, so that every error surfaces before a row is read. Errors are
:class:`~llmops.datasets.cleaning.base.CleaningError` with one line naming the step by its number from 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops.datasets.cleaning.base import CleaningError, CleaningStep, StepContext, StepRegistry

_TOP_LEVEL_KEYS = frozenset({"steps", "name", "description"})


@dataclass(frozen=True)
class RecipeStep:
    """One step of a recipe as written: its registered name and its parameters."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    """An ordered list of steps; build it with one of the ``from_*`` constructors or :meth:`parse`."""

    steps: tuple[RecipeStep, ...]

    @classmethod
    def parse(cls, source: str | Path | Sequence[Any] | Mapping[str, Any]) -> Recipe:
        """A recipe from a file path (:class:`Path`), YAML text (:class:`str`), a list of steps, or a
        mapping with ``steps``."""
        if isinstance(source, Path):
            return cls.from_file(source)
        if isinstance(source, str):
            return cls.from_yaml(source)
        return cls.from_data(source)

    @classmethod
    def from_file(cls, path: Path | str) -> Recipe:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CleaningError(
                f"cannot read recipe {path}: {getattr(exc, 'strerror', None) or exc}"
            ) from exc
        return cls.from_yaml(text, origin=str(path))

    @classmethod
    def from_yaml(cls, text: str, *, origin: str = "recipe") -> Recipe:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise CleaningError(f"{origin}: not valid YAML: {_yaml_problem(exc)}") from exc
        return cls.from_data(data, origin=origin)

    @classmethod
    def from_data(cls, data: Any, *, origin: str = "recipe") -> Recipe:
        """A recipe from parsed data: a mapping with ``steps`` or the list of steps itself."""
        if isinstance(data, Mapping):
            unknown = sorted(str(key) for key in data if key not in _TOP_LEVEL_KEYS)
            if unknown:
                raise CleaningError(
                    f"{origin}: unknown top-level key(s) {', '.join(unknown)}; expected 'steps'"
                )
            data = data.get("steps")
        if not isinstance(data, Sequence) or isinstance(data, str | bytes):
            raise CleaningError(f"{origin}: expected a list of steps (under 'steps:'), got {_kind(data)}")
        if not data:
            raise CleaningError(f"{origin}: the recipe has no steps")
        return cls(tuple(_parse_step(index, item, origin) for index, item in enumerate(data, start=1)))

    @classmethod
    def from_cli(cls, specs: Sequence[str]) -> Recipe:
        """A recipe from ``--step`` options, one step each, in order.

        Syntax: ``NAME`` or ``NAME:key=value,key=value``. A value is an integer, a float, ``true`` /
        ``false``, ``null`` or else a string. A list is written ``a|b|c``; a comma-separated part without
        ``=`` also adds an item to the previous key's list, so ``dedup_exact:fields=input,expected``
        means ``fields: [input, expected]``. A single value where a list is expected is a one-item list.
        Example: ``--step normalize_unicode --step filter_length:unit=words,min=3,max=400``.
        """
        if not specs:
            raise CleaningError("no cleaning steps given (use --step NAME or --recipe FILE)")
        return cls(tuple(_parse_spec(index, spec) for index, spec in enumerate(specs, start=1)))

    def build(self, registry: StepRegistry, context: StepContext) -> list[CleaningStep]:
        """Instantiate every step (checking names and parameters) before any row is read."""
        built = []
        for index, step in enumerate(self.steps, start=1):
            try:
                built.append(registry.create(step.name, step.params, context))
            except CleaningError as exc:
                raise CleaningError(f"recipe step {index}: {exc}") from exc
        return built

    def validated(self, registry: StepRegistry, context: StepContext) -> Recipe:
        """This recipe with each step's parameters as validated, defaults filled in: the normalised
        form to store with a dataset version, which replays to the same result."""
        steps = self.build(registry, context)
        return Recipe(tuple(RecipeStep(step.name, step.params.model_dump(mode="json")) for step in steps))

    def to_dict(self) -> dict[str, Any]:
        """``{"steps": [{name: params}, ...]}``, which :meth:`from_data` reads back."""
        return {"steps": [{step.name: dict(step.params)} for step in self.steps]}


def _parse_step(index: int, item: Any, origin: str) -> RecipeStep:
    where = f"{origin} step {index}"
    if isinstance(item, str):
        return RecipeStep(item)
    if not isinstance(item, Mapping):
        raise CleaningError(f"{where}: expected a step name or {{name: {{params}}}}, got {_kind(item)}")
    if len(item) != 1:
        keys = ", ".join(str(key) for key in item)
        raise CleaningError(
            f"{where}: a step is a mapping with one key (its name), got keys {keys}; "
            "indent the parameters under the name or write them as {key: value}"
        )
    ((name, params),) = item.items()
    if not isinstance(name, str):
        raise CleaningError(f"{where}: the step name must be a string, got {_kind(name)}")
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise CleaningError(f"{where} ({name}): parameters must be a mapping, got {_kind(params)}")
    bad_keys = [key for key in params if not isinstance(key, str)]
    if bad_keys:
        raise CleaningError(f"{where} ({name}): parameter names must be strings, got {bad_keys[0]!r}")
    return RecipeStep(name, dict(params))


def _parse_spec(index: int, spec: str) -> RecipeStep:
    name, _, rest = spec.partition(":")
    name = name.strip()
    if not name:
        raise CleaningError(f"--step {index} ({spec!r}): missing the step name")
    params: dict[str, Any] = {}
    key: str | None = None
    for part in rest.split(",") if rest.strip() else []:
        if "=" in part:
            key, _, value = part.partition("=")
            key = key.strip()
            if not key:
                raise CleaningError(f"--step {index} ({spec!r}): {part!r} has no parameter name")
            params[key] = _cli_value(value)
        elif key is None:
            raise CleaningError(f"--step {index} ({spec!r}): expected key=value, got {part!r}")
        else:
            previous = params[key]
            params[key] = [*(previous if isinstance(previous, list) else [previous]), _cli_value(part)]
    return RecipeStep(name, params)


def _cli_value(text: str) -> Any:
    text = text.strip()
    if "|" in text:
        return [_cli_scalar(item.strip()) for item in text.split("|") if item.strip()]
    return _cli_scalar(text)


def _cli_scalar(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none", ""):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _yaml_problem(exc: Exception) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is None:
        return str(problem)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, Sequence):
        return "a list"
    return f"{type(value).__name__} {value!r}"

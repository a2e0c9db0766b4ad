"""Guardrail kinds by name: the built-ins, third-party ones from entry points, and the user's own.

A configuration's ``type`` names a kind. Built-ins are imported the first time they are asked for
(a server whose guardrails are all patterns never imports torch). Third-party packages register
``name = "pkg.module:Class"`` in the ``llmops.guardrails`` entry-point group; a user's own guardrails
live in a module named by the ``guardrail_modules`` setting, where every concrete :class:`Guardrail`
subclass and every function marked with :func:`guardrail` is registered under its name.

A marked function receives the text and, if it declares them, ``context`` and ``params``; it returns a
:class:`Verdict`, a bool (True: triggered) or a float score (triggered at ``params["threshold"]``,
default 0.5). It may be ``async``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, overload

from llmops.guardrails.base import CheckContext, Guardrail, GuardrailError, Verdict
from llmops.plugins import PluginTable
from llmops.user_modules import import_user_module

ENTRY_POINT_GROUP = "llmops.guardrails"
_USER_MODULES = "llmops_user_guardrails"
_MARK = "__llmops_guardrail__"

_PACKAGE = "llmops.guardrails"
BUILTIN_GUARDRAILS: dict[str, str] = {
    "pii": f"{_PACKAGE}.pii_guard:PiiGuardrail",
    "secrets": f"{_PACKAGE}.secrets:SecretsGuardrail",
    "injection": f"{_PACKAGE}.injection:InjectionGuardrail",
    "toxicity": f"{_PACKAGE}.toxicity:ToxicityGuardrail",
    "keywords": f"{_PACKAGE}.words:KeywordGuardrail",
    "regex": f"{_PACKAGE}.regex:RegexGuardrail",
    "topics": f"{_PACKAGE}.topics:TopicGuardrail",
    "length": f"{_PACKAGE}.length:LengthGuardrail",
    "json": f"{_PACKAGE}.json_format:JsonGuardrail",
    "judge": f"{_PACKAGE}.judge:JudgeGuardrail",
}
"""Kind name -> "module:Class"."""

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class GuardrailMark:
    name: str
    slow: bool


@overload
def guardrail(name: F, /) -> F: ...


@overload
def guardrail(name: str | None = None, *, slow: bool = False) -> Callable[[F], F]: ...


def guardrail(name: str | F | None = None, *, slow: bool = False) -> F | Callable[[F], F]:
    """Mark a function as a guardrail kind named ``name`` (default: the function's name).

    Only marks it; :meth:`GuardrailRegistry.load_module` finds it in its module. ``slow=True``: a
    synchronous function runs in a thread, and the guardrail may use ``mode: parallel``.
    """
    if callable(name):
        return guardrail()(name)

    def mark(function: F) -> F:
        setattr(function, _MARK, GuardrailMark(name or function.__name__, slow))
        return function

    return mark


class FunctionGuardrail(Guardrail):
    """A function marked with :func:`guardrail`, called with the arguments it declares."""

    kind: ClassVar[str] = "function"
    can_redact: ClassVar[bool] = False

    def __init__(self, params: Mapping[str, Any], function: Callable[..., Any], mark: GuardrailMark) -> None:
        super().__init__(params)
        self._function = function
        self._declared = set(inspect.signature(function).parameters)
        self._async = inspect.iscoroutinefunction(function)
        self.slow = mark.slow or self._async
        self.name = mark.name
        threshold = params.get("threshold", 0.5)
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise GuardrailError(f"guardrail parameter 'threshold' must be a number, not {threshold!r}")
        self._threshold = float(threshold)

    def _arguments(self, context: CheckContext) -> dict[str, Any]:
        given = {"context": context, "params": self.params}
        return {name: value for name, value in given.items() if name in self._declared}

    def check(self, text: str, context: CheckContext) -> Verdict:
        if self._async:
            raise GuardrailError(f"guardrail {self.name!r} is async: it runs only through acheck")
        return self._verdict(self._function(text, **self._arguments(context)))

    async def acheck(self, text: str, context: CheckContext) -> Verdict:
        if self._async:
            result: Awaitable[Any] = self._function(text, **self._arguments(context))
            return self._verdict(await result)
        return await super().acheck(text, context)

    def _verdict(self, result: Any) -> Verdict:
        if isinstance(result, Verdict):
            return result
        if isinstance(result, bool):
            return Verdict(
                result, 1.0 if result else 0.0, f"{self.name}: {'triggered' if result else 'passed'}"
            )
        if isinstance(result, int | float):
            score = float(result)
            return Verdict(score >= self._threshold, score, f"{self.name}: score {score:.2f}")
        raise GuardrailError(
            f"guardrail {self.name!r} returned {type(result).__name__}; return a Verdict, a bool or a score"
        )


class GuardrailRegistry:
    """Guardrail kinds by name; one per server or CLI call (no global state)."""

    def __init__(self, targets: Mapping[str, str] | None = None, *, load_plugins: bool = True) -> None:
        self._table: PluginTable[Guardrail] = PluginTable(
            BUILTIN_GUARDRAILS if targets is None else targets,
            group=ENTRY_POINT_GROUP,
            base=Guardrail,
            what="guardrail type",
            error=lambda message: GuardrailError(message, param="type"),
            load_plugins=load_plugins,
        )
        self._functions: dict[str, tuple[Callable[..., Any], GuardrailMark]] = {}

    def names(self) -> list[str]:
        return sorted(set(self._table.names()) | set(self._functions))

    def register(self, name: str, target: type[Guardrail] | Callable[..., Any]) -> None:
        """Add a kind: a Guardrail subclass, or a function (marked or not: it is marked with ``name``)."""
        if isinstance(target, type):
            self._table.register(name, target)
            return
        mark = getattr(target, _MARK, None)
        self._functions[name] = (
            target,
            mark if isinstance(mark, GuardrailMark) else GuardrailMark(name, False),
        )

    def load_module(self, spec: str) -> list[str]:
        """Register every guardrail of a user module (a ``.py`` file or a module name); their names."""
        module = import_user_module(
            spec, what="guardrail module", package=_USER_MODULES, error=GuardrailError
        )
        names = []
        for value in vars(module).values():
            mark = getattr(value, _MARK, None)
            if isinstance(mark, GuardrailMark) and callable(value):
                self._functions[mark.name] = (value, mark)
                names.append(mark.name)
            elif (
                isinstance(value, type)
                and issubclass(value, Guardrail)
                and value.__module__ == module.__name__
                and not inspect.isabstract(value)
                and isinstance(getattr(value, "kind", None), str)
            ):
                self._table.register(value.kind, value)
                names.append(value.kind)
        return names

    def build(self, kind: str, params: Mapping[str, Any]) -> Guardrail:
        """A ready guardrail of ``kind`` (raises GuardrailError for an unknown kind or bad params)."""
        if kind in self._functions:
            function, mark = self._functions[kind]
            return FunctionGuardrail(params, function, mark)
        try:
            return self._table.get(kind)(params)
        except GuardrailError:
            raise
        except (TypeError, ValueError) as exc:  # a third-party class that validates its own way
            raise GuardrailError(f"guardrail type {kind!r}: {exc}", param="params") from exc

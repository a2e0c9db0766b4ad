"""Guard rules of a canary, and the decision they lead to: hold, promote to the next step, or roll back.

A rule is one small :class:`Guard` subclass, registered by name in a :class:`GuardRegistry`; a
deployment stores its rules as ``{name: setting}`` (``{"max_error_rate": 0.05, "min_requests": 20}``).
Each rule looks at the canary's figures over the window (:mod:`llmops.deployments.window`) and says
``ok``, ``hold`` (not enough evidence yet) or ``break``.

:func:`assess` combines them: any broken rule → roll back; all ``ok`` for the whole step (at least
``step_seconds`` since the step started) → promote, unless the deployment promotes by hand only;
otherwise hold. Traffic rules decide nothing below ``min_requests`` canary calls.

Errors: :class:`InvalidGuard` (400) for an unknown rule or a bad setting.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

from llmops.deployments.repository import DeploymentInfo
from llmops.deployments.window import VersionFigures, Window
from llmops.errors import UserError

State = Literal["ok", "hold", "break"]
Action = Literal["hold", "promote", "rollback"]

DEFAULT_GUARDS: dict[str, Any] = {"max_error_rate": 0.05, "min_requests": 20}
GateCheck = Callable[[str, str, Sequence[tuple[str, float]]], tuple[State, str]]
"""(baseline run, candidate run, [(metric, max_drop)]) -> (state, message): the eval gate's verdict."""


class InvalidGuard(UserError):
    """An unknown guard rule, or a setting it cannot take."""


@dataclass(frozen=True)
class Verdict:
    rule: str
    state: State
    value: Any  # the current figure the rule looked at (None when there is none yet)
    limit: Any
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "state": self.state,
            "value": self.value,
            "limit": self.limit,
            "message": self.message,
        }


@dataclass(frozen=True)
class GuardContext:
    """What a rule may look at."""

    deployment: DeploymentInfo
    window: Window
    canary: VersionFigures
    min_requests: int
    gate: GateCheck | None = None


class Guard(ABC):
    """One rule. ``parse`` checks and normalises the stored setting; ``check`` judges the canary."""

    name: ClassVar[str]

    def __init__(self, setting: Any) -> None:
        self.setting = self.parse(setting)

    @classmethod
    @abstractmethod
    def parse(cls, setting: Any) -> Any: ...

    @abstractmethod
    def check(self, context: GuardContext) -> Verdict: ...

    def verdict(self, state: State, value: Any, message: str) -> Verdict:
        return Verdict(self.name, state, value, self.setting, message)


def _number(rule: str, setting: Any, *, low: float, high: float | None = None) -> float:
    if isinstance(setting, bool) or not isinstance(setting, int | float):
        raise InvalidGuard(f"{rule} takes a number, got {setting!r}", param=rule)
    if setting < low or (high is not None and setting > high):
        bound = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise InvalidGuard(f"{rule} must be {bound}, got {setting!r}", param=rule)
    return float(setting)


class _TrafficRule(Guard):
    """A limit on one figure of the canary's calls (``figure``, an attribute of VersionFigures, told with
    ``detail`` formatted from them); nothing is decided below ``min_requests`` calls."""

    figure: ClassVar[str]
    detail: ClassVar[str]
    low: ClassVar[float] = 0.0
    high: ClassVar[float | None] = None
    missing: ClassVar[State] = "hold"  # the verdict while there is no figure (no answers, no thumbs)

    @classmethod
    def parse(cls, setting: Any) -> float:
        return _number(cls.name, setting, low=cls.low, high=cls.high)

    def check(self, context: GuardContext) -> Verdict:
        canary = context.canary
        value: float | None = getattr(canary, self.figure)
        if canary.calls < context.min_requests:
            return self.verdict(
                "hold", value, f"{self.name}: waiting for {context.min_requests} canary calls"
            )
        label = self.figure.replace("_", " ")
        if value is None:
            return self.verdict(self.missing, None, f"{self.name}: no canary {label} yet")
        figures = f"canary {label} {value:.3f} ({self.detail.format_map(canary.counts())})"
        if value > self.setting:
            return self.verdict("break", value, f"{self.name}: {figures} > {self.setting:g}")
        return self.verdict("ok", value, f"{self.name}: {figures} <= {self.setting:g}")


class MaxErrorRate(_TrafficRule):
    name = "max_error_rate"
    figure, detail, high = "error_rate", "{errors} of {calls} calls", 1.0


class MaxP95Ms(_TrafficRule):
    name = "max_p95_ms"
    figure, detail, low = "p95_ms", "over {answers} answers", 1.0


class MaxThumbsDownRate(_TrafficRule):
    name = "max_thumbs_down_rate"
    figure, detail, high = "thumbs_down_rate", "{thumbs_down} of {rated}", 1.0
    missing = "ok"  # no feedback is no evidence against the canary


class MinRequests(Guard):
    name = "min_requests"

    @classmethod
    def parse(cls, setting: Any) -> int:
        return int(_number(cls.name, setting, low=1.0))

    def check(self, context: GuardContext) -> Verdict:
        calls = context.canary.calls
        if calls < self.setting:
            return self.verdict("hold", calls, f"{self.name}: {calls} of {self.setting} canary calls")
        return self.verdict("ok", calls, f"{self.name}: {calls} canary calls")


class EvalGate(Guard):
    """The evaluation gate of :mod:`llmops.evals.gate`: candidate run against baseline run."""

    name = "eval_gate"

    @classmethod
    def parse(cls, setting: Any) -> dict[str, Any]:
        if not isinstance(setting, Mapping):
            raise InvalidGuard(f"{cls.name} takes {{baseline, candidate, metrics}}", param=cls.name)
        baseline, candidate, metrics = (setting.get(key) for key in ("baseline", "candidate", "metrics"))
        if not isinstance(baseline, str) or not baseline or not isinstance(candidate, str) or not candidate:
            raise InvalidGuard(f"{cls.name} needs a baseline and a candidate run", param=cls.name)
        if not isinstance(metrics, Mapping) or not metrics:
            raise InvalidGuard(f"{cls.name} needs metrics as {{name: max_drop}}", param=cls.name)
        drops = {
            str(name): _number(f"{cls.name} max drop of {name}", drop, low=0.0)
            for name, drop in metrics.items()
        }
        return {"baseline": baseline, "candidate": candidate, "metrics": drops}

    def check(self, context: GuardContext) -> Verdict:
        if context.gate is None:
            return self.verdict("hold", None, f"{self.name}: evaluation runs are not available here")
        setting = self.setting
        state, message = context.gate(
            setting["baseline"], setting["candidate"], tuple(setting["metrics"].items())
        )
        return self.verdict(state, setting["candidate"], f"{self.name}: {message}")


BUILTIN_GUARDS: tuple[type[Guard], ...] = (MaxErrorRate, MaxP95Ms, MaxThumbsDownRate, MinRequests, EvalGate)


class GuardRegistry:
    """Guard rules by name: the built-ins, plus any registered on this instance."""

    def __init__(self, extra: Sequence[type[Guard]] = ()) -> None:
        self._rules = {rule.name: rule for rule in (*BUILTIN_GUARDS, *extra)}

    def names(self) -> list[str]:
        return sorted(self._rules)

    def normalise(self, guards: Mapping[str, Any]) -> dict[str, Any]:
        """The defaults with ``guards`` over them, every setting checked; a None setting drops the rule."""
        merged = {**DEFAULT_GUARDS, **guards}
        normal: dict[str, Any] = {}
        for name, setting in merged.items():
            if setting is None:
                continue
            normal[name] = self._rule(name).parse(setting)
        normal.setdefault("min_requests", DEFAULT_GUARDS["min_requests"])
        return normal

    def build(self, guards: Mapping[str, Any]) -> list[Guard]:
        return [self._rule(name)(setting) for name, setting in guards.items() if setting is not None]

    def _rule(self, name: str) -> type[Guard]:
        rule = self._rules.get(name)
        if rule is None:
            known = ", ".join(self.names())
            raise InvalidGuard(f"unknown guard rule {name!r} (known: {known})", param="guards")
        return rule


@dataclass(frozen=True)
class Assessment:
    """What the guards say about a canary now, and what follows."""

    action: Action
    reason: str
    verdicts: tuple[Verdict, ...]
    window: Window

    def to_dict(self) -> dict[str, Any]:
        """The decision and each rule's verdict (the window's figures are :attr:`window`)."""
        return {
            "action": self.action,
            "reason": self.reason,
            "checks": [verdict.to_dict() for verdict in self.verdicts],
        }


def assess(
    deployment: DeploymentInfo,
    window: Window,
    rules: Sequence[Guard],
    now: datetime,
    gate: GateCheck | None = None,
) -> Assessment:
    """Roll back on any broken rule; promote when every rule held for the whole step; else hold."""
    min_requests = int(deployment.guards.get("min_requests", DEFAULT_GUARDS["min_requests"]))
    context = GuardContext(deployment, window, window.of(deployment.canary), min_requests, gate)
    verdicts = tuple(rule.check(context) for rule in rules)
    broken = [verdict.message for verdict in verdicts if verdict.state == "break"]
    if broken:
        return Assessment("rollback", "; ".join(broken), verdicts, window)
    waiting = [verdict.message for verdict in verdicts if verdict.state == "hold"]
    if waiting:
        return Assessment("hold", "; ".join(waiting), verdicts, window)
    started = deployment.step_started_at or now
    elapsed = (now - started).total_seconds()
    percent = deployment.canary_percent
    if elapsed < deployment.step_seconds:
        reason = f"guards hold; {percent}% for {elapsed:.0f} s of {deployment.step_seconds:g} s"
        return Assessment("hold", reason, verdicts, window)
    if deployment.manual:
        reason = f"guards held for {deployment.step_seconds:g} s at {percent}%; promotion is manual"
        return Assessment("hold", reason, verdicts, window)
    figures = "; ".join(verdict.message for verdict in verdicts)
    reason = f"guards held for {elapsed:.0f} s at {percent}% ({figures})"
    return Assessment("promote", reason, verdicts, window)

"""Managed deployments as the CLI, the admin API and the controller use them.

``deploy`` puts a registry version behind a public model name: at once as the stable version, or as
a canary taking a share of the traffic that grows step by step (``promote``) until it becomes the
stable version, or is removed (``rollback``). ``undeploy`` hands the name back to the configuration.
Every change is compare-and-set on the row's revision and leaves an event (who, when, from, to, why);
the servers pick changes up through their watcher (:mod:`llmops.deployments.watcher`).

Errors: :class:`~llmops.errors.UserError` (400) for bad input,
:class:`~llmops.deployments.repository.DeploymentNotFound` (404),
:class:`~llmops.deployments.repository.DeploymentConflict` (409).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from sqlalchemy import Engine

from llmops.deployments.guards import Assessment, GuardRegistry, State, assess
from llmops.deployments.models import TOTAL_PERCENT
from llmops.deployments.repository import (
    DeploymentConflict,
    DeploymentEvent,
    DeploymentInfo,
    DeploymentRepository,
)
from llmops.deployments.window import Window, read_window
from llmops.errors import NotFoundError, UserError

if TYPE_CHECKING:
    from llmops.evals.service import EvalService

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"
DEFAULT_STEPS = (10, 50, 100)
DEFAULT_WINDOW_SECONDS = 60.0
DEFAULT_STEP_SECONDS = 300.0
_GATE_WAITS = frozenset({"queued", "running"})


class InvalidDeployment(UserError):
    """A deployment request that cannot be applied as asked."""


@dataclass(frozen=True)
class Rollout:
    """How a canary proceeds: its steps, their length, the window its guards look at, its rules."""

    steps: Sequence[int] | None = None
    step_seconds: float = DEFAULT_STEP_SECONDS
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    guards: Mapping[str, Any] | None = None
    manual: bool = False


class Change(TypedDict, total=False):
    """Who changes a deployment and why; ``expected_revision``: only if it is still at that revision
    (the controller's compare-and-set); ``automatic``: made by the controller (auto-promote...)."""

    actor: str | None
    reason: str | None
    expected_revision: int | None
    automatic: bool


class DeploymentService:
    def __init__(
        self,
        engine: Engine,
        registry: Any,
        *,
        evals: EvalService | None = None,
        configured: Callable[[], Collection[str]] | None = None,
        guards: GuardRegistry | None = None,
    ) -> None:
        """``registry`` resolves refs (:class:`llmops.registry.RegistryService`); ``configured`` names the
        models of the configuration (a canary needs a stable side: a stable version or one of those)."""
        self.engine = engine
        self.repository = DeploymentRepository(engine)
        self.registry = registry
        self.evals = evals
        self.guards = guards or GuardRegistry()
        self._configured = configured or (lambda: ())
        self._gates: dict[tuple[str, str, tuple[tuple[str, float], ...]], tuple[State, str]] = {}

    # -- changing --------------------------------------------------------------------------------

    def deploy(
        self,
        ref: str,
        *,
        name: str,
        canary: int | None = None,
        rollout: Rollout | None = None,
        actor: str | None = None,
    ) -> DeploymentInfo:
        """``ref`` behind ``name``: as the stable version (``canary`` None) or as a canary at ``canary``%."""
        _check_name(name)
        rollout = rollout or Rollout()
        version = self._servable(ref)
        current = self.repository.find(name)
        if current is not None and current.status == "canary":
            raise DeploymentConflict(
                f"{name} has a canary ({current.canary} at {current.canary_percent}%): "
                "promote or roll it back first"
            )
        guards = self._guards(
            rollout.guards if rollout.guards is not None else (current.guards if current else {})
        )
        base = DeploymentInfo(
            name=name,
            stable=current.stable if current is not None and current.serving else None,
            guards=guards,
            window_seconds=_positive("window_seconds", rollout.window_seconds),
            step_seconds=_positive("step_seconds", rollout.step_seconds),
            manual=rollout.manual,
            revision=current.revision if current is not None else 0,
            created_at=current.created_at if current is not None else None,
        )
        if canary is None and rollout.steps is None:
            after = replace(base, stable=version, status="stable")
            reason = f"{version} is the stable version of {name}"
        else:
            after = self._canary(base, version, canary, rollout.steps)
            reason = f"{version} takes {after.canary_percent}% of {name} (steps {list(after.steps)})"
        if current is None:
            return self.repository.create(after, action="deploy", actor=actor, reason=reason)
        return self.repository.change(current, after, action="deploy", actor=actor, reason=reason)

    def promote(self, name: str, **change: Unpack[Change]) -> DeploymentInfo:
        """The canary's next step; from the last step below 100% it becomes the stable version."""
        current = self._canary_now(name, change.get("expected_revision"), "promote")
        following = current.step_index + 1
        if following >= len(current.steps) or current.steps[following] >= TOTAL_PERCENT:
            after = replace(current, stable=current.canary, canary=None, canary_percent=0, status="stable")
            note = f"{current.canary} is the stable version"
        else:
            after = replace(
                current,
                canary_percent=current.steps[following],
                step_index=following,
                step_started_at=datetime.now(UTC),
            )
            note = f"{current.canary} takes {after.canary_percent}%"
        return self._apply(current, after, "promote", note, change)

    def rollback(self, name: str, **change: Unpack[Change]) -> DeploymentInfo:
        """Remove the canary: all traffic goes back to the stable side."""
        current = self._canary_now(name, change.get("expected_revision"), "roll back")
        after = replace(current, canary=None, canary_percent=0, status="rolled_back")
        note = f"{current.canary} removed at {current.canary_percent}%"
        return self._apply(current, after, "rollback", note, change)

    def _apply(
        self, before: DeploymentInfo, after: DeploymentInfo, action: str, note: str, change: Change
    ) -> DeploymentInfo:
        if change.get("automatic"):
            action = f"auto-{action}"
        return self.repository.change(
            before, after, action=action, actor=change.get("actor"), reason=change.get("reason") or note
        )

    def undeploy(self, name: str, *, actor: str | None = None) -> DeploymentInfo:
        """Stop managing ``name``: it is served as configured again (or not at all)."""
        current = self.repository.get(name)
        if not current.serving:
            raise DeploymentConflict(f"{name} is not deployed")
        after = replace(current, stable=None, canary=None, canary_percent=0, status="undeployed")
        note = f"served as configured again (was {', '.join(current.refs()) or 'the configured model'})"
        return self.repository.change(current, after, action="undeploy", actor=actor, reason=note)

    # -- reading ---------------------------------------------------------------------------------

    def get(self, name: str) -> DeploymentInfo:
        return self.repository.get(name)

    def list_deployments(self, *, include_undeployed: bool = False) -> list[DeploymentInfo]:
        return self.repository.list_deployments(include_undeployed=include_undeployed)

    def canaries(self) -> list[DeploymentInfo]:
        return self.repository.list_deployments(status="canary")

    def history(self, name: str, *, limit: int = 100) -> list[DeploymentEvent]:
        self.repository.get(name)
        return self.repository.events(name, limit=limit)

    def signature(self) -> tuple[int, int]:
        return self.repository.signature()

    def uses(self, ref: str) -> str | None:
        """Which deployment serves registry version ``ref`` (the registry refuses deleting it), if any."""
        for info in self.repository.list_deployments():
            if ref == info.stable:
                return f"deployed behind {info.name!r} as its stable version"
            if ref == info.canary:
                return f"deployed behind {info.name!r} as the canary at {info.canary_percent}%"
        return None

    def window(self, info: DeploymentInfo, now: datetime | None = None) -> Window:
        """The guards' window: the last ``window_seconds``, but never before the current step started."""
        now = now or datetime.now(UTC)
        start = now - timedelta(seconds=info.window_seconds)
        if info.status == "canary" and info.step_started_at is not None:
            start = max(start, info.step_started_at)
        return read_window(self.engine, info.name, start, now)

    def assess(self, info: DeploymentInfo, now: datetime | None = None) -> Assessment:
        """What the guards of a running canary say now (hold, promote or rollback), with the figures."""
        now = now or datetime.now(UTC)
        rules = self.guards.build(info.guards)
        return assess(info, self.window(info, now), rules, now, self._gate if self.evals else None)

    def status(self, name: str) -> dict[str, Any]:
        """The deployment, its window figures per version, and for a canary the guards and next action."""
        info = self.repository.get(name)
        data = info.to_dict()
        if info.status == "canary":
            assessment = self.assess(info)
            data["window"] = assessment.window.to_dict()
            data["assessment"] = assessment.to_dict()
            data["next_action"] = _next_action(info, assessment)
        else:
            data["window"] = self.window(info).to_dict() if info.serving else None
            data["assessment"] = None
            data["next_action"] = "none: no canary is running"
        return data

    # -- helpers ---------------------------------------------------------------------------------

    def _servable(self, ref: str) -> str:
        """The concrete ``name@N`` of ``ref`` (an alias is resolved once, now), checked to be servable."""
        if self.registry is None:
            raise UserError("the model registry is not available", param="ref")
        info = self.registry.resolve(ref)
        self.registry.serving_config(info)
        return str(info.ref)

    def _canary(
        self, base: DeploymentInfo, version: str, canary: int | None, steps: Sequence[int] | None
    ) -> DeploymentInfo:
        if base.stable is None and base.name not in set(self._configured()):
            raise DeploymentConflict(
                f"{base.name} has no stable version to share traffic with: "
                f"deploy one without --canary first, or declare {base.name} in llmops.yaml"
            )
        if version == base.stable:
            raise InvalidDeployment(f"{version} is already the stable version of {base.name}", param="ref")
        chosen = _steps(canary, steps)
        return replace(
            base,
            canary=version,
            canary_percent=chosen[0],
            steps=chosen,
            step_index=0,
            status="canary",
            step_started_at=datetime.now(UTC),
        )

    def _canary_now(self, name: str, expected_revision: int | None, verb: str) -> DeploymentInfo:
        current = self.repository.get(name)
        if current.status != "canary":
            raise DeploymentConflict(f"{name} has no canary to {verb} (it is {current.status})")
        if expected_revision is not None and current.revision != expected_revision:
            raise DeploymentConflict(f"{name} changed meanwhile (revision {current.revision})")
        return current

    def _guards(self, guards: Mapping[str, Any]) -> dict[str, Any]:
        normal = self.guards.normalise(guards)
        gate = normal.get("eval_gate")
        if gate is not None and self.evals is not None:
            for run in (gate["baseline"], gate["candidate"]):
                self.evals.get(run)  # an unknown run is a 404 now, not a rollback later
        return normal

    def _gate(self, baseline: str, candidate: str, metrics: Sequence[tuple[str, float]]) -> tuple[State, str]:
        """The eval gate: hold while the candidate run is unfinished; its verdict once it is (kept)."""
        assert self.evals is not None
        try:
            run = self.evals.get(candidate)
        except NotFoundError as exc:
            return "break", exc.message
        if run.status in _GATE_WAITS:
            return "hold", f"candidate run {candidate} is {run.status}"
        if run.status != "succeeded":
            return "break", f"candidate run {candidate} ended {run.status}"
        key = (baseline, run.id, tuple(metrics))
        if key not in self._gates:
            try:
                result = self.evals.gate(baseline, candidate, metrics)
            except UserError as exc:
                self._gates[key] = ("break", f"the gate cannot compare the runs: {exc.message}")
            else:
                self._gates[key] = ("ok" if result.passed else "break", result.summary)
        return self._gates[key]


def _check_name(name: str) -> None:
    if not re.fullmatch(NAME_PATTERN, name):
        raise InvalidDeployment(
            f"invalid model name {name!r}: a letter or digit, then letters, digits, '.', '_', '-'",
            param="name",
        )


def _positive(field: str, value: float) -> float:
    if not value > 0:
        raise InvalidDeployment(f"{field} must be more than 0, got {value}", param=field)
    return float(value)


def _steps(canary: int | None, steps: Sequence[int] | None) -> tuple[int, ...]:
    """The canary's percentages, ending at 100: ``steps`` as given, or the canary then 50 and 100."""
    if steps is None:
        if canary is None:
            raise InvalidDeployment("a canary needs a percentage", param="canary")
        chosen = [canary, *(step for step in DEFAULT_STEPS if step > canary)]
    else:
        chosen = list(steps)
        if canary is not None and (not chosen or chosen[0] != canary):
            chosen = [canary, *(step for step in chosen if step > canary)]
    if not chosen or any(not 1 <= step <= TOTAL_PERCENT for step in chosen):
        raise InvalidDeployment("canary steps are percentages between 1 and 100", param="steps")
    if any(later <= earlier for earlier, later in zip(chosen, chosen[1:], strict=False)):
        raise InvalidDeployment(f"canary steps must increase: {chosen}", param="steps")
    if chosen[0] >= TOTAL_PERCENT:
        raise InvalidDeployment("a canary starts below 100%; deploy without --canary instead", param="canary")
    if chosen[-1] != TOTAL_PERCENT:
        chosen.append(TOTAL_PERCENT)
    return tuple(chosen)


def _next_action(info: DeploymentInfo, assessment: Assessment) -> str:
    if assessment.action == "rollback":
        return f"roll back: {assessment.reason}"
    following = info.step_index + 1
    target = (
        "stable"
        if following >= len(info.steps) or info.steps[following] >= TOTAL_PERCENT
        else f"{info.steps[following]}%"
    )
    if assessment.action == "promote":
        return f"promote to {target}"
    how = "by hand (llmops deploy promote)" if info.manual else "automatically"
    return f"hold at {info.canary_percent}%, then promote to {target} {how}: {assessment.reason}"

"""Running the configured guardrails over a request's texts and turning verdicts into decisions.

A :class:`GuardrailSet` is the rules in force, built once per configuration (a reload or a change
through the API builds a new one). For a request it selects the rules that apply (:meth:`select`, cached
per model, key and prompt), then:

- :func:`run_checks` runs rules over one text: fast ones in order, then the slow ones together; each
  verdict becomes a :class:`Decision` (what the rule decided, its score, why, how long it took). A
  ``redact`` applies at once, so later rules see the redacted text; the first ``block`` stops the rest.
  On the gateway's path most fast rules pass, so a caller may take those as :class:`Pass` tuples in
  one batch (``on_passes``) instead of one :class:`Decision` object and one call each: at a few
  microseconds a rule, that bookkeeping used to cost more than the pattern checks themselves.
- what the gateway does with a block (an error, a replaced answer) is its business: this module only
  says which rule blocked and why.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from llmops.guardrails.base import CheckContext, Finding, Guardrail, GuardrailError, Stage, Verdict
from llmops.guardrails.config import GuardrailConfig
from llmops.guardrails.redaction import redact_spans
from llmops.guardrails.registry import GuardrailRegistry

# how many (model, key, prompt) selections a set remembers before it starts over
_SELECTION_CACHE = 4096


@dataclass(frozen=True, slots=True)
class Rule:
    config: GuardrailConfig
    guard: Guardrail
    # metric label values, made once rather than per decision: stage -> labels
    pass_labels: dict[str, tuple[str, str, str]] = field(init=False, repr=False, compare=False)
    time_labels: dict[str, tuple[str, str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        name = self.config.name
        stages = ("input", "output")
        object.__setattr__(self, "pass_labels", {stage: (name, stage, "pass") for stage in stages})
        object.__setattr__(self, "time_labels", {stage: (name, stage) for stage in stages})

    @property
    def name(self) -> str:
        return self.config.name


class Pass(NamedTuple):
    """A fast rule that passed, as :func:`run_checks` hands it to ``on_passes``."""

    rule: Rule
    verdict: Verdict
    seconds: float


@dataclass(slots=True)
class Decision:
    """One rule's verdict on one text, as the trace keeps it."""

    guardrail: str
    type: str
    stage: str
    action: str  # what was done: pass, block, redact, redact_trace, flag
    score: float
    reason: str
    ms: float
    mode: str = "blocking"
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def triggered(self) -> bool:
        return self.action != "pass"

    def as_dict(self) -> dict[str, Any]:
        return trace_entry(
            self.guardrail, self.type, self.stage, self.action, self.score, self.ms, self.reason, self.mode,
            self.details,
        )  # fmt: skip


def trace_entry(
    guardrail: str,
    kind: str,
    stage: str,
    action: str,
    score: float,
    ms: float,
    reason: str,
    mode: str,
    details: dict[str, Any],
) -> dict[str, Any]:
    """One decision as the trace keeps it (``attributes.guardrails``): defaults left out."""
    data: dict[str, Any] = {
        "guardrail": guardrail,
        "type": kind,
        "stage": stage,
        "action": action,
        "score": round(score, 4),
        "ms": round(ms, 3),
    }
    if reason:
        data["reason"] = reason
    if mode != "blocking":
        data["mode"] = mode
    if details:
        data["details"] = details
    return data


RoleGroup = tuple[tuple[str, ...], tuple[Rule, ...]]


@dataclass(frozen=True, slots=True)
class Selection:
    """The rules that apply to one kind of request, by stage and by how they run; the groupings a
    request needs are made once here, since a selection is cached and shared by requests."""

    input_blocking: tuple[Rule, ...] = ()
    input_parallel: tuple[Rule, ...] = ()
    output: tuple[Rule, ...] = ()
    input_groups: tuple[RoleGroup, ...] = field(init=False, repr=False, compare=False)
    parallel_roles: tuple[str, ...] = field(init=False, repr=False, compare=False)
    output_fast: tuple[Rule, ...] = field(init=False, repr=False, compare=False)
    output_slow: tuple[Rule, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        groups: dict[tuple[str, ...], list[Rule]] = {}
        for rule in self.input_blocking:  # by the message roles they check (usually one: user)
            groups.setdefault(tuple(sorted(rule.config.roles)), []).append(rule)
        roles = sorted({role for rule in self.input_parallel for role in rule.config.roles})
        object.__setattr__(self, "input_groups", tuple((key, tuple(group)) for key, group in groups.items()))
        object.__setattr__(self, "parallel_roles", tuple(roles))
        object.__setattr__(self, "output_fast", tuple(rule for rule in self.output if not rule.guard.slow))
        object.__setattr__(self, "output_slow", tuple(rule for rule in self.output if rule.guard.slow))

    @property
    def empty(self) -> bool:
        return not (self.input_blocking or self.input_parallel or self.output)


@dataclass(slots=True)
class CheckResult:
    """What :func:`run_checks` made of one text."""

    text: str  # after ``redact`` decisions
    trace_text: str  # after ``redact`` and ``redact_trace`` decisions (what the trace may keep)
    decisions: list[Decision]
    blocked: Decision | None = None
    failed: Rule | None = None  # the blocking rule (for a re-ask: its guard)
    verdict: Verdict | None = None  # the blocking rule's verdict


class GuardrailSet:
    """The rules of one configuration, each guardrail built once and shared by every request."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        self._selections: dict[tuple[str, str | None, str | None], Selection | None] = {}

    @classmethod
    def build(cls, configs: Sequence[GuardrailConfig], registry: GuardrailRegistry) -> GuardrailSet:
        """Raises GuardrailError naming the rule at fault (unknown type, bad parameter, stage, mode)."""
        rules = []
        seen: set[str] = set()
        for config in configs:
            if config.name in seen:
                raise GuardrailError(f"guardrail {config.name!r} is declared twice", param="name")
            seen.add(config.name)
            try:
                guard = registry.build(config.type, config.params)
            except GuardrailError as exc:
                raise type(exc)(f"guardrail {config.name!r}: {exc.message}", param=exc.param) from exc
            check_rule(config, guard)
            rules.append(Rule(config, guard))
        return cls(rules)

    def select(
        self, model: str, key_names: tuple[str, ...], team: str | None, prompt: str | None
    ) -> Selection | None:
        """The rules for this request; None when no rule applies (the common, free case)."""
        if not self.rules:
            return None
        cache_key = (model, "\x00".join(key_names) + "\x00" + (team or ""), prompt)
        if cache_key in self._selections:
            return self._selections[cache_key]
        chosen = [rule for rule in self.rules if rule.config.applies(model, key_names, team, prompt)]
        selection = Selection(
            input_blocking=tuple(
                rule
                for rule in chosen
                if "input" in rule.config.stages and not (rule.config.mode == "parallel" and rule.guard.slow)
            ),
            input_parallel=tuple(
                rule
                for rule in chosen
                if "input" in rule.config.stages and rule.config.mode == "parallel" and rule.guard.slow
            ),
            output=tuple(rule for rule in chosen if "output" in rule.config.stages),
        )
        found = None if selection.empty else selection
        if len(self._selections) >= _SELECTION_CACHE:
            self._selections.clear()
        self._selections[cache_key] = found
        return found

    def get(self, name: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.name == name), None)


def check_rule(config: GuardrailConfig, guard: Guardrail) -> None:
    """The combinations a rule cannot have, refused when it is configured rather than per request."""
    name = config.name
    for stage in config.stages:
        if stage not in guard.stages:
            raise GuardrailError(
                f"guardrail {name!r}: type {config.type!r} checks {' and '.join(guard.stages)} only,"
                f" not {stage}",
                param="stage",
            )
    if config.action in ("redact", "redact_trace") and not guard.can_redact:
        raise GuardrailError(
            f"guardrail {name!r}: type {config.type!r} finds no spans to redact; use block or flag",
            param="action",
        )
    if config.mode == "parallel":
        if config.stages != ("input",):
            raise GuardrailError(f"guardrail {name!r}: mode parallel is for stage input only", param="mode")
        if config.action == "redact":
            raise GuardrailError(
                f"guardrail {name!r}: a parallel check cannot redact what already went upstream;"
                " use block, flag or redact_trace",
                param="action",
            )


async def run_checks(
    rules: Sequence[Rule],
    text: str,
    context: CheckContext,
    *,
    mode: str = "blocking",
    on_decision: Callable[[Decision], None] | None = None,
    on_passes: Callable[[str, list[Pass]], None] | None = None,
) -> CheckResult:
    """Run ``rules`` over ``text``: fast ones in order, then the slow ones at once (see module doc).

    With ``on_passes``, fast rules that pass are handed to it in batches (stage, passes), in rule
    order relative to the other decisions, and are not in ``CheckResult.decisions``."""
    result = CheckResult(text, text, [])
    stage = context.stage
    passes: list[Pass] = []
    for rule in rules:
        if rule.guard.slow:
            continue
        began = time.perf_counter()
        try:
            verdict = rule.guard.check(result.text, context)
        except Exception as exc:  # boundary: a broken check must not break the request; it fails closed
            verdict = failed_check(rule, exc)
        if on_passes is not None and not verdict.triggered:
            passes.append(Pass(rule, verdict, time.perf_counter() - began))
            continue
        if passes and on_passes is not None:
            on_passes(stage, passes)
            passes = []
        if _apply(result, rule, verdict, stage, began, mode, on_decision):
            return result
    if passes and on_passes is not None:
        on_passes(stage, passes)
    slow = [rule for rule in rules if rule.guard.slow]
    if slow:
        verdicts = await asyncio.gather(*(_safe_acheck(rule, result.text, context) for rule in slow))
        for rule, (verdict, seconds) in zip(slow, verdicts, strict=True):
            if _apply(result, rule, verdict, stage, time.perf_counter() - seconds, mode, on_decision):
                return result
    return result


def _apply(
    result: CheckResult,
    rule: Rule,
    verdict: Verdict,
    stage: Stage,
    began: float,
    mode: str,
    on_decision: Callable[[Decision], None] | None,
) -> bool:
    """Record the decision and apply it to ``result``; True when the rule blocked (stop)."""
    config = rule.config
    action = config.action if verdict.triggered else "pass"
    details = verdict.details  # shared, never changed: a copy only when spans are added
    if verdict.findings and action != "pass":
        details = {**details, "spans": len(verdict.findings)} if "spans" not in details else details
    decision = Decision(
        guardrail=config.name,
        type=config.type,
        stage=stage,
        action=action,
        score=verdict.score,
        reason=verdict.reason,
        ms=(time.perf_counter() - began) * 1000,
        mode=mode,
        details=details,
    )
    result.decisions.append(decision)
    if on_decision is not None:
        on_decision(decision)
    if action == "block":
        result.blocked, result.failed, result.verdict = decision, rule, verdict
        return True
    if action == "redact" and verdict.findings:
        result.text = redact_spans(result.text, verdict.findings)
        result.trace_text = result.text
    elif action == "redact_trace" and verdict.findings:
        result.trace_text = redact_spans(result.trace_text, _shifted(result, verdict.findings))
    return False


def _shifted(result: CheckResult, findings: tuple[Finding, ...]) -> tuple[Finding, ...]:
    """Findings in the checked text apply to the trace's copy only while both are still the same."""
    return findings if result.trace_text == result.text else ()


async def _safe_acheck(rule: Rule, text: str, context: CheckContext) -> tuple[Verdict, float]:
    """The verdict and the time it took (slow checks run together, each timed on its own)."""
    began = time.perf_counter()
    try:
        verdict = await rule.guard.acheck(text, context)
    except Exception as exc:  # boundary, as for fast checks in run_checks
        verdict = failed_check(rule, exc)
    return verdict, time.perf_counter() - began


def failed_check(rule: Rule, exc: Exception) -> Verdict:
    """A check that raised: triggered (fail closed) unless the rule says ``fail_open: true``."""
    import logging

    logging.getLogger("llmops.guardrails").warning(
        "guardrail %s (%s) failed: %s: %s", rule.name, rule.config.type, type(exc).__name__, exc
    )
    fail_open = rule.config.fail_open
    return Verdict(
        not fail_open,
        1.0 if not fail_open else 0.0,
        f"the check failed: {type(exc).__name__}",
        details={"error": f"{type(exc).__name__}: {exc}"[:300]},
    )

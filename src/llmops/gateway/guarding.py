"""The gateway's side of guardrails: which rules a request gets, and what their decisions do to it.

- **Input** (:meth:`GuardrailStep.check_input`): the request's texts (:mod:`llmops.guardrails.texts`)
  go through the blocking rules; a ``block`` is an OpenAI-style 400 with code ``content_filter`` naming
  the rule, a ``redact`` changes what goes upstream, a ``redact_trace`` only the trace's copy. Rules in
  ``parallel`` mode start as a task (:class:`ParallelChecks`) that races the upstream call.
- **Output, whole answers** (:meth:`GuardrailStep.check_output`): each choice's text; a ``block``
  replaces it and sets ``finish_reason: content_filter``; a JSON rule with ``reask`` asks the model
  again with the validation error first.
- **Output, streams**: a :class:`~llmops.guardrails.streaming.StreamGuard` per stream.

Every decision goes on the trace (``attributes.guardrails``, and the ``guardrail`` column for the
ones that triggered, which traces can be filtered by) and into ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import orjson

from llmops.gateway.auth import Principal
from llmops.gateway.endpoints import Endpoint
from llmops.gateway.errors import GatewayError
from llmops.guardrails.base import CheckContext
from llmops.guardrails.config import DEFAULT_BLOCK_MESSAGE
from llmops.guardrails.engine import (
    CheckResult,
    Decision,
    GuardrailSet,
    Pass,
    Rule,
    Selection,
    run_checks,
    trace_entry,
)
from llmops.guardrails.streaming import StreamGuard
from llmops.guardrails.texts import input_segments, join, split, with_texts
from llmops.providers.base import Payload
from llmops.providers.tokens import content_text
from llmops.tracing.metrics import GuardrailMetrics
from llmops.tracing.record import TraceRecord

T = TypeVar("T")
Judge = Callable[[str, list[dict[str, str]]], Awaitable[str]]
# a request made by a judge guardrail carries this trace attribute, and is not itself guarded
JUDGE_ATTRIBUTE = "guardrail_judge"


class GuardrailStep:
    def __init__(
        self,
        rules: GuardrailSet,
        metrics: GuardrailMetrics,
        *,
        stream_window: int,
        judge: Judge | None = None,
    ) -> None:
        self.rules = rules
        self._metrics = metrics
        self._window = stream_window
        self.judge = judge  # set once the gateway exists (the judge asks the gateway)

    def use(self, rules: GuardrailSet) -> None:
        """Swap in rebuilt rules; requests under way finish with the ones they started with."""
        self.rules = rules

    def select(self, model: str, principal: Principal, prompt: str | None) -> Selection | None:
        keys = (principal.name, principal.key_id) if principal.key_id else (principal.name,)
        return self.rules.select(model, keys, principal.team_name, prompt)

    def context(self, stage: str, model: str, payload: Payload | None) -> CheckContext:
        return CheckContext(stage, model, payload, self.judge)  # type: ignore[arg-type]

    def recorder(self, record: TraceRecord) -> DecisionNotes:
        """Where this request's decisions go: the trace and the metrics."""
        return DecisionNotes(record, self._metrics)

    async def check_input(
        self, selection: Selection, endpoint: Endpoint, payload: Payload, record: TraceRecord, model: str
    ) -> tuple[Payload, ParallelChecks | None]:
        """The payload to send upstream (redacted where a rule says so) and the parallel checks, if
        any; raises GatewayError 400 ``content_filter`` when a rule blocks."""
        notes = self.recorder(record)
        context = self.context("input", model, payload)
        parallel = None
        if selection.input_blocking:
            payload = await self._input_pass(selection, endpoint, payload, record, context, notes)
        if selection.input_parallel:
            text = join(input_segments(endpoint.kind, payload, selection.parallel_roles)).text
            task = asyncio.ensure_future(
                run_checks(
                    selection.input_parallel, text, context, mode="parallel", on_decision=notes.decided
                )
            )
            parallel = ParallelChecks(task, endpoint)
        return payload, parallel

    async def _input_pass(
        self,
        selection: Selection,
        endpoint: Endpoint,
        payload: Payload,
        record: TraceRecord,
        context: CheckContext,
        notes: DecisionNotes,
    ) -> Payload:
        for roles, group in selection.input_groups:
            segments = input_segments(endpoint.kind, payload, roles)
            if not segments:
                continue
            joined = join(segments)
            result = await run_checks(
                group, joined.text, context, on_decision=notes.decided, on_passes=notes.passed
            )
            if result.blocked is not None:
                raise blocked_error(result.blocked, endpoint)
            if result.text != joined.text:
                redacted = split(joined, result.text) or await _one_by_one(group, segments, context)
                payload = with_texts(payload, segments, redacted)
                if record.request is not None:
                    record.request = payload
            if result.trace_text != result.text and record.request is not None:
                texts = split(joined, result.trace_text)
                record.request = with_texts(payload, segments, texts) if texts else {"redacted": True}
        return payload

    async def check_output(
        self,
        selection: Selection,
        endpoint: Endpoint,
        payload: Payload,
        data: dict[str, Any],
        record: TraceRecord,
        model: str,
        reask: Callable[[Payload], Awaitable[dict[str, Any]]] | None,
    ) -> tuple[dict[str, Any], list[str] | None]:
        """The answer after the output rules (a new dict when anything changed), and the texts the
        trace should keep instead of the answer's when a ``redact_trace`` rule applied. ``reask``
        calls the model again (None: no re-asking, e.g. for an answer from the cache)."""
        choices = data.get("choices")
        if endpoint.kind == "embedding" or not isinstance(choices, list) or not choices:
            return data, None
        notes = self.recorder(record)
        context = self.context("output", model, payload)
        rules = selection.output
        results = [
            await run_checks(
                rules, _text(endpoint, choice), context, on_decision=notes.decided, on_passes=notes.passed
            )
            for choice in choices
        ]
        reasks = 0
        while True:
            failed = next((result for result in results if result.blocked is not None), None)
            budget = getattr(failed.failed.guard, "reask", 0) if failed and failed.failed else 0
            if failed is None or reask is None or reasks >= budget:
                break
            reasks += 1
            data = _summed_usage(data, await reask(_reask_payload(endpoint, payload, failed, data)))
            choices = data.get("choices") or []
            results = [
                await run_checks(
                    rules, _text(endpoint, choice), context, on_decision=notes.decided, on_passes=notes.passed
                )
                for choice in choices
            ]
        if reasks:
            record.attributes["reasks"] = reasks
        return _guarded_answer(endpoint, data, results), _trace_texts(results)

    def stream_guard(
        self, selection: Selection, endpoint: Endpoint, record: TraceRecord, model: str
    ) -> StreamGuard:
        return StreamGuard(
            selection.output_fast,
            selection.output_slow,
            self.context("output", model, None),
            kind=endpoint.kind,
            window=self._window,
            on_decision=self.recorder(record).decided,
            error_event=stream_error_event,
        )


class DecisionNotes:
    """One request's guardrail decisions, onto its trace (``attributes.guardrails``; the rules that
    triggered also in the ``guardrail`` column) and into ``/metrics``."""

    __slots__ = ("_counts", "_listed", "_record", "_seconds")

    def __init__(self, record: TraceRecord, metrics: GuardrailMetrics) -> None:
        self._record = record
        self._listed: list[dict[str, Any]] = record.attributes.setdefault("guardrails", [])
        self._counts = metrics.decisions
        self._seconds = metrics.seconds

    def decided(self, decision: Decision) -> None:
        self._counts.inc((decision.guardrail, decision.stage, decision.action))
        self._seconds.observe((decision.guardrail, decision.stage), decision.ms / 1000)
        self._listed.append(decision.as_dict())
        if decision.triggered:
            record = self._record
            record.guardrail = f"{record.guardrail or '|'}{decision.guardrail}:{decision.action}|"

    def passed(self, stage: str, passes: list[Pass]) -> None:
        """Fast rules that passed (no :class:`Decision` object each: see the engine's module doc)."""
        counts, seconds, listed = self._counts, self._seconds, self._listed
        for rule, verdict, took in passes:
            counts.inc(rule.pass_labels[stage])
            seconds.observe(rule.time_labels[stage], took)
            config = rule.config
            listed.append(
                trace_entry(
                    config.name,
                    config.type,
                    stage,
                    "pass",
                    verdict.score,
                    took * 1000,
                    verdict.reason,
                    "blocking",
                    verdict.details,
                )  # fmt: skip
            )


class ParallelChecks:
    """Input checks running while the upstream call is under way (``mode: parallel``)."""

    def __init__(self, task: asyncio.Future[CheckResult], endpoint: Endpoint) -> None:
        self._task = task
        self._endpoint = endpoint

    async def wait(self) -> None:
        """Until the checks end; GatewayError 400 if one blocked."""
        result = await self._task
        if result.blocked is not None:
            raise blocked_error(result.blocked, self._endpoint)

    async def race(
        self, call: Coroutine[Any, Any, T], discard: Callable[[T], Awaitable[None]] | None = None
    ) -> T:
        """``call``'s result once the checks passed; if they block first, ``call`` is cancelled (and a
        result that came first is handed to ``discard``) and GatewayError 400 is raised."""
        upstream = asyncio.ensure_future(call)
        try:
            await asyncio.wait((upstream, self._task), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            upstream.cancel()
            self._task.cancel()
            raise
        if not self._task.done():  # the upstream answered (or failed) first: the checks still decide
            if upstream.exception() is not None:
                self._task.cancel()
                return upstream.result()  # raises the upstream's error
            await asyncio.wait((self._task,))
        result = self._task.result()
        if result.blocked is None:
            return await upstream
        if upstream.done():
            if upstream.exception() is None and discard is not None:
                await discard(upstream.result())
        else:
            upstream.cancel()
            with contextlib.suppress(BaseException):
                await upstream
        raise blocked_error(result.blocked, self._endpoint)

    def cancel(self) -> None:
        self._task.cancel()


def blocked_error(decision: Decision, endpoint: Endpoint) -> GatewayError:
    reason = f": {decision.reason}" if decision.reason else ""
    param = {"chat": "messages", "completion": "prompt"}.get(endpoint.kind, "input")
    return GatewayError(
        400,
        f"the request was blocked by the guardrail {decision.guardrail!r}{reason}",
        error_type="invalid_request_error",
        param=param,
        code="content_filter",
    )


def stream_error_event(decision: Decision) -> bytes:
    reason = f": {decision.reason}" if decision.reason else ""
    error = {
        "message": f"the answer was stopped by the guardrail {decision.guardrail!r}{reason}",
        "type": "content_filter",
        "param": None,
        "code": "content_filter",
    }
    return b"data: " + orjson.dumps({"error": error}) + b"\n\n"


async def _one_by_one(rules: tuple[Rule, ...], segments: list[Any], context: CheckContext) -> list[str]:
    """Each segment redacted on its own (when a text held the joining separator)."""
    return [(await run_checks(rules, segment.text, context)).text for segment in segments]


def _text(endpoint: Endpoint, choice: Any) -> str:
    if not isinstance(choice, dict):
        return ""
    if endpoint.kind == "chat":
        message = choice.get("message")
        return content_text(message.get("content")) if isinstance(message, dict) else ""
    text = choice.get("text")
    return text if isinstance(text, str) else ""


def _guarded_answer(endpoint: Endpoint, data: dict[str, Any], results: list[CheckResult]) -> dict[str, Any]:
    choices = data.get("choices") or []
    if all(
        result.blocked is None and result.text == _text(endpoint, choice)
        for choice, result in zip(choices, results, strict=False)
    ):
        return data
    new_choices = []
    for choice, result in zip(choices, results, strict=False):
        choice = dict(choice)
        if result.blocked is not None:
            text = (
                result.failed.config.message
                if result.failed and result.failed.config.message
                else DEFAULT_BLOCK_MESSAGE
            )
            choice["finish_reason"] = "content_filter"
        else:
            text = result.text
        if endpoint.kind == "chat":
            message = dict(choice.get("message") or {})
            message["content"] = text
            if result.blocked is not None:
                message.pop("tool_calls", None)
            choice["message"] = message
        else:
            choice["text"] = text
        new_choices.append(choice)
    return {**data, "choices": new_choices}


def _trace_texts(results: list[CheckResult]) -> list[str] | None:
    if all(result.trace_text == result.text for result in results):
        return None
    return [result.trace_text for result in results]


def _reask_payload(
    endpoint: Endpoint, payload: Payload, failed: CheckResult, data: dict[str, Any]
) -> Payload:
    """The request again, with the failed answer and the validation error appended."""
    guard = failed.failed.guard if failed.failed else None
    verdict = failed.verdict
    message = (
        guard.reask_message(verdict)
        if guard is not None and verdict is not None and hasattr(guard, "reask_message")
        else (failed.blocked.reason if failed.blocked else "")
    )
    if endpoint.kind == "chat":
        messages = list(payload.get("messages") or [])
        messages.append({"role": "assistant", "content": _text(endpoint, (data.get("choices") or [{}])[0])})
        messages.append({"role": "user", "content": message})
        return {**payload, "messages": messages}
    prompt = payload.get("prompt")
    previous = _text(endpoint, (data.get("choices") or [{}])[0])
    if isinstance(prompt, str):
        return {**payload, "prompt": f"{prompt}{previous}\n\n{message}\n"}
    return payload


def _summed_usage(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The new answer, with the usage of every attempt (the upstream billed them all)."""
    first, second = before.get("usage"), after.get("usage")
    if not (isinstance(first, dict) and isinstance(second, dict)):
        return after
    usage = dict(second)
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        if isinstance(first.get(name), int) and isinstance(second.get(name), int):
            usage[name] = first[name] + second[name]
    return {**after, "usage": usage}


# OpenAI's moderation categories: every result names them all (false unless a guardrail says so)
OPENAI_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)


async def moderate(
    step: GuardrailStep, texts: list[str], model: str, principal: Principal, record: TraceRecord
) -> list[dict[str, Any]]:
    """``/v1/moderations``: every input rule that applies to ``model`` and the caller, over each text,
    whatever its action; a text is flagged when any rule triggers. Each rule adds the categories its
    verdict names (``details.categories``), or its own type as a category."""
    notes = step.recorder(record)
    results = []
    for text in texts:
        decisions = await evaluate(step, text, "input", model, principal, notes.decided)
        results.append(_moderation_result(decisions))
    return results


def no_moderation() -> dict[str, Any]:
    """The result for a text when no guardrail is configured: nothing flagged."""
    return _moderation_result([])


def _moderation_result(decisions: list[Decision]) -> dict[str, Any]:
    categories = dict.fromkeys(OPENAI_CATEGORIES, False)
    scores = dict.fromkeys(OPENAI_CATEGORIES, 0.0)
    for decision in decisions:
        named = decision.details.get("categories")
        named = named if isinstance(named, dict) and named else {decision.type: decision.score}
        for name, score in named.items():
            value = float(score) if isinstance(score, int | float) and not isinstance(score, bool) else 0.0
            scores[name] = max(scores.get(name, 0.0), value)
            categories[name] = categories.get(name, False) or decision.triggered
    return {
        "flagged": any(decision.triggered for decision in decisions),
        "categories": categories,
        "category_scores": scores,
        "category_applied_input_types": {name: ["text"] for name in categories},
        "guardrails": [decision.as_dict() for decision in decisions],
    }


def moderation_inputs(payload: Payload) -> list[str]:
    """The texts of a moderation request: ``input`` as a string, a list of strings, or a list of
    content parts (text parts are checked; images are not, and are refused rather than passed)."""
    value = payload.get("input")
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        raise GatewayError(400, "input: give a string or a non-empty list", param="input")
    if len(value) > MAX_MODERATION_INPUTS:
        raise GatewayError(400, f"input: at most {MAX_MODERATION_INPUTS} items", param="input")
    texts = []
    for item in value:
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str):
            texts.append(item["text"])
        else:
            raise GatewayError(
                400, "input: items must be strings or {type: text, text: ...} parts", param="input"
            )
    return texts


MAX_MODERATION_INPUTS = 2048


def judge_through(handle: Callable[..., Awaitable[Any]], chat: Endpoint, principal: Principal) -> Judge:
    """The judge guardrails' way to ask a model: a request through the gateway itself (routed,
    traced, costed), marked so that it is not guarded in turn."""

    async def ask(model: str, messages: list[dict[str, str]]) -> str:
        body = orjson.dumps({"model": model, "messages": messages, "temperature": 0})
        annotations = {"attributes": {JUDGE_ATTRIBUTE: True}}
        reply = await handle(chat, principal, body, b"no-cache", annotations=annotations)
        data = orjson.loads(reply.body)
        return _text(chat, (data.get("choices") or [{}])[0])

    return ask


async def evaluate(
    step: GuardrailStep,
    text: str,
    stage: str,
    model: str,
    principal: Principal,
    on_decision: Callable[[Decision], None] | None = None,
) -> list[Decision]:
    """What each rule in force for ``model`` and the caller decides about ``text`` at ``stage``, and
    why (``/v1/moderations``, ``llmops guardrails test``, ``POST /api/guardrail-checks``): every rule
    runs, whatever the others decided."""
    selection = step.select(model, principal, None)
    if selection is None:
        return []
    rules = (*selection.input_blocking, *selection.input_parallel) if stage == "input" else selection.output
    context = step.context(stage, model, None)
    decisions: list[Decision] = []
    for rule in rules:
        decisions.extend((await run_checks((rule,), text, context, on_decision=on_decision)).decisions)
    return decisions

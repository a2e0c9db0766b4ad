"""The gateway's request path: validate → prompt → resolve the model → cache → router → answer → trace.

HTTP-agnostic: the server hands in the caller, the raw body and the cache directive header, and
gets back either a whole answer or a stream of SSE bytes, with extra response headers. Each step
is its own object (:class:`PromptStep`, :class:`ResponseCache`, :class:`Router`,
:class:`TraceRecorder`); this module only strings them together. Nothing here awaits the database:
the trace goes to the background writer's queue and the metrics are in-memory counters.
"""

from __future__ import annotations

import base64
import logging
import struct
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from llmops.gateway import validation
from llmops.gateway.auth import Principal
from llmops.gateway.cache import CachePlan, ResponseCache
from llmops.gateway.catalog import ModelCatalog, ModelRoute
from llmops.gateway.deployments import Deployment
from llmops.gateway.endpoints import CHAT, COMPLETIONS, EMBEDDINGS, Endpoint
from llmops.gateway.errors import GatewayError
from llmops.gateway.guarding import (
    JUDGE_ATTRIBUTE,
    GuardrailStep,
    ParallelChecks,
    moderate,
    moderation_inputs,
    no_moderation,
)
from llmops.gateway.limiting import LimitStep, model_not_allowed
from llmops.gateway.prompting import PREFIX as PROMPT_PREFIX
from llmops.gateway.prompting import PromptStep
from llmops.gateway.recorder import TraceRecorder
from llmops.gateway.router import CallLog, OpenedStream, Router, close_quietly
from llmops.gateway.streams import StreamObserver
from llmops.guardrails.engine import Selection
from llmops.guardrails.streaming import StreamGuard
from llmops.ids import new_id
from llmops.providers.base import Payload, ProviderError, ProviderResult
from llmops.tracing.metrics import GatewayMetrics
from llmops.tracing.otel.traceparent import link_caller
from llmops.tracing.record import TraceRecord
from llmops.tracing.writer import TraceWriter

if TYPE_CHECKING:
    from llmops.limits.limiter import Ticket

CLIENT_CLOSED = 499  # nginx's code for a client that went away before the answer ended
MAX_MODEL_NAME = 200  # the trace column's width; longer names are never configured models anyway
CACHE_HEADER = b"x-llmops-cache"
MODERATION_MODEL = "llmops-guardrails"  # what /v1/moderations reports when no model is asked for
# the id of the request's trace, so that a client can attach feedback to it (POST /api/traces/{id}/feedback)
TRACE_HEADER = b"x-llmops-trace-id"

log = logging.getLogger("llmops.gateway")
T = TypeVar("T")

__all__ = ["CHAT", "COMPLETIONS", "EMBEDDINGS", "Endpoint", "Gateway", "StreamReply", "WholeReply"]


@dataclass(frozen=True, slots=True)
class Guarding:
    """The guardrails of one request: its rules, the model they were chosen for, parallel checks."""

    step: GuardrailStep
    selection: Selection
    model: str
    parallel: ParallelChecks | None = None

    def stream_guard(self, endpoint: Endpoint, record: TraceRecord) -> StreamGuard | None:
        if not self.selection.output:
            return None
        return self.step.stream_guard(self.selection, endpoint, record, self.model)


@dataclass(frozen=True, slots=True)
class WholeReply:
    body: bytes
    status: int = 200
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    trace: TraceRecord | None = None  # as queued: usage, cost, latency (for code inside llmops)


class Gateway:
    def __init__(
        self,
        catalog: ModelCatalog,
        writer: TraceWriter,
        metrics: GatewayMetrics,
        *,
        record_content: bool,
        router: Router | None = None,
        cache: ResponseCache | None = None,
        prompts: PromptStep | None = None,
        limits: LimitStep | None = None,
        guardrails: GuardrailStep | None = None,
    ) -> None:
        self.catalog = catalog
        self._writer = writer
        self._recorder = TraceRecorder(writer, metrics, record_content=record_content)
        self._router = router or Router(metrics)
        self._cache = cache
        self._prompts = prompts
        self._limits = limits  # None: rate limits and budgets are not enforced (in-process callers)
        self.guardrails = guardrails  # None: no guardrails (in-process callers without a configuration)

    def use_catalog(self, catalog: ModelCatalog) -> ModelCatalog:
        """Swap in a reloaded catalog; requests under way finish on the one they started with."""
        previous, self.catalog = self.catalog, catalog
        return previous

    async def handle(
        self,
        endpoint: Endpoint,
        principal: Principal,
        body: bytes,
        cache_directive: bytes | None = None,
        *,
        annotations: Mapping[str, Any] | None = None,
        user_header: bytes | None = None,
        traceparent: bytes | None = None,
    ) -> WholeReply | StreamReply:
        """Answer one request; raises GatewayError (already traced) for anything but success.

        ``annotations`` lets code inside llmops (the playground, evaluation runs) say what a request
        is for: trace fields among :data:`ANNOTATION_FIELDS`, and ``attributes`` merged into the trace's.
        ``user_header`` (``x-llmops-user``) is the sticky subject of experiments that ask for it.
        ``traceparent`` (W3C) makes the trace a child of the caller's span; an invalid one is ignored.
        """
        start = time.perf_counter()
        admission = self._writer.admission()
        if admission is not None:  # trace_overflow=block and the queue is full: wait for room
            await admission
        record = TraceRecord(
            id=new_id(),
            started_at=time.time(),
            endpoint=endpoint.name,
            requested_model="",
            stream=False,
            api_key_id=principal.key_id,
        )
        if annotations:
            _annotate(record, annotations)
        if traceparent is not None:
            link_caller(record, traceparent)
        catalog = self.catalog  # one consistent view for the whole request
        route: ModelRoute | None = None
        ticket: Ticket | None = None
        guarding: Guarding | None = None
        try:
            payload = validation.parse_body(body)
            model = validation.model_name(payload)
            record.requested_model = model[:MAX_MODEL_NAME]
            record.stream = payload.get("stream") is True
            if self._recorder.record_content:
                record.request = payload
            prompt = None
            if self._prompts is not None and model.startswith(PROMPT_PREFIX):
                payload = await self._prompts.apply(endpoint, payload, record, user_header, principal)
                model, prompt = payload["model"], model
                if self._recorder.record_content:
                    record.request = payload  # what went upstream: the rendered request
            route = self._resolve(catalog, model, endpoint, payload, prompt)
            if principal.models and not principal.may_use(model):
                raise model_not_allowed(model, principal)
            guards = self.guardrails
            if guards is not None and guards.rules.rules and JUDGE_ATTRIBUTE not in record.attributes:
                payload, guarding = await self._guard_input(
                    guards, endpoint, principal, model, payload, record
                )
            if principal.limited and self._limits is not None:
                ticket = await self._limits.admit(principal, endpoint, route, payload)
        except GatewayError as rejected:
            if guarding is not None and guarding.parallel is not None:
                guarding.parallel.cancel()
            self._recorder.finish_error(record, rejected, start, route is not None)
            rejected.headers = [*rejected.headers, (TRACE_HEADER, record.id.encode())]
            raise
        if ticket is not None and self._limits is not None:
            return await self._answer_limited(
                self._limits,
                ticket,
                catalog,
                route,
                endpoint,
                payload,
                record,
                start,
                principal,
                cache_directive,
                guarding,
            )
        return await self._answer(
            catalog, route, endpoint, payload, record, start, principal, cache_directive, guarding
        )

    async def _guard_input(
        self,
        step: GuardrailStep,
        endpoint: Endpoint,
        principal: Principal,
        model: str,
        payload: Payload,
        record: TraceRecord,
    ) -> tuple[Payload, Guarding | None]:
        """The input guardrails (raises GatewayError 400 content_filter when one blocks)."""
        selection = step.select(model, principal, record.prompt_name)
        if selection is None:
            return payload, None
        parallel = None
        if selection.input_blocking or selection.input_parallel:
            payload, parallel = await step.check_input(selection, endpoint, payload, record, model)
        return payload, Guarding(step, selection, model, parallel)

    async def _answer_limited(
        self,
        limits: LimitStep,
        ticket: Ticket,
        catalog: ModelCatalog,
        route: ModelRoute,
        endpoint: Endpoint,
        payload: Payload,
        record: TraceRecord,
        start: float,
        principal: Principal,
        cache_directive: bytes | None,
        guarding: Guarding | None,
    ) -> WholeReply | StreamReply:
        """:meth:`_answer`, settled exactly once whatever happens: when a stream ends, else at once."""
        try:
            reply = await self._answer(
                catalog, route, endpoint, payload, record, start, principal, cache_directive, guarding
            )
        except BaseException as exc:  # an upstream error, a bug, a cancelled request: nothing more will come
            limits.settle(ticket, record)
            if isinstance(exc, GatewayError):
                exc.headers.extend(ticket.headers)
            raise
        reply.headers.extend(ticket.headers)
        if isinstance(reply, StreamReply):
            reply.on_complete = lambda finished: limits.settle(ticket, finished)
        else:
            limits.settle(ticket, record)
        return reply

    async def _answer(
        self,
        catalog: ModelCatalog,
        route: ModelRoute,
        endpoint: Endpoint,
        payload: Payload,
        record: TraceRecord,
        start: float,
        principal: Principal,
        cache_directive: bytes | None,
        guarding: Guarding | None = None,
    ) -> WholeReply | StreamReply:
        """The cache, then the router: a whole answer or an opened stream (raises GatewayError, traced)."""
        plan = None
        parallel = guarding.parallel if guarding is not None else None
        if self._cache is not None and route.config.cache.mode != "off":
            plan = self._cache.plan(route, principal, endpoint, payload, cache_directive)
            if plan is not None:
                hit = await self._cache.lookup(plan)
                if hit is not None:
                    record.cache_status = hit.kind
                    record.attributes["cache"] = hit.describe()
                    if parallel is not None:
                        await self._traced(parallel.wait(), record, start, None)
                    return await self._replay(endpoint, payload, record, start, hit.data, plan, guarding)
                record.cache_status = "miss"
        calls = CallLog(start)
        if record.stream:
            return await self._open_stream(catalog, route, endpoint, payload, record, calls, plan, guarding)
        call = self._router.whole(catalog, route, endpoint, payload, calls)
        answer = await self._traced(parallel.race(call) if parallel else call, record, start, calls)
        result = answer.result
        self._recorder.note_calls(record, calls)
        if endpoint.kind == "embedding" and payload.get("encoding_format") == "base64":
            result = _embeddings_as_base64(result)
        trace_texts = None
        if guarding is not None and guarding.selection.output:

            async def reask(again: Payload) -> dict[str, Any]:
                retried = await self._traced(
                    self._router.whole(catalog, route, endpoint, again, calls), record, start, calls
                )
                return retried.result.data

            data, trace_texts = await guarding.step.check_output(
                guarding.selection, endpoint, payload, result.data, record, guarding.model, reask
            )
            if data is not result.data:
                result = ProviderResult(orjson.dumps(data), data)
        self._recorder.fill_whole(endpoint, answer.deployment, payload, record, result.data)
        if trace_texts is not None:
            _trace_copy(record, trace_texts)
        headers = [(TRACE_HEADER, record.id.encode())]
        if plan is not None:
            headers.append((CACHE_HEADER, b"miss"))
            if plan.store and self._cache is not None:
                self._cache.store(plan, _with_usage(result.data, record), record.id)
        self._recorder.finish(record, start, True)
        return WholeReply(result.body, headers=headers, trace=record)

    async def _traced(
        self, call: Awaitable[T], record: TraceRecord, start: float, calls: CallLog | None
    ) -> T:
        """``call``'s result; an upstream failure or a guardrail's block is traced, raised as GatewayError."""
        try:
            return await call
        except (ProviderError, GatewayError) as exc:
            error = GatewayError.from_provider(exc) if isinstance(exc, ProviderError) else exc
            if calls is not None:
                self._recorder.note_calls(record, calls)
            self._recorder.finish_error(record, error, start, True)
            error.headers.append((TRACE_HEADER, record.id.encode()))
            if error is exc:
                raise
            raise error from exc

    async def moderate(self, principal: Principal, body: bytes) -> WholeReply:
        """``/v1/moderations``: the configured input guardrails' verdicts in OpenAI's shape, traced."""
        start = time.perf_counter()
        record = TraceRecord(
            id=new_id(),
            started_at=time.time(),
            endpoint="moderations",
            requested_model="",
            stream=False,
            api_key_id=principal.key_id,
        )
        try:
            payload = validation.parse_body(body)
            model = payload.get("model", MODERATION_MODEL)
            if not isinstance(model, str) or not model or len(model) > MAX_MODEL_NAME:
                raise GatewayError(400, "model: a name of 1 to 200 characters", param="model")
            record.requested_model = model
            texts = moderation_inputs(payload)
            if self._recorder.record_content:
                record.request = payload
            step = self.guardrails
            results = (
                await moderate(step, texts, model, principal, record)
                if step is not None
                else [no_moderation() for _ in texts]
            )
        except GatewayError as rejected:
            self._recorder.finish_error(record, rejected, start, False)
            rejected.headers = [*rejected.headers, (TRACE_HEADER, record.id.encode())]
            raise
        data = {"id": f"modr-{record.id}", "model": model, "results": results}
        self._recorder.finish(record, start, False)
        return WholeReply(orjson.dumps(data), headers=[(TRACE_HEADER, record.id.encode())], trace=record)

    def _resolve(
        self, catalog: ModelCatalog, name: str, endpoint: Endpoint, payload: Payload, prompt: str | None
    ) -> ModelRoute:
        route = catalog.get(name)
        if route is None:
            named_by = f" (the model of {prompt!r})" if prompt else ""
            raise GatewayError(
                404, f"the model {name!r}{named_by} does not exist", param="model", code="model_not_found"
            )
        endpoint.check(payload)
        if payload.get("stream") and not endpoint.streams:
            raise GatewayError(400, f"{endpoint.name} cannot be streamed", param="stream")
        if payload.get("tools") and not route.supports_tools:
            raise GatewayError(400, f"model {name!r} does not support tools", param="tools")
        return route

    async def _open_stream(
        self,
        catalog: ModelCatalog,
        route: ModelRoute,
        endpoint: Endpoint,
        payload: Payload,
        record: TraceRecord,
        calls: CallLog,
        plan: CachePlan | None,
        guarding: Guarding | None = None,
    ) -> StreamReply:
        """Wait for the first chunk (failing over until one comes), so a refusal gets a proper status."""
        call = self._router.stream(catalog, route, endpoint, payload, calls)
        parallel = guarding.parallel if guarding is not None else None
        opened = await self._traced(
            parallel.race(call, _close_opened) if parallel else call, record, calls.start, calls
        )
        self._recorder.note_calls(record, calls)
        headers = [(TRACE_HEADER, record.id.encode())]
        if plan is not None:
            headers.append((CACHE_HEADER, b"miss"))
        return StreamReply(
            self._recorder,
            endpoint,
            payload,
            record,
            calls.start,
            opened.first,
            opened.rest,
            deployment=opened.deployment,
            cache=self._cache if plan is not None and plan.store else None,
            plan=plan,
            headers=headers,
            guard=guarding.stream_guard(endpoint, record) if guarding is not None else None,
        )

    async def _replay(
        self,
        endpoint: Endpoint,
        payload: Payload,
        record: TraceRecord,
        start: float,
        data: dict[str, Any],
        plan: CachePlan,
        guarding: Guarding | None = None,
    ) -> WholeReply | StreamReply:
        """A cached answer, in the shape this client asked for (whole JSON or SSE), traced at cost 0."""
        from llmops.gateway.cache.replay import as_sse_events, as_whole_body

        status = (record.cache_status or "hit").encode()
        headers = [(TRACE_HEADER, record.id.encode()), (CACHE_HEADER, status)]
        if record.stream:
            events = as_sse_events(endpoint, data, payload)
            return StreamReply(
                self._recorder,
                endpoint,
                payload,
                record,
                start,
                events[0],
                _iterate(events[1:]),
                headers=headers,
                guard=guarding.stream_guard(endpoint, record) if guarding is not None else None,
            )
        trace_texts = None
        if guarding is not None and guarding.selection.output:
            data, trace_texts = await guarding.step.check_output(
                guarding.selection, endpoint, payload, data, record, guarding.model, None
            )
        body = as_whole_body(endpoint, data, payload)
        self._recorder.fill_whole(endpoint, None, payload, record, data)
        if trace_texts is not None:
            _trace_copy(record, trace_texts)
        self._recorder.finish(record, start, True)
        return WholeReply(body, headers=headers, trace=record)


class StreamReply:
    """An answer streamed as SSE: iterate :meth:`chunks` to send it; the trace is written at the end.

    If the upstream fails after the first chunk went out, the client gets one explicit error event
    and the stream ends without ``data: [DONE]``; the trace is marked truncated with what was sent.
    A stream that completes is stored in the response cache when the request was cacheable.
    """

    def __init__(
        self,
        recorder: TraceRecorder,
        endpoint: Endpoint,
        payload: Payload,
        record: TraceRecord,
        start: float,
        first: bytes,
        rest: AsyncIterator[bytes],
        *,
        deployment: Deployment | None = None,
        cache: ResponseCache | None = None,
        plan: CachePlan | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
        guard: StreamGuard | None = None,
    ) -> None:
        self._recorder = recorder
        self._endpoint = endpoint
        self._payload = payload
        self._record = record
        self._start = start
        self._first = first
        self._rest = rest
        self._guard = guard
        if guard is not None:  # the client gets what the output guardrails release
            self._first, self._rest = b"", guard.wrap(first, rest)
        self._deployment = deployment
        self._cache = cache
        self._plan = plan
        self.headers = headers or []
        self._observer = StreamObserver(endpoint.kind)
        self.on_complete: Callable[[TraceRecord], None] | None = None  # the limiter's settlement
        self._started = False

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        self._started = True
        observer = self._observer
        error: GatewayError | None = None
        try:
            if self._first:
                observer.feed(self._first)
                yield self._first
            async for chunk in self._rest:
                observer.feed(chunk)
                yield chunk
            stopped = self._guard is not None and self._guard.blocked is not None
            if not observer.done and observer.error is None and not stopped:
                error = GatewayError(502, "upstream ended the stream before [DONE]", code="stream_truncated")
                yield b"data: " + error.body() + b"\n\n"
        except ProviderError as exc:
            if not observer.done:  # once [DONE] went out the answer is whole, whatever the connection does
                error = GatewayError.from_provider(exc)
                yield b"data: " + error.body() + b"\n\n"
        except Exception as exc:  # boundary: a provider bug mid-stream still ends the stream cleanly
            log.exception("stream from %s failed unexpectedly", self._record.provider, exc_info=exc)
            error = GatewayError(
                502, f"provider failed mid-stream: {type(exc).__name__}", code="provider_error"
            )
            yield b"data: " + error.body() + b"\n\n"
        except BaseException:
            error = GatewayError(CLIENT_CLOSED, "the client closed the connection before the stream ended")
            error.error_type = "client_closed"
            raise
        finally:
            await close_quietly(self._rest)
            self._complete(error)

    async def close(self) -> None:
        """End a stream whose :meth:`chunks` never started (the client left before the first send):
        the upstream is closed, the trace written and the limits settled, as for any other end."""
        if self._started:
            return
        self._started = True
        await close_quietly(self._rest)
        error = GatewayError(CLIENT_CLOSED, "the client closed the connection before the stream began")
        error.error_type = "client_closed"
        self._complete(error)

    def _complete(self, error: GatewayError | None) -> None:
        observer, record = self._observer, self._record
        deployment = self._deployment
        if deployment is not None:
            deployment.in_flight -= 1
        self._recorder.fill_stream(self._endpoint, deployment, self._payload, record, observer)
        guard = self._guard
        stopped = guard.blocked if guard is not None else None
        if stopped is not None and guard is not None:  # ended by an output guardrail: no error upstream
            record.finish_reason = "content_filter"
            record.attributes["guardrail_stop"] = {
                "guardrail": stopped.guardrail,
                "at_char": guard.released_chars,
            }
        elif error is None and observer.error is not None:
            error = GatewayError(
                502, str(observer.error.get("message") or "upstream reported an error mid-stream")
            )
        if error is not None:
            record.status_code = error.status
            record.error_type = error.error_type
            record.error_message = error.message
            if error.status != CLIENT_CLOSED:
                record.attributes["truncated"] = True
                if deployment is not None:
                    deployment.breaker.record_failure()
                    deployment.observe_failure(error.message)
        elif self._cache is not None and self._plan is not None and stopped is None:
            from llmops.gateway.cache.replay import whole_from_stream

            data = whole_from_stream(self._endpoint, observer, record)
            self._cache.store(self._plan, data, record.id)
        self._recorder.finish(record, self._start, True, observer.first_content_at)
        if self.on_complete is not None:
            try:
                self.on_complete(record)
            except Exception:  # boundary: settling must never break the end of a stream
                log.exception("could not settle the limits of request %s", record.id)


# ``id``: the caller chooses the trace id (a new_id()), so it knows it even when the request fails
ANNOTATION_FIELDS = frozenset(
    {"id", "prompt_name", "prompt_version", "prompt_label", "experiment", "variant"}
)


def _annotate(record: TraceRecord, annotations: Mapping[str, Any]) -> None:
    for key, value in annotations.items():
        if key in ANNOTATION_FIELDS:
            setattr(record, key, value)
        elif key == "attributes" and isinstance(value, Mapping):
            record.attributes.update(value)
        else:
            raise ValueError(f"unknown trace annotation {key!r}")


def _trace_copy(record: TraceRecord, texts: list[str]) -> None:
    """What a ``redact_trace`` guardrail leaves of the answer on the trace."""
    record.response_text = texts[0] if texts else None
    if len(texts) > 1:
        record.attributes["choices"] = texts


async def _close_opened(opened: OpenedStream) -> None:
    """A stream that opened before a parallel input check blocked the request: end it unused."""
    await close_quietly(opened.rest)
    opened.deployment.in_flight -= 1


async def _iterate(items: list[bytes]) -> AsyncIterator[bytes]:
    for item in items:
        yield item


def _with_usage(data: dict[str, Any], record: TraceRecord) -> dict[str, Any]:
    """A cached answer always carries usage (counted offline when the upstream gave none)."""
    if isinstance(data.get("usage"), dict) or record.prompt_tokens is None:
        return data
    prompt, completion = record.prompt_tokens, record.completion_tokens or 0
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    return {**data, "usage": usage}


def _embeddings_as_base64(result: ProviderResult) -> ProviderResult:
    """The openai SDK asks for base64 by default; providers that return floats get encoded here."""
    items = result.data.get("data") or []
    if not items or not isinstance(items[0].get("embedding"), list):
        return result
    for item in items:
        vector = item["embedding"]
        item["embedding"] = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return ProviderResult(orjson.dumps(result.data), result.data)

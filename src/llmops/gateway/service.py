"""The gateway's request path: validate, route to a provider, answer, record a trace.

HTTP-agnostic: the server hands in the caller and the raw body and gets back either a whole
answer or a stream of SSE bytes. Nothing here awaits the database: the trace goes to the
background writer's queue and the metrics are in-memory counters.
"""

from __future__ import annotations

import base64
import logging
import struct
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from llmops.gateway import validation
from llmops.gateway.auth import Principal
from llmops.gateway.catalog import ModelCatalog, ModelRoute
from llmops.gateway.errors import GatewayError
from llmops.gateway.streams import StreamObserver
from llmops.ids import new_id
from llmops.providers.base import Payload, ProviderError, ProviderResult
from llmops.providers.tokens import content_text
from llmops.tracing.metrics import GatewayMetrics
from llmops.tracing.record import TraceRecord
from llmops.tracing.writer import TraceWriter

CLIENT_CLOSED = 499  # nginx's code for a client that went away before the answer ended
MAX_MODEL_NAME = 200  # the trace column's width; longer names are never configured models anyway

log = logging.getLogger("llmops.gateway")


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    kind: str  # chat | completion | embedding
    check: Callable[[Payload], None]
    streams: bool = True


CHAT = Endpoint("chat.completions", "chat", validation.check_chat)
COMPLETIONS = Endpoint("completions", "completion", validation.check_completion)
EMBEDDINGS = Endpoint("embeddings", "embedding", validation.check_embedding, streams=False)


@dataclass(frozen=True, slots=True)
class WholeReply:
    body: bytes
    status: int = 200


class Gateway:
    def __init__(
        self, catalog: ModelCatalog, writer: TraceWriter, metrics: GatewayMetrics, *, record_content: bool
    ) -> None:
        self._catalog = catalog
        self._writer = writer
        self._metrics = metrics
        self._record_content = record_content

    async def handle(self, endpoint: Endpoint, principal: Principal, body: bytes) -> WholeReply | StreamReply:
        """Answer one request; raises GatewayError (already traced) for anything but success."""
        start = time.perf_counter()
        record = TraceRecord(
            id=new_id(),
            started_at=time.time(),
            endpoint=endpoint.name,
            requested_model="",
            stream=False,
            api_key_id=principal.key_id,
        )
        try:
            payload = validation.parse_body(body)
            record.requested_model = validation.model_name(payload)[:MAX_MODEL_NAME]
            record.stream = payload.get("stream") is True
            if self._record_content:
                record.request = payload
            route = self._route(record.requested_model, endpoint, payload)
            record.provider, record.upstream_model = route.provider_name, route.provider.upstream_model
        except GatewayError as rejected:
            self._finish_error(record, rejected, start)
            raise
        if record.stream:
            return await self._open_stream(endpoint, route, payload, record, start)
        try:
            result = await self._call(endpoint, route, payload)
        except ProviderError as exc:
            error = GatewayError.from_provider(exc)
            self._finish_error(record, error, start)
            raise error from exc
        except Exception as exc:  # boundary: a provider bug must not become a 500 or an untraced request
            error = _provider_crashed(route, exc)
            self._finish_error(record, error, start)
            raise error from exc
        if endpoint.kind == "embedding" and payload.get("encoding_format") == "base64":
            result = _embeddings_as_base64(result)
        self._fill_from_whole(endpoint, route, payload, record, result.data)
        self._finish(record, start)
        return WholeReply(result.body)

    def _route(self, name: str, endpoint: Endpoint, payload: Payload) -> ModelRoute:
        route = self._catalog.get(name)
        if route is None:
            raise GatewayError(
                404, f"the model {name!r} does not exist", param="model", code="model_not_found"
            )
        endpoint.check(payload)
        if payload.get("stream") and not endpoint.streams:
            raise GatewayError(400, f"{endpoint.name} cannot be streamed", param="stream")
        if payload.get("tools") and not route.provider.supports_tools:
            raise GatewayError(400, f"model {name!r} does not support tools", param="tools")
        return route

    async def _call(self, endpoint: Endpoint, route: ModelRoute, payload: Payload) -> ProviderResult:
        provider = route.provider
        if endpoint.kind == "chat":
            return await provider.chat(payload)
        if endpoint.kind == "completion":
            return await provider.complete(payload)
        return await provider.embed(payload)

    async def _open_stream(
        self, endpoint: Endpoint, route: ModelRoute, payload: Payload, record: TraceRecord, start: float
    ) -> StreamReply:
        """Wait for the first chunk, so an upstream that refuses still gets a proper error status."""
        provider = route.provider
        chunks = (
            provider.stream_chat(payload) if endpoint.kind == "chat" else provider.stream_complete(payload)
        )
        try:
            first = await anext(chunks)
        except ProviderError as exc:
            error = GatewayError.from_provider(exc)
            self._finish_error(record, error, start)
            raise error from exc
        except StopAsyncIteration:
            error = GatewayError(502, "upstream ended the stream without sending anything")
            self._finish_error(record, error, start)
            raise error from None
        except Exception as exc:  # boundary, as in handle()
            error = _provider_crashed(route, exc)
            self._finish_error(record, error, start)
            raise error from exc
        return StreamReply(self, endpoint, route, payload, record, start, first, chunks)

    def _fill_from_whole(
        self,
        endpoint: Endpoint,
        route: ModelRoute,
        payload: Payload,
        record: TraceRecord,
        data: dict[str, Any],
    ) -> None:
        choices = data.get("choices") or []
        if endpoint.kind != "embedding" and choices:
            texts = [_choice_text(endpoint, choice) for choice in choices]
            record.response_text = texts[0]
            record.finish_reason = choices[0].get("finish_reason")
            if len(texts) > 1:
                record.attributes["choices"] = texts
            if endpoint.kind == "chat":
                tool_calls = (choices[0].get("message") or {}).get("tool_calls")
                if tool_calls:
                    record.attributes["tool_calls"] = tool_calls
        usage = data.get("usage")
        if isinstance(usage, dict) and "prompt_tokens" in usage:
            self._set_usage(
                record, route, usage.get("prompt_tokens"), usage.get("completion_tokens") or 0, "upstream"
            )
        else:
            texts = [record.response_text or ""] + record.attributes.get("choices", [])[1:]
            self._count_usage(endpoint, route, payload, record, texts)

    def _count_usage(
        self, endpoint: Endpoint, route: ModelRoute, payload: Payload, record: TraceRecord, texts: list[str]
    ) -> None:
        """Usage when the upstream reported none: count offline with the model's tokenizer."""
        provider = route.provider
        if endpoint.kind == "chat":
            prompt = provider.context.tokens.count_messages(payload["messages"], provider.upstream_model)
        else:
            source = payload.get("prompt") if endpoint.kind == "completion" else payload.get("input")
            items = source if isinstance(source, list) else [source]
            prompt = sum(
                len(item) if isinstance(item, list) else provider.count_tokens(str(item)) for item in items
            )
        completion = sum(provider.count_tokens(text) for text in texts if text)
        self._set_usage(record, route, prompt, completion, "counted")

    def _set_usage(
        self, record: TraceRecord, route: ModelRoute, prompt: Any, completion: Any, source: str
    ) -> None:
        record.prompt_tokens = int(prompt or 0)
        record.completion_tokens = int(completion or 0)
        record.usage_source = source
        record.cost = route.config.cost(record.prompt_tokens, record.completion_tokens)

    def _finish(self, record: TraceRecord, start: float, first_content_at: float | None = None) -> None:
        end = time.perf_counter()
        record.latency_ms = (end - start) * 1000
        record.ended_at = record.started_at + (end - start)
        # a name no route knows is the client's free text: keep it out of metric labels
        model = record.requested_model if record.provider else ""
        provider = record.provider or ""
        metrics = self._metrics
        metrics.requests.inc((model, provider, str(record.status_code)))
        metrics.latency.observe((model, provider), end - start)
        if first_content_at is not None:
            record.ttft_ms = (first_content_at - start) * 1000
            metrics.ttft.observe((model, provider), first_content_at - start)
        if record.prompt_tokens:
            metrics.tokens.inc((model, "prompt"), record.prompt_tokens)
        if record.completion_tokens:
            metrics.tokens.inc((model, "completion"), record.completion_tokens)
        if record.cost:
            metrics.cost.inc((model,), record.cost)
        if not self._record_content:
            record.response_text = None
            record.attributes.pop("choices", None)
            record.attributes.pop("tool_calls", None)
        self._writer.submit(record)

    def _finish_error(self, record: TraceRecord, error: GatewayError, start: float) -> None:
        record.status_code = error.status
        record.error_type = error.error_type
        record.error_message = error.message
        self._finish(record, start)


class StreamReply:
    """An answer streamed as SSE: iterate :meth:`chunks` to send it; the trace is written at the end."""

    def __init__(
        self,
        gateway: Gateway,
        endpoint: Endpoint,
        route: ModelRoute,
        payload: Payload,
        record: TraceRecord,
        start: float,
        first: bytes,
        rest: AsyncIterator[bytes],
    ) -> None:
        self._gateway = gateway
        self._endpoint = endpoint
        self._route = route
        self._payload = payload
        self._record = record
        self._start = start
        self._first = first
        self._rest = rest
        self._observer = StreamObserver(endpoint.kind)

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        observer = self._observer
        error: GatewayError | None = None
        try:
            observer.feed(self._first)
            yield self._first
            async for chunk in self._rest:
                observer.feed(chunk)
                yield chunk
        except ProviderError as exc:
            error = GatewayError.from_provider(exc)
            yield b"data: " + error.body() + b"\n\n"
        except Exception as exc:  # boundary, as in Gateway.handle()
            error = _provider_crashed(self._route, exc)
            yield b"data: " + error.body() + b"\n\n"
        except BaseException:
            error = GatewayError(CLIENT_CLOSED, "the client closed the connection before the stream ended")
            error.error_type = "client_closed"
            raise
        finally:
            await _close_quietly(self._rest)
            self._complete(error)

    def _complete(self, error: GatewayError | None) -> None:
        observer, record, gateway = self._observer, self._record, self._gateway
        texts = observer.all_texts()
        record.response_text = texts[0] if texts else ""
        if len(texts) > 1:
            record.attributes["choices"] = texts
        record.finish_reason = observer.finish_reasons.get(0)
        if observer.tool_calls:
            record.attributes["tool_calls"] = [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
                for _, call in sorted(observer.tool_calls.items())
            ]
        usage = observer.usage
        if usage and "prompt_tokens" in usage:
            gateway._set_usage(
                record, self._route, usage["prompt_tokens"], usage.get("completion_tokens"), "upstream"
            )
        else:
            gateway._count_usage(self._endpoint, self._route, self._payload, record, texts)
        if error is None and observer.error is not None:
            error = GatewayError(
                502, str(observer.error.get("message") or "upstream reported an error mid-stream")
            )
        if error is not None:
            record.status_code = error.status
            record.error_type = error.error_type
            record.error_message = error.message
        gateway._finish(record, self._start, observer.first_content_at)


def _provider_crashed(route: ModelRoute, exc: Exception) -> GatewayError:
    log.exception(
        "provider %s failed unexpectedly for model %s", route.provider_name, route.name, exc_info=exc
    )
    return GatewayError(
        502, f"provider {route.provider_name!r} failed: {type(exc).__name__}", code="provider_error"
    )


async def _close_quietly(chunks: AsyncIterator[bytes]) -> None:
    close = getattr(chunks, "aclose", None)
    if close is not None:
        try:
            await close()
        except ProviderError:
            return


def _choice_text(endpoint: Endpoint, choice: dict[str, Any]) -> str:
    if endpoint.kind == "chat":
        return content_text((choice.get("message") or {}).get("content"))
    return str(choice.get("text") or "")


def _embeddings_as_base64(result: ProviderResult) -> ProviderResult:
    """The openai SDK asks for base64 by default; providers that return floats get encoded here."""
    items = result.data.get("data") or []
    if not items or not isinstance(items[0].get("embedding"), list):
        return result
    for item in items:
        vector = item["embedding"]
        item["embedding"] = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return ProviderResult(orjson.dumps(result.data), result.data)

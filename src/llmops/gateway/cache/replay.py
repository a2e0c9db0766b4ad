"""Cached answers in the shape the client asked for.

An answer is cached as the whole OpenAI JSON (a stream is put together into one first), so a
streaming client and a non-streaming one share an entry: a hit is sent back as that JSON, or
replayed as SSE chunks ending in ``data: [DONE]``, with the usage chunk when the client asked for
it (``stream_options.include_usage``), as the upstream would have sent it.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from llmops.gateway.endpoints import Endpoint
from llmops.gateway.streams import StreamObserver
from llmops.ids import new_id
from llmops.providers.base import SSE_DONE, Payload, sse_event
from llmops.tracing.record import TraceRecord


def as_whole_body(endpoint: Endpoint, data: dict[str, Any], payload: Payload) -> bytes:
    return orjson.dumps(data)


def as_sse_events(endpoint: Endpoint, data: dict[str, Any], payload: Payload) -> list[bytes]:
    """The events of a stream that carries the same answer as ``data``."""
    chat = endpoint.kind == "chat"
    base = {
        "id": data.get("id") or f"{'chatcmpl' if chat else 'cmpl'}-{new_id()}",
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": data.get("created") or int(time.time()),
        "model": data.get("model") or payload.get("model"),
    }
    if data.get("system_fingerprint"):
        base["system_fingerprint"] = data["system_fingerprint"]
    events: list[bytes] = []
    for choice in data.get("choices") or []:
        index = choice.get("index", 0)
        finish = choice.get("finish_reason")
        if chat:
            message = choice.get("message") or {}
            events.append(_chunk(base, index, {"role": "assistant", "content": ""}))
            if message.get("content"):
                events.append(_chunk(base, index, {"content": message["content"]}))
            calls = message.get("tool_calls")
            if calls:
                delta = {"tool_calls": [{"index": number, **call} for number, call in enumerate(calls)]}
                events.append(_chunk(base, index, delta))
            events.append(_chunk(base, index, {}, finish))
        else:
            text = {
                "index": index,
                "text": choice.get("text") or "",
                "logprobs": None,
                "finish_reason": finish,
            }
            events.append(sse_event({**base, "choices": [text]}))
    if (payload.get("stream_options") or {}).get("include_usage") and isinstance(data.get("usage"), dict):
        events.append(sse_event({**base, "choices": [], "usage": data["usage"]}))
    events.append(SSE_DONE)
    return events


def _chunk(base: dict[str, Any], index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
    return sse_event(
        {**base, "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    )


def whole_from_stream(endpoint: Endpoint, observer: StreamObserver, record: TraceRecord) -> dict[str, Any]:
    """The whole answer a finished stream amounts to (what the cache keeps)."""
    chat = endpoint.kind == "chat"
    indexes = sorted(
        set(observer.texts) | set(observer.finish_reasons) | {index for index, _ in observer.tool_calls}
    )
    choices = []
    for index in indexes or [0]:
        text = observer.text(index)
        finish = observer.finish_reasons.get(index)
        if chat:
            message: dict[str, Any] = {"role": "assistant", "content": text or None}
            calls = [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
                for (choice, _), call in sorted(observer.tool_calls.items())
                if choice == index
            ]
            if calls:
                message["tool_calls"] = calls
            elif message["content"] is None:
                message["content"] = ""
            choices.append({"index": index, "message": message, "logprobs": None, "finish_reason": finish})
        else:
            choices.append({"index": index, "text": text, "logprobs": None, "finish_reason": finish})
    prompt, completion = record.prompt_tokens or 0, record.completion_tokens or 0
    usage = observer.usage if observer.usage and "prompt_tokens" in observer.usage else None
    return {
        "id": f"{'chatcmpl' if chat else 'cmpl'}-{new_id()}",
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": record.upstream_model or record.requested_model,
        "choices": choices,
        "usage": usage
        or {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }

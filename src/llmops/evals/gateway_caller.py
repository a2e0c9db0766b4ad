"""A :data:`~llmops.evals.calls.ModelCaller` that goes through the gateway's own request path.

Every call of an evaluation (the target's answers and a judge's) is then a request like any other:
routed, retried across deployments, cached when the run asks for it, traced with its cost, with the
run's id in the trace's attributes. On top of the gateway's own retries, a call answered 429 or 5xx is
tried again after a back-off, ``retries`` times; what still fails is the item's error, not the run's.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from llmops.evals.calls import ChatRequest, ChatResult, ModelCaller
from llmops.gateway.auth import ANONYMOUS, Principal
from llmops.gateway.endpoints import CHAT
from llmops.gateway.errors import GatewayError
from llmops.gateway.service import Gateway, StreamReply
from llmops.ids import new_id

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def gateway_caller(
    gateway: Gateway,
    *,
    run_id: str,
    principal: Principal = ANONYMOUS,
    use_cache: bool = False,
    retries: int = 2,
    backoff_seconds: float = 0.5,
) -> ModelCaller:
    directive = None if use_cache else b"no-cache"

    async def call(request: ChatRequest) -> ChatResult:
        body = orjson.dumps({"model": request.model, "messages": request.messages, **request.params})
        started = time.perf_counter()
        for attempt in range(retries + 1):
            trace_id = new_id()
            annotations: dict[str, Any] = {"id": trace_id, "attributes": {"eval_run": run_id}}
            try:
                reply = await gateway.handle(CHAT, principal, body, directive, annotations=annotations)
            except GatewayError as exc:
                if exc.status in RETRY_STATUSES and attempt < retries:
                    await asyncio.sleep(backoff_seconds * 2**attempt)
                    continue
                latency = (time.perf_counter() - started) * 1000
                return ChatResult(None, latency, trace_id=trace_id, error=f"{exc.status}: {exc.message}")
            if isinstance(reply, StreamReply):  # "stream" is refused by the run's parameters
                return ChatResult(None, trace_id=trace_id, error="evaluation calls do not stream")
            return _answered(reply.body, reply.trace, started, trace_id)
        raise AssertionError("unreachable: the last attempt returns")

    return call


def _answered(body: bytes, trace: Any, started: float, trace_id: str) -> ChatResult:
    data = orjson.loads(body)
    choices = data.get("choices") or [{}]
    text = (choices[0].get("message") or {}).get("content")
    usage = data.get("usage") or {}
    if trace is not None:
        return ChatResult(
            text if isinstance(text, str) else "",
            trace.latency_ms,
            trace.prompt_tokens,
            trace.completion_tokens,
            trace.cost,
            trace_id,
        )
    return ChatResult(
        text if isinstance(text, str) else "",
        (time.perf_counter() - started) * 1000,
        usage.get("prompt_tokens"),
        usage.get("completion_tokens"),
        None,
        trace_id,
    )

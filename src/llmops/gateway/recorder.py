"""Turning what happened to a request into its trace and its metrics, then queueing the trace.

Shared by whole answers, streams and cache hits, so every way a request can end is recorded alike.
Runs on the event loop and awaits nothing: the trace goes to the writer's in-memory queue.
"""

from __future__ import annotations

import time
from typing import Any

from llmops.gateway.deployments import Deployment
from llmops.gateway.endpoints import Endpoint
from llmops.gateway.errors import GatewayError
from llmops.gateway.router import CallLog
from llmops.gateway.streams import StreamObserver
from llmops.gateway.usage import completion_tokens, prompt_tokens
from llmops.providers.base import Payload
from llmops.providers.tokens import content_text
from llmops.tracing.metrics import GatewayMetrics
from llmops.tracing.record import TraceRecord
from llmops.tracing.writer import TraceWriter

CACHE_HITS = frozenset({"hit", "semantic-hit"})


class TraceRecorder:
    def __init__(self, writer: TraceWriter, metrics: GatewayMetrics, *, record_content: bool) -> None:
        self._writer = writer
        self._metrics = metrics
        self.record_content = record_content

    def note_calls(self, record: TraceRecord, calls: CallLog) -> None:
        """Which deployment answered (or was tried last); every attempt when there was more than one
        or the only one failed (a single successful call is the trace itself)."""
        deployment = calls.last
        if deployment is not None:
            config = deployment.config
            record.provider = config.provider
            record.upstream_model = config.upstream_model
            record.deployment = config.id
        if calls.attempts:  # only kept once a call failed (see CallLog.add)
            record.attributes["attempts"] = [attempt.as_dict() for attempt in calls.attempts]
        if calls.fallback is not None:
            record.attributes["fallback"] = calls.fallback

    def fill_whole(
        self,
        endpoint: Endpoint,
        deployment: Deployment | None,
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
            self.set_usage(
                record,
                deployment,
                usage.get("prompt_tokens"),
                usage.get("completion_tokens") or 0,
                "upstream",
            )
        elif deployment is not None:
            texts = [record.response_text or ""] + record.attributes.get("choices", [])[1:]
            self.count_usage(endpoint, deployment, payload, record, texts)

    def fill_stream(
        self,
        endpoint: Endpoint,
        deployment: Deployment | None,
        payload: Payload,
        record: TraceRecord,
        observer: StreamObserver,
    ) -> None:
        texts = observer.all_texts()
        record.response_text = texts[0] if texts else ""
        if len(texts) > 1:
            record.attributes["choices"] = texts
        record.finish_reason = observer.finish_reasons.get(0)
        if observer.tool_calls:
            record.attributes["tool_calls"] = observer.tool_call_list()
        usage = observer.usage
        if usage and "prompt_tokens" in usage:
            self.set_usage(
                record, deployment, usage["prompt_tokens"], usage.get("completion_tokens"), "upstream"
            )
        elif deployment is not None:
            self.count_usage(endpoint, deployment, payload, record, texts)

    def count_usage(
        self,
        endpoint: Endpoint,
        deployment: Deployment,
        payload: Payload,
        record: TraceRecord,
        texts: list[str],
    ) -> None:
        """Usage when the upstream reported none: count offline with the model's tokenizer."""
        provider = deployment.provider
        prompt = prompt_tokens(endpoint, provider, payload)
        self.set_usage(record, deployment, prompt, completion_tokens(provider, texts), "counted")

    def set_usage(
        self, record: TraceRecord, deployment: Deployment | None, prompt: Any, completion: Any, source: str
    ) -> None:
        record.prompt_tokens = int(prompt or 0)
        record.completion_tokens = int(completion or 0)
        record.usage_source = source
        if record.cache_status in CACHE_HITS or deployment is None:
            record.cost = 0.0  # a cached answer costs nothing upstream
            return
        record.cost = deployment.config.cost(record.prompt_tokens, record.completion_tokens)
        if deployment.limited:
            deployment.usage.add(tokens=record.prompt_tokens + record.completion_tokens)

    def finish(
        self, record: TraceRecord, start: float, model_known: bool, first_content_at: float | None = None
    ) -> None:
        end = time.perf_counter()
        record.latency_ms = (end - start) * 1000
        record.ended_at = record.started_at + (end - start)
        # a name no route knows is the client's free text: keep it out of metric labels
        model = record.requested_model if model_known else ""
        provider = record.provider or ("cache" if record.cache_status in CACHE_HITS else "")
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
        if not self.record_content:
            record.response_text = None
            record.attributes.pop("choices", None)
            record.attributes.pop("tool_calls", None)
        self._writer.submit(record)

    def finish_error(self, record: TraceRecord, error: GatewayError, start: float, model_known: bool) -> None:
        record.status_code = error.status
        record.error_type = error.error_type
        record.error_message = error.message
        self.finish(record, start, model_known)


def _choice_text(endpoint: Endpoint, choice: dict[str, Any]) -> str:
    if endpoint.kind == "chat":
        return content_text((choice.get("message") or {}).get("content"))
    return str(choice.get("text") or "")

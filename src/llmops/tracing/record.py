"""One trace: what the gateway learned about a single request, ready to become a row."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import orjson

from llmops.store.trace_rows import TRACE_COLUMNS, TraceRow

_NUL = "\x00"
_JSON_NUL = "\\u0000"  # how orjson writes a NUL inside a JSON string


@dataclass(slots=True)
class TraceRecord:
    id: str
    started_at: float  # unix seconds
    endpoint: str
    requested_model: str
    stream: bool
    api_key_id: str | None = None
    provider: str | None = None
    upstream_model: str | None = None
    deployment: str | None = None  # which deployment of the model answered (or last tried)
    cache_status: str | None = None  # hit | semantic-hit | miss; None when the model caches nothing
    ended_at: float = 0.0
    status_code: int = 200
    error_type: str | None = None
    error_message: str | None = None
    request: dict[str, Any] | None = None
    response_text: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    usage_source: str | None = None
    cost: float | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    prompt_name: str | None = None  # the prompt a request named (model="prompt:NAME...")
    prompt_version: int | None = None
    prompt_label: str | None = None
    experiment: str | None = None  # the experiment (id) the request took part in, and its variant
    variant: str | None = None
    guardrail: str | None = None  # "|rule:action|..." of the guardrails that triggered
    otel_trace_id: str | None = None  # the caller's OTel trace (traceparent), or an ingested span's
    otel_span_id: str | None = None
    otel_parent_span_id: str | None = None

    @property
    def status(self) -> str:
        return "ok" if self.status_code < 400 else "error"

    def values(self, format_time: Callable[[float], str]) -> TraceRow:
        """The row as a plain tuple in ``TRACE_COLUMNS`` order, JSON already text (what the writer
        queues: no tracked containers, so a deep queue costs the garbage collector nothing).

        Raises TypeError (``orjson.JSONEncodeError``) for a value JSON cannot hold, and
        ValueError/OverflowError/OSError for a time out of range.
        """
        request, attributes = self.request, self.attributes
        return (
            self.id,
            format_time(self.started_at),
            format_time(self.ended_at or self.started_at),
            self.endpoint,
            self.api_key_id,
            self.requested_model,
            self.provider,
            self.upstream_model,
            self.deployment,
            self.cache_status,
            self.stream,
            "ok" if self.status_code < 400 else "error",
            self.status_code,
            self.error_type,
            self.error_message,
            None if request is None else orjson.dumps(request).decode(),
            self.response_text,
            self.finish_reason,
            self.prompt_tokens,
            self.completion_tokens,
            self.usage_source,
            self.cost,
            self.latency_ms,
            self.ttft_ms,
            orjson.dumps(attributes).decode() if attributes else None,
            self.prompt_name,
            self.prompt_version,
            self.prompt_label,
            self.experiment,
            self.variant,
            self.guardrail,
            self.otel_trace_id,
            self.otel_span_id,
            self.otel_parent_span_id,
        )

    def to_row(self) -> dict[str, Any]:
        """The row for the ``trace`` table (done by the writer, off the request path)."""
        row = {name: getattr(self, name) for name in _FIELD_NAMES}
        row["started_at"] = datetime.fromtimestamp(self.started_at, UTC)
        row["ended_at"] = datetime.fromtimestamp(self.ended_at or self.started_at, UTC)
        row["status"] = self.status
        row["attributes"] = self.attributes or None
        return row


_FIELD_NAMES = tuple(f.name for f in fields(TraceRecord))
# the order TraceRecord.values() writes; a test keeps it equal to TRACE_COLUMNS (the table's order)
VALUE_ORDER = (
    "id",
    "started_at",
    "ended_at",
    "endpoint",
    "api_key_id",
    "requested_model",
    "provider",
    "upstream_model",
    "deployment",
    "cache_status",
    "stream",
    "status",
    "status_code",
    "error_type",
    "error_message",
    "request",
    "response_text",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "usage_source",
    "cost",
    "latency_ms",
    "ttft_ms",
    "attributes",
    "prompt_name",
    "prompt_version",
    "prompt_label",
    "experiment",
    "variant",
    "guardrail",
    "otel_trace_id",
    "otel_span_id",
    "otel_parent_span_id",
)
_JSON_POSITIONS = frozenset(TRACE_COLUMNS.index(name) for name in ("request", "attributes"))


def row_without_nul(row: TraceRow) -> TraceRow:
    """The row with NUL characters replaced in text and inside JSON strings (Postgres refuses both)."""
    return tuple(
        _json_without_nul(value) if index in _JSON_POSITIONS else without_nul(value)
        for index, value in enumerate(row)
    )


def _json_without_nul(text: str | None) -> str | None:
    if text is None or _JSON_NUL not in text:
        return text
    return orjson.dumps(without_nul(orjson.loads(text))).decode()


def without_nul(value: Any) -> Any:
    """Postgres text and JSONB refuse NUL characters: the writer's fallback replaces them
    rather than lose the trace (only after a failed insert, so the common path pays nothing)."""
    if isinstance(value, str):
        return value.replace(_NUL, "\ufffd") if _NUL in value else value
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_nul(item) for item in value]
    return value

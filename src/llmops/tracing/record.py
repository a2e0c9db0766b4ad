"""One trace: what the gateway learned about a single request, ready to become a row."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

_NUL = "\x00"


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

    @property
    def status(self) -> str:
        return "ok" if self.status_code < 400 else "error"

    def to_row(self) -> dict[str, Any]:
        """The row for the ``trace`` table (done by the writer, off the request path)."""
        row = {name: getattr(self, name) for name in _FIELD_NAMES}
        row["started_at"] = datetime.fromtimestamp(self.started_at, UTC)
        row["ended_at"] = datetime.fromtimestamp(self.ended_at or self.started_at, UTC)
        row["status"] = self.status
        row["attributes"] = self.attributes or None
        return row


_FIELD_NAMES = tuple(f.name for f in fields(TraceRecord))


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

"""W3C Trace Context on the gateway's path: read a ``traceparent`` header, link the request's trace.

Parsing is a split and a few length checks (no regular expression), cheap enough for every /v1
request that carries the header. An invalid header is ignored, as the W3C recommendation says:
the request goes on and its trace starts an OTel trace of its own.
"""

from __future__ import annotations

from llmops.tracing.record import TraceRecord

_HEX = "0123456789abcdef"
ZERO_TRACE_ID = "0" * 32
ZERO_SPAN_ID = "0" * 16


def parse_traceparent(value: bytes | str) -> tuple[str, str] | None:
    """(trace id, parent span id) of a ``traceparent`` value, or None when it is not a valid one.

    ``00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>``, lower-case hex, ids not all zeros;
    version ``ff`` is invalid; a later version may append ``-...`` fields, which are ignored.
    """
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    parts = value.strip(" \t").split("-")
    if len(parts) < 4:
        return None
    version, trace_id, parent_id, flags = parts[0], parts[1], parts[2], parts[3]
    if len(version) != 2 or version == "ff" or (version == "00" and len(parts) != 4):
        return None
    if len(trace_id) != 32 or len(parent_id) != 16 or len(flags) != 2:
        return None
    if (version + trace_id + parent_id + flags).strip(_HEX):  # anything but lower-case hex left
        return None
    if trace_id == ZERO_TRACE_ID or parent_id == ZERO_SPAN_ID:
        return None
    return trace_id, parent_id


def gateway_span_id(trace_id: str) -> str:
    """The OTel span id of a gateway trace: the last 16 hex digits of its id (random bits)."""
    span_id = trace_id[-16:]
    return span_id if span_id != ZERO_SPAN_ID else "0" * 15 + "1"


def link_caller(record: TraceRecord, traceparent: bytes) -> bool:
    """Make the request's trace a child of the caller's span; False (and nothing set) when invalid."""
    parsed = parse_traceparent(traceparent)
    if parsed is None:
        return False
    record.otel_trace_id, record.otel_parent_span_id = parsed
    record.otel_span_id = gateway_span_id(record.id)
    return True

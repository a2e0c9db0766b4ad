"""OTLP/HTTP trace ingest: what ``POST /otlp/v1/traces`` does with an application's spans.

A span that describes a call to a model (GenAI ``gen_ai.*`` attributes, as OpenLLMetry and the
OpenTelemetry instrumentations write them, or OpenInference's ``llm.*``) becomes a trace of endpoint
``otlp``: model, provider, tokens, cost, latency, status, messages (when ``trace_content`` is on) and
its other attributes, queued to the trace writer like a gateway request's, so that stats, alerts and
drift count it. Every other span (agent steps, tools, retrievers, web handlers) goes to the ``span``
table, so that the tree of an OTel trace is whole. Both keep the span's OTel trace, span and parent ids.

Decoding runs in a worker thread (a large body must not stall the event loop that serves /v1).

Errors (each a :class:`~llmops.errors.UserError` with its HTTP status): :class:`InvalidOtlpBody` (400,
the body does not parse), :class:`UnsupportedMediaType` (415, neither protobuf nor JSON, or an
encoding other than gzip), :class:`OtlpBodyTooLarge` (413). :class:`SpansNotStored` (503, the
database refused the spans; the sender retries) is not the caller's fault.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy.exc import SQLAlchemyError

from llmops.errors import UserError
from llmops.tracing.otel.conventions import ModelCall, model_call, without_content
from llmops.tracing.otel.spans import SpanRepository
from llmops.tracing.otel.traceparent import ZERO_SPAN_ID, ZERO_TRACE_ID
from llmops.tracing.record import TraceRecord, without_nul
from llmops.tracing.writer import TraceWriter

log = logging.getLogger("llmops.tracing")

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
ENDPOINT = "otlp"  # the endpoint of a trace made from an ingested span
MAX_EVENTS = 32  # events kept per span (exceptions first in mind)
_LATEST_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z: later times cannot be stored
CostOf = Callable[[str, int, int], float | None]
"""(model, prompt tokens, completion tokens) -> USD, when the model has configured prices."""


class InvalidOtlpBody(UserError):
    """The body is not an OTLP trace export."""

    code = "invalid_otlp_body"


class UnsupportedMediaType(UserError):
    status = 415
    code = "unsupported_media_type"


class OtlpBodyTooLarge(UserError):
    status = 413
    code = "request_too_large"


class SpansNotStored(Exception):
    """The database could not take the spans now (the answer is 503: OTLP senders retry)."""

    status: ClassVar[int] = 503


@dataclass(slots=True)
class IngestedSpan:
    """One span of an export, its ids as hex text."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    start_ns: int
    end_ns: int
    status: str  # ok | error | unset
    status_message: str | None
    attributes: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    service_name: str | None = None
    scope_name: str | None = None


@dataclass(slots=True)
class Decoded:
    """What one export held: spans to store, and how many were rejected (with the first reason)."""

    spans: list[IngestedSpan]
    rejected: int = 0
    message: str | None = None


@dataclass(slots=True)
class IngestResult:
    accepted: int
    rejected: int
    message: str | None
    json: bool  # answer in the request's encoding


def media_type(content_type: bytes | None) -> bool:
    """True for OTLP JSON, False for protobuf; :class:`UnsupportedMediaType` for anything else."""
    value = (content_type or b"").split(b";", 1)[0].strip().lower().decode("latin-1")
    if value == PROTOBUF:
        return False
    if value == JSON:
        return True
    shown = value or "none"
    raise UnsupportedMediaType(f"Content-Type {shown!r}: send {PROTOBUF} or {JSON}", param="content-type")


def decompressed(body: bytes, content_encoding: bytes | None, limit: int) -> bytes:
    """The body without its gzip ``Content-Encoding`` (at most ``limit`` bytes once inflated)."""
    encoding = (content_encoding or b"identity").strip().lower()
    if encoding == b"identity":
        return body
    if encoding != b"gzip":
        shown = encoding.decode("latin-1")
        raise UnsupportedMediaType(f"Content-Encoding {shown!r}: send gzip or none", param="content-encoding")
    parts: list[bytes] = []
    size, rest = 0, body
    while True:  # gzip members one after another (RFC 1952) inflate to their concatenation
        inflater = zlib.decompressobj(wbits=31)
        try:
            data = inflater.decompress(rest, limit - size + 1)
        except zlib.error as exc:
            raise InvalidOtlpBody(f"the body is not valid gzip: {exc}") from exc
        size += len(data)
        if size > limit or inflater.unconsumed_tail:
            raise OtlpBodyTooLarge(f"the inflated body is larger than {limit} bytes")
        if not inflater.eof:
            raise InvalidOtlpBody("the gzip body is truncated")
        parts.append(data)
        rest = inflater.unused_data
        if not rest:
            return b"".join(parts)


def decode(body: bytes, json: bool) -> Decoded:
    """The spans of an OTLP body (protobuf or JSON); a span with invalid ids or times is rejected."""
    from llmops.tracing.otel import wire

    try:
        request = wire.decode_request(body, json)
    except wire.WireError as exc:
        raise InvalidOtlpBody(str(exc)) from exc
    result = Decoded([])
    for resource_spans in request.resource_spans:
        resource = wire.attributes_of(resource_spans.resource.attributes)
        service = resource.get("service.name")
        service_name = service[:200] if isinstance(service, str) else None
        for scope_spans in resource_spans.scope_spans:
            scope_name = scope_spans.scope.name[:200] or None
            for span in scope_spans.spans:
                reason = _invalid(span)
                if reason is not None:
                    result.rejected += 1
                    result.message = result.message or reason
                    continue
                result.spans.append(_span(wire, span, service_name, scope_name))
    return result


def _invalid(span: Any) -> str | None:
    trace_id, span_id, parent = span.trace_id, span.span_id, span.parent_span_id
    if len(trace_id) != 16 or trace_id.hex() == ZERO_TRACE_ID:
        return f"span {span.name!r}: the trace id must be 16 bytes, not all zero"
    if len(span_id) != 8 or span_id.hex() == ZERO_SPAN_ID:
        return f"span {span.name!r}: the span id must be 8 bytes, not all zero"
    if parent and len(parent) != 8:
        return f"span {span.name!r}: the parent span id must be 8 bytes or empty"
    if not 0 < span.start_time_unix_nano <= _LATEST_SECONDS * 10**9:
        return f"span {span.name!r}: no start time, or one after the year 9999"
    return None


def _span(wire: Any, span: Any, service_name: str | None, scope_name: str | None) -> IngestedSpan:
    status = {wire.STATUS_OK: "ok", wire.STATUS_ERROR: "error"}.get(span.status.code, "unset")
    events = [
        {"name": event.name, "time_unix_nano": event.time_unix_nano, **_event_attributes(wire, event)}
        for event in list(span.events)[:MAX_EVENTS]
    ]
    parent = span.parent_span_id.hex() if span.parent_span_id else None
    return IngestedSpan(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=parent if parent != ZERO_SPAN_ID else None,
        name=span.name,
        kind=wire.KINDS.get(span.kind, "unset"),
        start_ns=span.start_time_unix_nano,
        end_ns=min(max(span.end_time_unix_nano, span.start_time_unix_nano), _LATEST_SECONDS * 10**9),
        status=status,
        status_message=span.status.message or None,
        attributes=wire.attributes_of(span.attributes),
        events=events,
        service_name=service_name,
        scope_name=scope_name,
    )


def _event_attributes(wire: Any, event: Any) -> dict[str, Any]:
    attributes = wire.attributes_of(event.attributes)
    return {"attributes": attributes} if attributes else {}


# ---- spans -> rows -------------------------------------------------------------------------------


def trace_id_of(span: IngestedSpan) -> str:
    """The llmops id of an ingested model call: its start (milliseconds, so ids still sort by time)
    and a hash of its OTel ids, so that a span sent twice is one trace."""
    millis = min(max(span.start_ns // 1_000_000, 0), 2**48 - 1)
    digest = hashlib.sha256(f"{span.trace_id}{span.span_id}".encode()).hexdigest()
    return f"{millis:012x}{digest[:20]}"


def trace_record(
    span: IngestedSpan, call: ModelCall, api_key_id: str | None, cost_of: CostOf | None = None
) -> TraceRecord:
    """The trace of an ingested span that describes a model call."""
    start, end = span.start_ns / 1e9, span.end_ns / 1e9
    record = TraceRecord(
        id=trace_id_of(span),
        started_at=start,
        endpoint=ENDPOINT,
        requested_model=call.model[:200],
        stream=call.stream,
        api_key_id=api_key_id,
    )
    record.ended_at = end
    record.latency_ms = (span.end_ns - span.start_ns) / 1e6
    record.provider = call.provider[:100] if call.provider else None
    record.upstream_model = (call.response_model or call.model)[:200]
    record.prompt_tokens, record.completion_tokens = call.prompt_tokens, call.completion_tokens
    if call.prompt_tokens is not None or call.completion_tokens is not None:
        record.usage_source = ENDPOINT
    record.cost = call.cost
    if record.cost is None and cost_of is not None and record.usage_source is not None:
        record.cost = cost_of(call.model, call.prompt_tokens or 0, call.completion_tokens or 0)
    record.finish_reason = call.finish_reason
    record.request, record.response_text = call.request, call.response_text
    if span.status == "error" or call.error_type is not None:
        _set_error(record, span, call)
    record.attributes = {"otel": _otel_attributes(span, call)}
    record.otel_trace_id, record.otel_span_id = span.trace_id, span.span_id
    record.otel_parent_span_id = span.parent_span_id
    return record


def _set_error(record: TraceRecord, span: IngestedSpan, call: ModelCall) -> None:
    status = span.attributes.get("http.response.status_code", span.attributes.get("http.status_code"))
    record.status_code = status if isinstance(status, int) and 400 <= status <= 599 else 500
    exception = next((event for event in span.events if event["name"] == "exception"), None)
    details = exception.get("attributes", {}) if exception else {}
    error_type = call.error_type or details.get("exception.type") or "error"
    record.error_type = str(error_type)[:100]
    message = span.status_message or details.get("exception.message")
    record.error_message = str(message) if message else None


def _otel_attributes(span: IngestedSpan, call: ModelCall) -> dict[str, Any]:
    otel: dict[str, Any] = {"name": span.name, "kind": span.kind}
    if call.operation:
        otel["operation"] = call.operation
    if span.service_name:
        otel["service"] = span.service_name
    if span.scope_name:
        otel["scope"] = span.scope_name
    attributes = {name: value for name, value in span.attributes.items() if name not in call.content_keys}
    if attributes:
        otel["attributes"] = attributes
    if span.events:
        otel["events"] = span.events
    return otel


def span_row(span: IngestedSpan, api_key_id: str | None, received_at: datetime) -> dict[str, Any]:
    """The ``span`` row of an ingested span that is not a model call (NUL characters replaced)."""
    row = {
        "otel_trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id,
        "name": span.name[:300],
        "kind": span.kind,
        "service_name": span.service_name,
        "scope_name": span.scope_name,
        "started_at": datetime.fromtimestamp(span.start_ns / 1e9, UTC),
        "ended_at": datetime.fromtimestamp(span.end_ns / 1e9, UTC),
        "duration_ms": (span.end_ns - span.start_ns) / 1e6,
        "status": span.status,
        "status_message": span.status_message,
        "attributes": span.attributes or None,
        "events": span.events or None,
        "api_key_id": api_key_id,
        "received_at": received_at,
    }
    cleaned: dict[str, Any] = without_nul(row)
    return cleaned


def _drop_content(span: IngestedSpan) -> None:
    """``trace_content`` off: no messages, documents or tool arguments, in attributes or events."""
    span.attributes = without_content(span.attributes)
    for event in span.events:
        if "attributes" in event:
            kept = without_content(event["attributes"])
            if kept:
                event["attributes"] = kept
            else:
                del event["attributes"]


# ---- the service ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Prepared:
    records: list[TraceRecord]
    span_rows: list[dict[str, Any]]
    rejected: int
    message: str | None


class OtlpIngest:
    """Turns OTLP exports into traces (queued to the trace writer) and span rows (stored at once)."""

    def __init__(
        self,
        writer: TraceWriter,
        spans: SpanRepository,
        *,
        record_content: bool,
        max_body_bytes: int,
        cost_of: CostOf | None = None,
    ) -> None:
        self._writer = writer
        self._spans = spans
        self._record_content = record_content
        self._limit = max_body_bytes
        self._cost_of = cost_of

    async def ingest(
        self,
        body: bytes,
        content_type: bytes | None,
        content_encoding: bytes | None,
        api_key_id: str | None,
    ) -> IngestResult:
        """Store one export; raises the errors of this module's docstring."""
        json = media_type(content_type)
        try:
            prepared = await asyncio.to_thread(self._prepare, body, json, content_encoding, api_key_id)
            if prepared.span_rows:
                await asyncio.to_thread(self._spans.insert, prepared.span_rows)
        except SQLAlchemyError as exc:
            log.warning("cannot store ingested spans: %s", str(exc).splitlines()[0])
            raise SpansNotStored("the spans cannot be stored right now; retry later") from exc
        rejected, message = prepared.rejected, prepared.message
        queued = 0
        for record in prepared.records:
            admission = self._writer.admission()
            if admission is not None:  # trace_overflow=block: wait for room, as a gateway request does
                await admission
            if self._writer.submit(record):
                queued += 1
        if queued < len(prepared.records):
            rejected += len(prepared.records) - queued
            message = message or "the trace queue is full; some model-call spans were dropped"
        return IngestResult(queued + len(prepared.span_rows), rejected, message, json)

    def _prepare(
        self, body: bytes, json: bool, content_encoding: bytes | None, api_key_id: str | None
    ) -> _Prepared:
        decoded = decode(decompressed(body, content_encoding, self._limit), json)
        records: list[TraceRecord] = []
        span_rows: list[dict[str, Any]] = []
        now = datetime.now(UTC)
        for span in decoded.spans:
            call = model_call(span.attributes, content=self._record_content)
            if not self._record_content:
                _drop_content(span)
            if call is None:
                span_rows.append(span_row(span, api_key_id, now))
            else:
                records.append(trace_record(span, call, api_key_id, self._cost_of))
        if records:  # an exporter's retry: what is stored already is not queued again
            stored = self._spans.stored_traces([record.id for record in records])
            records = [record for record in records if record.id not in stored]
        return _Prepared(records, span_rows, decoded.rejected, decoded.message)

    @staticmethod
    def response(result: IngestResult) -> bytes:
        from llmops.tracing.otel import wire

        return wire.encode_response(result.rejected, result.message, result.json)

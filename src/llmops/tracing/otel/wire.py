"""OTLP/HTTP bodies: ``ExportTraceServiceRequest`` and its response, as protobuf or as OTLP JSON.

Uses the message classes of the ``opentelemetry-proto`` package (imported here only: import this
module lazily). OTLP JSON is protobuf's JSON mapping with two differences, both handled here: trace
and span ids are hex (not base64), and enums are integers.

Raises :class:`WireError` for a body that does not parse.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

ExportRequest = trace_service_pb2.ExportTraceServiceRequest
ExportResponse = trace_service_pb2.ExportTraceServiceResponse
Span = trace_pb2.Span

KINDS = {0: "unset", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
SPAN_KIND_CLIENT = 3
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2
_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")
_INT64 = 2**63


class WireError(ValueError):
    """The body is not an OTLP trace export (the message says why, in one line)."""


@dataclass(slots=True)
class SpanData:
    """One span to export (ids as hex text, times in unix nanoseconds)."""

    trace_id: str
    span_id: str
    name: str
    start_ns: int
    end_ns: int
    attributes: Mapping[str, Any]
    parent_span_id: str | None = None
    kind: int = SPAN_KIND_CLIENT
    status_code: int = STATUS_UNSET
    status_message: str = ""
    events: list[tuple[str, int, Mapping[str, Any]]] = field(default_factory=list)


# ---- decoding (ingest) ---------------------------------------------------------------------------


def decode_request(body: bytes, json: bool) -> Any:
    """The ``ExportTraceServiceRequest`` of a protobuf or OTLP JSON body."""
    request = ExportRequest()
    if not json:
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise WireError(f"not an OTLP protobuf ExportTraceServiceRequest: {exc}") from exc
        return request
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise WireError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise WireError("expected a JSON object (an OTLP ExportTraceServiceRequest)")
    _ids_to_base64(data)
    try:
        json_format.ParseDict(data, request, ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError) as exc:
        raise WireError(f"not an OTLP JSON ExportTraceServiceRequest: {_one_line(exc)}") from exc
    return request


def _ids_to_base64(data: dict[str, Any]) -> None:
    """OTLP JSON writes ids in hex; protobuf's JSON mapping reads bytes as base64."""
    for resource in _items(data, "resourceSpans", "resource_spans"):
        for scope in _items(resource, "scopeSpans", "scope_spans"):
            for span in _items(scope, "spans"):
                _fix_ids(span)
                for link in _items(span, "links"):
                    _fix_ids(link)


def _items(data: Any, *keys: str) -> list[Any]:
    if not isinstance(data, dict):
        return []
    for key in keys:
        value = data.get(key)
        if isinstance(value, list):
            return value
    return []


def _fix_ids(item: Any) -> None:
    if not isinstance(item, dict):
        return
    for key in _ID_KEYS:
        value = item.get(key)
        if isinstance(value, str):
            try:
                raw = bytes.fromhex(value)
            except ValueError:  # an invalid id: the span is rejected (partial success), not the body
                raw = b"\x00"  # of no valid length, so that a bad parent id is not taken for none
            item[key] = base64.b64encode(raw).decode()


def any_value(value: Any) -> Any:
    """A protobuf ``AnyValue`` as a plain JSON-able value (bytes as hex, non-finite floats as text)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        number = value.double_value
        return number if number - number == 0 else str(number)  # NaN and infinities have no JSON
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return None


def attributes_of(pairs: Iterable[Any]) -> dict[str, Any]:
    return {pair.key: any_value(pair.value) for pair in pairs}


def encode_response(rejected: int, message: str | None, json: bool) -> bytes:
    """An ``ExportTraceServiceResponse``: empty on full success, else its ``partial_success``."""
    if json:
        if not rejected and not message:
            return b"{}"
        partial = {"rejectedSpans": str(rejected), "errorMessage": message or ""}
        return orjson.dumps({"partialSuccess": partial})
    response = ExportResponse()
    if rejected or message:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message or ""
    return bytes(response.SerializeToString())


# ---- encoding (export) ---------------------------------------------------------------------------


def encode_request(
    spans: Iterable[SpanData], resource: Mapping[str, Any], scope: tuple[str, str], json: bool
) -> bytes:
    """One ``ExportTraceServiceRequest`` holding ``spans`` under one resource and one scope."""
    request = ExportRequest()
    resource_spans = request.resource_spans.add()
    _set_attributes(resource_spans.resource.attributes, resource)
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name, scope_spans.scope.version = scope
    for data in spans:
        _fill(scope_spans.spans.add(), data)
    if not json:
        return bytes(request.SerializeToString())
    body = json_format.MessageToDict(request, use_integers_for_enums=True)
    for resource_item in body.get("resourceSpans", []):
        for scope_item in resource_item.get("scopeSpans", []):
            for span in scope_item.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return orjson.dumps(body)


def _fill(span: Any, data: SpanData) -> None:
    span.trace_id = bytes.fromhex(data.trace_id)
    span.span_id = bytes.fromhex(data.span_id)
    if data.parent_span_id:
        span.parent_span_id = bytes.fromhex(data.parent_span_id)
    span.name = data.name
    span.kind = data.kind
    span.start_time_unix_nano = data.start_ns
    span.end_time_unix_nano = data.end_ns
    _set_attributes(span.attributes, data.attributes)
    if data.status_code != STATUS_UNSET:
        span.status.code = data.status_code
        span.status.message = data.status_message
    for name, time_ns, attributes in data.events:
        event = span.events.add()
        event.name, event.time_unix_nano = name, time_ns
        _set_attributes(event.attributes, attributes)


def _set_attributes(target: Any, attributes: Mapping[str, Any]) -> None:
    for key, value in attributes.items():
        pair = target.add()
        pair.key = key
        _set_value(pair.value, value)


def _set_value(target: Any, value: Any) -> None:
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int) and -_INT64 <= value < _INT64:
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, list | tuple):
        for item in value:
            _set_value(target.array_value.values.add(), item)
    elif isinstance(value, bytes):
        target.bytes_value = value
    else:
        target.string_value = value if isinstance(value, str) else str(value)


def decode_response(body: bytes, json: bool) -> tuple[int, str]:
    """(rejected spans, error message) of a receiver's answer; (0, "") when it says nothing more."""
    if not body:
        return 0, ""
    try:
        if json:
            data = orjson.loads(body)
            partial = data.get("partialSuccess") or data.get("partial_success") or {}
            rejected = partial.get("rejectedSpans", partial.get("rejected_spans", 0))
            return int(rejected or 0), str(partial.get("errorMessage", partial.get("error_message", "")))
        response = ExportResponse()
        response.ParseFromString(body)
        return int(response.partial_success.rejected_spans), response.partial_success.error_message
    except (DecodeError, orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return 0, ""


def _one_line(exc: BaseException) -> str:
    message = str(exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__


__all__ = [
    "KINDS",
    "STATUS_ERROR",
    "STATUS_OK",
    "STATUS_UNSET",
    "SpanData",
    "WireError",
    "any_value",
    "attributes_of",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
]

"""A local OTLP/HTTP trace receiver for the OpenTelemetry tests: it decodes what it gets (protobuf
with opentelemetry-proto's classes, JSON by hand, as a collector reads them) and can answer with
chosen statuses (503 to make an exporter retry, a partial success)."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2


@dataclass
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status_code: int
    status_message: str
    resource: dict[str, Any]
    content_type: str


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {pair.key: _value(pair.value) for pair in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def _json_value(value: dict[str, Any]) -> Any:
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return value["boolValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "arrayValue" in value:
        return [_json_value(item) for item in value["arrayValue"].get("values", [])]
    return None


def decode_protobuf(body: bytes) -> Iterator[ReceivedSpan]:
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.ParseFromString(body)
    for resource_spans in request.resource_spans:
        resource = {pair.key: _value(pair.value) for pair in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield ReceivedSpan(
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex() or None,
                    name=span.name,
                    kind=span.kind,
                    start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano,
                    attributes={pair.key: _value(pair.value) for pair in span.attributes},
                    status_code=span.status.code,
                    status_message=span.status.message,
                    resource=resource,
                    content_type="application/x-protobuf",
                )


def decode_json(body: bytes) -> Iterator[ReceivedSpan]:
    """OTLP JSON as the specification writes it: camelCase, hex ids, integer enums."""
    data = orjson.loads(body)
    for resource_spans in data["resourceSpans"]:
        attributes = resource_spans.get("resource", {}).get("attributes", [])
        resource = {pair["key"]: _json_value(pair["value"]) for pair in attributes}
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                status = span.get("status", {})
                yield ReceivedSpan(
                    trace_id=span["traceId"],
                    span_id=span["spanId"],
                    parent_span_id=span.get("parentSpanId") or None,
                    name=span["name"],
                    kind=int(span["kind"]),
                    start_ns=int(span["startTimeUnixNano"]),
                    end_ns=int(span["endTimeUnixNano"]),
                    attributes={
                        pair["key"]: _json_value(pair["value"]) for pair in span.get("attributes", [])
                    },
                    status_code=int(status.get("code", 0)),
                    status_message=status.get("message", ""),
                    resource=resource,
                    content_type="application/json",
                )


@dataclass
class OtlpReceiver:
    """``with OtlpReceiver() as receiver``: POST /v1/traces on 127.0.0.1; ``answers`` are used first."""

    answers: list[int] = field(default_factory=list)
    rejected: int = 0  # spans to report as rejected in a partial success
    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1/traces"

    def __enter__(self) -> OtlpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the name http.server calls)
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                content_type = self.headers.get("content-type", "")
                with receiver.lock:
                    receiver.requests.append(dict(self.headers))
                    status = receiver.answers.pop(0) if receiver.answers else 200
                    if status == 200:
                        decode = decode_json if content_type == "application/json" else decode_protobuf
                        receiver.spans.extend(decode(body))
                self._answer(status, content_type)

            def _answer(self, status: int, content_type: str) -> None:
                if content_type == "application/json":
                    partial = {"rejectedSpans": str(receiver.rejected), "errorMessage": "too old"}
                    payload = orjson.dumps({"partialSuccess": partial} if receiver.rejected else {})
                else:
                    response = trace_service_pb2.ExportTraceServiceResponse()
                    if receiver.rejected:
                        response.partial_success.rejected_spans = receiver.rejected
                    payload = response.SerializeToString()
                self.send_response(status)
                self.send_header("content-type", content_type or "application/x-protobuf")
                self.send_header("content-length", str(len(payload)))
                if status == 503:
                    self.send_header("retry-after", "0")
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    def received(self) -> list[ReceivedSpan]:
        with self.lock:
            return list(self.spans)

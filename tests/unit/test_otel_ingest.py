"""OTLP ingest on SQLite and Postgres: protobuf, JSON and gzip bodies become traces (model calls) and
spans (the rest) with their OTel ids, nested into a tree; bad bodies are refused, bad spans rejected."""

from __future__ import annotations

import gzip
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from sqlalchemy import Engine

from llmops.store import TraceRepository
from llmops.store.traces import TraceFilter
from llmops.tracing.metrics import GatewayMetrics, MetricsRegistry
from llmops.tracing.otel.ingest import (
    IngestedSpan,
    InvalidOtlpBody,
    OtlpBodyTooLarge,
    OtlpIngest,
    UnsupportedMediaType,
    trace_id_of,
)
from llmops.tracing.otel.spans import SpanRepository
from llmops.tracing.otel.tree import TraceTree
from llmops.tracing.writer import TraceWriter

TRACE = "0af7651916cd43dd8448eb211c80319c"
ROOT, LLM, TOOL = "b7ad6b7169203331", "00f067aa0ba902b7", "53995c3f42cd8ad8"
PROTOBUF = b"application/x-protobuf"
JSON = b"application/json"
LIMIT = 1 << 20


def _any(value: Any) -> common_pb2.AnyValue:
    result = common_pb2.AnyValue()
    if isinstance(value, bool):
        result.bool_value = value
    elif isinstance(value, int):
        result.int_value = value
    elif isinstance(value, float):
        result.double_value = value
    elif isinstance(value, list):
        result.array_value.values.extend(_any(item) for item in value)
    else:
        result.string_value = value
    return result


def _span(span_id: str, parent: str, name: str, attributes: dict[str, Any], **fields: Any) -> trace_pb2.Span:
    start = fields.pop("start", time.time_ns() - 2_000_000_000)
    span = trace_pb2.Span(
        trace_id=bytes.fromhex(fields.pop("trace_id", TRACE)),
        span_id=bytes.fromhex(span_id),
        parent_span_id=bytes.fromhex(parent),
        name=name,
        kind=fields.pop("kind", trace_pb2.Span.SPAN_KIND_INTERNAL),
        start_time_unix_nano=start,
        end_time_unix_nano=start + fields.pop("duration_ns", 150_000_000),
        **fields,
    )
    for key, value in attributes.items():
        span.attributes.add(key=key, value=_any(value))
    return span


def _export(*spans: trace_pb2.Span, service: str = "agent-app") -> bytes:
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name", value=_any(service))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "test-instrumentation"
    scope_spans.spans.extend(spans)
    return bytes(request.SerializeToString())


def _agent_run() -> bytes:
    """An agent's request: a web handler span, a model call under it (failed), a tool under that."""
    now = time.time_ns() - 5_000_000_000
    llm_attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.usage.input_tokens": 25,
        "gen_ai.usage.output_tokens": 8,
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": "Plan my day",
        "gen_ai.completion.0.content": "Coffee first.",
        "http.response.status_code": 429,
    }
    error = trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR, message="rate limited")
    llm = _span(LLM, ROOT, "chat gpt-4o-mini", llm_attributes, start=now + 1000, kind=3, status=error)
    llm.events.add(
        name="exception",
        time_unix_nano=now + 2000,
        attributes=[common_pb2.KeyValue(key="exception.type", value=_any("RateLimitError"))],
    )
    return _export(
        _span(ROOT, "", "POST /plan", {"http.route": "/plan"}, start=now, kind=2, duration_ns=900_000_000),
        llm,
        _span(
            TOOL, LLM, "execute_tool calendar", {"gen_ai.operation.name": "execute_tool"}, start=now + 5000
        ),
    )


@pytest.fixture
async def writer(db: Engine) -> AsyncIterator[TraceWriter]:
    writer = TraceWriter(
        TraceRepository(db),
        GatewayMetrics(MetricsRegistry()),
        max_queue=1000,
        batch_size=50,
        flush_seconds=0.05,
    )
    writer.start()
    yield writer
    await writer.drain()


def _ingest(writer: TraceWriter, db: Engine, **options: Any) -> OtlpIngest:
    options.setdefault("record_content", True)
    return OtlpIngest(writer, SpanRepository(db), max_body_bytes=LIMIT, **options)


async def test_an_agent_run_becomes_a_trace_and_spans_in_one_tree(db: Engine, writer: TraceWriter) -> None:
    ingest = _ingest(writer, db, cost_of=lambda model, used, made: 0.001 * used + 0.002 * made)
    result = await ingest.ingest(_agent_run(), PROTOBUF, None, "key_abc")
    assert (result.accepted, result.rejected, result.message, result.json) == (3, 0, None, False)
    response = trace_service_pb2.ExportTraceServiceResponse()
    response.ParseFromString(OtlpIngest.response(result))
    assert not response.HasField("partial_success")
    await writer.drain()
    traces = TraceRepository(db)
    assert traces.count() == 1
    (summary,) = traces.list(_everything(), 10)
    trace = traces.get(summary["id"])
    assert trace is not None
    assert (trace["endpoint"], trace["requested_model"], trace["provider"]) == (
        "otlp",
        "gpt-4o-mini",
        "openai",
    )
    assert trace["upstream_model"] == "gpt-4o-mini-2024-07-18"
    assert (trace["prompt_tokens"], trace["completion_tokens"], trace["usage_source"]) == (25, 8, "otlp")
    assert trace["cost"] == pytest.approx(0.001 * 25 + 0.002 * 8)
    assert (trace["status"], trace["status_code"], trace["error_type"]) == ("error", 429, "RateLimitError")
    assert trace["error_message"] == "rate limited"
    assert trace["latency_ms"] == pytest.approx(150.0)
    assert trace["api_key_id"] == "key_abc"
    assert trace["request"] == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Plan my day"}],
    }
    assert (trace["response_text"], trace["finish_reason"]) == ("Coffee first.", "stop")
    assert (trace["otel_trace_id"], trace["otel_span_id"], trace["otel_parent_span_id"]) == (TRACE, LLM, ROOT)
    otel = trace["attributes"]["otel"]
    assert (otel["name"], otel["kind"], otel["service"], otel["scope"]) == (
        "chat gpt-4o-mini",
        "client",
        "agent-app",
        "test-instrumentation",
    )
    assert "gen_ai.prompt.0.content" not in otel["attributes"]  # messages went to request/response
    assert otel["attributes"]["gen_ai.usage.input_tokens"] == 25
    assert otel["events"][0]["attributes"]["exception.type"] == "RateLimitError"
    spans = SpanRepository(db)
    root = spans.get(TRACE, ROOT)
    assert root is not None
    assert (root["name"], root["kind"], root["service_name"], root["parent_span_id"]) == (
        "POST /plan",
        "server",
        "agent-app",
        None,
    )
    assert root["duration_ms"] == pytest.approx(900.0)
    assert root["attributes"] == {"http.route": "/plan"}
    assert root["api_key_id"] == "key_abc"
    (tree,) = TraceTree(traces, spans).of(trace)
    assert (tree["kind"], tree["name"], tree["current"]) == ("span", "POST /plan", False)
    (model,) = tree["children"]
    assert (model["kind"], model["trace_id"], model["current"], model["status"]) == (
        "trace",
        trace["id"],
        True,
        "error",
    )
    assert [child["name"] for child in model["children"]] == ["execute_tool calendar"]


def _everything() -> TraceFilter:
    return TraceFilter()


async def test_json_and_gzip_bodies(db: Engine, writer: TraceWriter) -> None:
    ingest = _ingest(writer, db)
    start = time.time_ns() - 1_000_000_000
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "rag"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "openinference"},
                        "spans": [
                            {
                                "traceId": TRACE,
                                "spanId": LLM,
                                "parentSpanId": ROOT,
                                "name": "ChatCompletion",
                                "kind": 1,
                                "startTimeUnixNano": str(start),
                                "endTimeUnixNano": str(start + 40_000_000),
                                "attributes": [
                                    {"key": "openinference.span.kind", "value": {"stringValue": "LLM"}},
                                    {"key": "llm.model_name", "value": {"stringValue": "llama-3"}},
                                    {"key": "llm.token_count.prompt", "value": {"intValue": "12"}},
                                    {"key": "llm.token_count.completion", "value": {"intValue": 3}},
                                    {"key": "input.value", "value": {"stringValue": "hello"}},
                                    {"key": "output.value", "value": {"stringValue": "hi there"}},
                                ],
                            },
                            {
                                "traceId": TRACE,
                                "spanId": ROOT,
                                "name": "retrieve",
                                "startTimeUnixNano": start - 1000,
                                "endTimeUnixNano": start + 90_000_000,
                                "status": {"code": 1},
                                "attributes": [
                                    {"key": "openinference.span.kind", "value": {"stringValue": "CHAIN"}}
                                ],
                            },
                        ],
                    }
                ],
            }
        ]
    }
    result = await ingest.ingest(
        gzip.compress(orjson.dumps(body)), b"application/json; charset=utf-8", b"gzip", None
    )
    assert (result.accepted, result.rejected, result.json) == (2, 0, True)
    assert OtlpIngest.response(result) == b"{}"
    await writer.drain()
    traces = TraceRepository(db)
    (summary,) = traces.list(_everything(), 10)
    trace = traces.get(summary["id"])
    assert trace is not None
    assert (trace["requested_model"], trace["prompt_tokens"], trace["completion_tokens"]) == (
        "llama-3",
        12,
        3,
    )
    assert (trace["request"], trace["response_text"]) == ({"model": "llama-3", "input": "hello"}, "hi there")
    assert trace["latency_ms"] == pytest.approx(40.0)
    assert trace["id"] == trace_id_of_parts(start, LLM)
    retrieve = SpanRepository(db).get(TRACE, ROOT)
    assert retrieve is not None
    assert (retrieve["status"], retrieve["service_name"], retrieve["scope_name"]) == (
        "ok",
        "rag",
        "openinference",
    )


def trace_id_of_parts(start_ns: int, span_id: str) -> str:
    span = IngestedSpan(TRACE, span_id, None, "", "internal", start_ns, start_ns, "unset", None, {})
    return trace_id_of(span)


async def test_invalid_spans_are_rejected_as_a_partial_success(db: Engine, writer: TraceWriter) -> None:
    ingest = _ingest(writer, db)
    body = _export(
        _span(ROOT, "", "fine", {}),
        _span(TOOL, "", "zero trace id", {}, trace_id="0" * 32),
        _span(LLM, "", "no start", {}, start=0),
    )
    result = await ingest.ingest(body, PROTOBUF, None, None)
    assert (result.accepted, result.rejected) == (1, 2)
    response = trace_service_pb2.ExportTraceServiceResponse()
    response.ParseFromString(OtlpIngest.response(result))
    assert response.partial_success.rejected_spans == 2
    assert "trace id" in response.partial_success.error_message
    json_result = await ingest.ingest(
        orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": LLM}]}]}]}),
        JSON,
        None,
        None,
    )
    assert (json_result.accepted, json_result.rejected) == (0, 1)
    assert orjson.loads(OtlpIngest.response(json_result))["partialSuccess"]["rejectedSpans"] == "1"


async def test_a_span_sent_twice_is_stored_once(db: Engine, writer: TraceWriter) -> None:
    ingest = _ingest(writer, db)
    body = _agent_run()
    await ingest.ingest(body, PROTOBUF, None, None)
    await writer.drain()
    assert SpanRepository(db).count() == 2
    retry_writer = TraceWriter(
        TraceRepository(db),
        GatewayMetrics(MetricsRegistry()),
        max_queue=10,
        batch_size=10,
        flush_seconds=0.05,
    )
    retry_writer.start()
    await _ingest(retry_writer, db).ingest(body, PROTOBUF, None, None)
    await retry_writer.drain()
    assert SpanRepository(db).count() == 2
    assert TraceRepository(db).count() == 1


async def test_content_stays_out_when_traces_keep_no_content(db: Engine, writer: TraceWriter) -> None:
    body = _export(
        _span(LLM, "", "chat m", {"gen_ai.request.model": "m", "gen_ai.prompt.0.content": "secret"}),
        _span(ROOT, "", "step", {"input.value": "secret too", "step": 1}),
    )
    await _ingest(writer, db, record_content=False).ingest(body, PROTOBUF, None, None)
    await writer.drain()
    (summary,) = TraceRepository(db).list(_everything(), 10)
    trace = TraceRepository(db).get(summary["id"])
    assert trace is not None
    assert (trace["request"], trace["response_text"]) == (None, None)
    assert "secret" not in orjson.dumps(trace["attributes"]).decode()
    step = SpanRepository(db).get(TRACE, ROOT)
    assert step is not None
    assert step["attributes"] == {"step": 1}


async def test_bad_bodies_are_refused(db: Engine, writer: TraceWriter) -> None:
    ingest = _ingest(writer, db)
    with pytest.raises(InvalidOtlpBody, match="protobuf"):
        await ingest.ingest(b"\xff\xff\xff not protobuf", PROTOBUF, None, None)
    with pytest.raises(InvalidOtlpBody, match="JSON"):
        await ingest.ingest(b"{not json", JSON, None, None)
    with pytest.raises(InvalidOtlpBody):
        await ingest.ingest(b'{"resourceSpans": "nope"}', JSON, None, None)
    with pytest.raises(InvalidOtlpBody, match="gzip"):
        await ingest.ingest(b"not gzip at all", PROTOBUF, b"gzip", None)
    with pytest.raises(InvalidOtlpBody, match="truncated"):
        await ingest.ingest(gzip.compress(_agent_run())[:-12], PROTOBUF, b"gzip", None)
    with pytest.raises(OtlpBodyTooLarge):
        await ingest.ingest(gzip.compress(b"\x00" * (LIMIT + 10)), PROTOBUF, b"gzip", None)
    with pytest.raises(UnsupportedMediaType, match="text/plain"):
        await ingest.ingest(b"{}", b"text/plain", None, None)
    with pytest.raises(UnsupportedMediaType):
        await ingest.ingest(b"{}", None, None, None)
    with pytest.raises(UnsupportedMediaType, match="br"):
        await ingest.ingest(b"{}", JSON, b"br", None)
    assert (InvalidOtlpBody.status, UnsupportedMediaType.status, OtlpBodyTooLarge.status) == (400, 415, 413)
    assert TraceRepository(db).count() == 0
    assert SpanRepository(db).count() == 0


async def test_no_content_anywhere_when_traces_keep_no_content(db: Engine, writer: TraceWriter) -> None:
    """Documents, workflow inputs and messages in events stay out too, of spans and of model calls."""
    llm = _span(LLM, ROOT, "chat m", {"gen_ai.request.model": "m"})
    llm.events.add(
        name="gen_ai.content.prompt",
        time_unix_nano=llm.start_time_unix_nano,
        attributes=[common_pb2.KeyValue(key="gen_ai.prompt", value=_any("secret prompt"))],
    )
    retrieve = _span(
        ROOT,
        "",
        "retrieve",
        {
            "retrieval.documents.0.document.content": "secret document",
            "traceloop.entity.input": "secret input",
            "top_k": 3,
        },
    )
    retrieve.events.add(
        name="log",
        time_unix_nano=retrieve.start_time_unix_nano,
        attributes=[
            common_pb2.KeyValue(key="output.value", value=_any("secret output")),
            common_pb2.KeyValue(key="level", value=_any("info")),
        ],
    )
    await _ingest(writer, db, record_content=False).ingest(_export(llm, retrieve), PROTOBUF, None, None)
    await writer.drain()
    (summary,) = TraceRepository(db).list(_everything(), 10)
    trace = TraceRepository(db).get(summary["id"])
    assert trace is not None
    assert "secret" not in orjson.dumps(trace["attributes"]).decode()
    assert trace["attributes"]["otel"]["events"] == [
        {"name": "gen_ai.content.prompt", "time_unix_nano": llm.start_time_unix_nano}
    ]
    step = SpanRepository(db).get(TRACE, ROOT)
    assert step is not None
    assert step["attributes"] == {"top_k": 3}
    assert step["events"][0]["attributes"] == {"level": "info"}
    assert "secret" not in orjson.dumps(step["events"]).decode()


async def test_gzip_members_one_after_another_are_all_read(db: Engine, writer: TraceWriter) -> None:
    first, second = _export(_span(ROOT, "", "one", {})), _export(_span(TOOL, "", "two", {}))
    body = gzip.compress(first) + gzip.compress(second)  # protobuf: the concatenation merges them
    result = await _ingest(writer, db).ingest(body, PROTOBUF, b"gzip", None)
    assert (result.accepted, result.rejected) == (2, 0)
    with pytest.raises(InvalidOtlpBody, match="gzip"):
        await _ingest(writer, db).ingest(gzip.compress(first) + b"trailing junk", PROTOBUF, b"gzip", None)


async def test_a_json_span_with_a_bad_parent_id_is_rejected(db: Engine, writer: TraceWriter) -> None:
    start = str(time.time_ns())
    span = {"traceId": TRACE, "spanId": LLM, "name": "child", "startTimeUnixNano": start}
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [{**span, "parentSpanId": "not-hex!"}]}]}]}
    result = await _ingest(writer, db).ingest(orjson.dumps(body), JSON, None, None)
    assert (result.accepted, result.rejected) == (0, 1)  # not stored as a root
    assert "parent" in str(result.message)
    assert SpanRepository(db).count() == 0

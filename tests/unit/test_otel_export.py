"""OTLP export to a local receiver that decodes what it gets: protobuf and JSON, GenAI attributes,
the caller's trace as parent, batching, retries, drops counted, and the trace writer's hand-over."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest
from sqlalchemy import Engine

from llmops.ids import new_id
from llmops.settings import SettingsError, load_settings
from llmops.store import TraceRepository
from llmops.store.trace_rows import TraceRow, utc_text
from llmops.tracing.metrics import GatewayMetrics, MetricsRegistry
from llmops.tracing.otel import link_caller
from llmops.tracing.otel.export import OtlpExporter, OtlpMetrics, Protocol, traces_url, unix_nanos
from llmops.tracing.record import TraceRecord
from llmops.tracing.writer import TraceWriter
from otel_support import OtlpReceiver

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def _record(**fields: Any) -> TraceRecord:
    start = time.time()
    record = TraceRecord(
        id=new_id(), started_at=start, endpoint="chat.completions", requested_model="gpt-x", stream=False
    )
    record.ended_at = start + 0.25
    record.latency_ms = 250.0
    record.provider, record.upstream_model, record.deployment = "openai", "gpt-x-1", "gpt-x#0"
    record.prompt_tokens, record.completion_tokens, record.cost = 10, 4, 0.5
    record.finish_reason = "stop"
    record.request = {"model": "gpt-x", "temperature": 0.3, "max_tokens": 64, "messages": []}
    for name, value in fields.items():
        setattr(record, name, value)
    return record


def _row(record: TraceRecord) -> TraceRow:
    return record.values(utc_text(""))


def _exporter(url: str, registry: MetricsRegistry | None = None, **options: Any) -> OtlpExporter:
    options.setdefault("flush_seconds", 0.05)
    return OtlpExporter(url, OtlpMetrics(registry or MetricsRegistry()), **options)


async def _wait(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
async def test_traces_are_exported_as_genai_spans(protocol: Protocol) -> None:
    ok = _record()
    failed = _record(
        status_code=502, error_type="upstream_error", error_message="upstream down", finish_reason=None
    )
    child = _record()
    link_caller(child, f"00-{CALLER_TRACE}-{CALLER_SPAN}-01".encode())
    ingested = _record(endpoint="otlp")  # came in over OTLP: not sent out again
    registry = MetricsRegistry()
    with OtlpReceiver() as receiver:
        exporter = _exporter(
            receiver.url,
            registry,
            protocol=protocol,
            headers={"x-api-key": "secret"},
            service_name="gateway-eu",
            address_of=lambda model, deployment: ("api.example.com", 8443),
        )
        exporter.start()
        exporter.offer([_row(ok), _row(failed), _row(child), _row(ingested)])
        await _wait(lambda: len(receiver.received()) == 3)
        await exporter.close()
    spans = {span.attributes["llmops.trace_id"]: span for span in receiver.received()}
    assert set(spans) == {ok.id, failed.id, child.id}
    first = spans[ok.id]
    assert first.content_type == ("application/json" if protocol == "http/json" else "application/x-protobuf")
    assert (first.trace_id, first.span_id, first.parent_span_id) == (ok.id, ok.id[-16:], None)
    assert first.name == "chat gpt-x"
    assert first.kind == 3  # CLIENT
    assert first.start_ns == unix_nanos(utc_text("")(ok.started_at))
    assert first.end_ns - first.start_ns == pytest.approx(250_000_000, abs=2000)
    assert first.resource["service.name"] == "gateway-eu"
    attributes = first.attributes
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.system"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-x"
    assert attributes["gen_ai.response.model"] == "gpt-x-1"
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (10, 4)
    assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert (attributes["gen_ai.request.temperature"], attributes["gen_ai.request.max_tokens"]) == (0.3, 64)
    assert (attributes["server.address"], attributes["server.port"]) == ("api.example.com", 8443)
    assert attributes["llmops.deployment"] == "gpt-x#0"
    assert attributes["llmops.cost"] == 0.5
    assert first.status_code == 0
    assert spans[failed.id].status_code == 2  # ERROR
    assert spans[failed.id].status_message == "upstream down"
    assert spans[failed.id].attributes["error.type"] == "upstream_error"
    linked = spans[child.id]
    assert (linked.trace_id, linked.parent_span_id, linked.span_id) == (
        CALLER_TRACE,
        CALLER_SPAN,
        child.id[-16:],
    )
    assert receiver.requests[0]["x-api-key"] == "secret"
    assert exporter.url == receiver.url
    text = registry.render().decode()
    assert "llmops_otlp_spans_exported_total 3" in text
    assert 'llmops_otlp_spans_dropped_total{reason="queue_full"} 0' in text


async def test_spans_go_in_batches_of_the_batch_size() -> None:
    with OtlpReceiver() as receiver:
        exporter = _exporter(receiver.url, batch_size=3, flush_seconds=30.0)
        exporter.start()
        exporter.offer([_row(_record()) for _ in range(7)])  # two full batches now; one waits
        await _wait(lambda: len(receiver.received()) == 6)
        assert len(receiver.requests) == 2
        await exporter.close()  # the rest goes at shutdown
        assert len(receiver.received()) == 7


async def test_a_busy_collector_is_retried_then_succeeds() -> None:
    registry = MetricsRegistry()
    with OtlpReceiver(answers=[503, 503]) as receiver:
        exporter = _exporter(receiver.url, registry)
        exporter.retry_base_seconds = 0.01
        exporter.start()
        exporter.offer([_row(_record())])
        await _wait(lambda: len(receiver.received()) == 1)
        await exporter.close()
    assert len(receiver.requests) == 3
    assert "llmops_otlp_spans_exported_total 1" in registry.render().decode()


async def test_rejections_and_failures_are_counted() -> None:
    registry = MetricsRegistry()
    metrics = OtlpMetrics(registry)
    with OtlpReceiver(answers=[400], rejected=1) as receiver:
        exporter = OtlpExporter(receiver.url, metrics, flush_seconds=0.05, queue_size=4)
        exporter.start()
        exporter.offer([_row(_record()) for _ in range(6)])  # 2 over the queue's size
        assert metrics.dropped.value(("queue_full",)) == 2
        await _wait(lambda: metrics.dropped.value(("rejected",)) == 4)  # the 400 refuses the batch
        exporter.offer([_row(_record()) for _ in range(3)])
        await _wait(lambda: metrics.exported.value() == 2)  # a partial success: one span rejected
        assert metrics.dropped.value(("rejected",)) == 5
        await exporter.close()
    unreachable = OtlpExporter(receiver.url, metrics, flush_seconds=0.05)  # the receiver is gone now
    unreachable.retry_base_seconds = 0.01
    unreachable.start()
    unreachable.offer([_row(_record()), _row(_record())])
    await _wait(lambda: metrics.dropped.value(("failed",)) == 2)
    unreachable.offer([_row(_record())])
    await unreachable.close()
    assert metrics.dropped.value(("shutdown",)) + metrics.dropped.value(("failed",)) == 3


async def test_the_writer_hands_stored_traces_to_the_exporter(db: Engine) -> None:
    with OtlpReceiver() as receiver:
        exporter = _exporter(receiver.url, protocol="http/json")
        writer = TraceWriter(
            TraceRepository(db),
            GatewayMetrics(MetricsRegistry()),
            max_queue=100,
            batch_size=10,
            flush_seconds=0.05,
            on_stored=exporter.offer,
        )
        exporter.start()
        writer.start()
        records = [_record() for _ in range(3)]
        link_caller(records[0], f"00-{CALLER_TRACE}-{CALLER_SPAN}-01".encode())
        for record in records:
            assert writer.submit(record)
        await writer.drain()
        await exporter.close()
    spans = {span.attributes["llmops.trace_id"]: span for span in receiver.received()}
    assert set(spans) == {record.id for record in records}
    assert spans[records[0].id].parent_span_id == CALLER_SPAN
    stored = TraceRepository(db).get(records[0].id)
    assert stored is not None
    assert (stored["otel_trace_id"], stored["otel_parent_span_id"]) == (CALLER_TRACE, CALLER_SPAN)
    assert stored["otel_span_id"] == records[0].id[-16:]


def test_traces_url_and_header_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert traces_url("http://collector:4318/custom/path") == "http://collector:4318/custom/path"
    monkeypatch.setenv("LLMOPS_OTLP_HEADERS", "authorization=Bearer%20abc, x-team = blue")
    assert load_settings().otlp_headers == {"authorization": "Bearer abc", "x-team": "blue"}
    monkeypatch.setenv("LLMOPS_OTLP_HEADERS", '{"api-key": "k"}')
    assert load_settings().otlp_headers == {"api-key": "k"}
    assert load_settings(otlp_headers={"a": "b"}).otlp_headers == {"a": "b"}
    monkeypatch.setenv("LLMOPS_OTLP_HEADERS", "no-equals-sign")
    with pytest.raises(SettingsError, match="otlp_headers"):
        load_settings()


def test_the_export_queue_depth_is_in_metrics() -> None:
    registry = MetricsRegistry()
    metrics = OtlpMetrics(registry)
    assert "llmops_otlp_queue_depth 0" in registry.render().decode()  # export off: still there
    exporter = OtlpExporter("http://127.0.0.1:9/v1/traces", metrics, flush_seconds=30.0)
    exporter.offer([_row(_record()) for _ in range(3)])  # not started: the rows wait
    assert "llmops_otlp_queue_depth 3" in registry.render().decode()


async def test_shutdown_gives_up_on_a_collector_that_hangs() -> None:
    """One timeout for the whole shutdown, not one per queued batch."""
    silent = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    metrics = OtlpMetrics(MetricsRegistry())
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1/traces"
    exporter = OtlpExporter(url, metrics, batch_size=1, flush_seconds=30.0, timeout_seconds=0.3)
    try:
        exporter.start()
        exporter.offer([_row(_record()) for _ in range(8)])
        started = time.monotonic()
        await exporter.close()
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert elapsed < 1.2  # 8 batches of 0.3 s each would be 2.4 s
    assert metrics.dropped.value(("shutdown",)) == 8
    assert metrics.exported.value() == 0

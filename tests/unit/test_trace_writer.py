"""The batched background trace writer on SQLite and Postgres."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import Engine

from llmops.ids import new_id
from llmops.store import TraceRepository, create_database_engine
from llmops.tracing.metrics import GatewayMetrics, MetricsRegistry
from llmops.tracing.record import TraceRecord, without_nul
from llmops.tracing.writer import TraceWriter


class _BatchRecordingRepository(TraceRepository):
    """The real repository, noting the size of every insert it is asked for."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.batches: list[int] = []

    def insert_many(self, rows: Sequence[dict[str, Any]]) -> None:
        self.batches.append(len(rows))
        super().insert_many(rows)


def _record(**fields: Any) -> TraceRecord:
    record = TraceRecord(
        id=new_id(), started_at=time.time(), endpoint="chat.completions", requested_model="m", stream=False
    )
    for name, value in fields.items():
        setattr(record, name, value)
    return record


def _writer(
    repository: TraceRepository,
    metrics: GatewayMetrics,
    *,
    max_queue: int = 10_000,
    batch_size: int = 100,
    flush_seconds: float = 0.05,
) -> TraceWriter:
    return TraceWriter(
        repository, metrics, max_queue=max_queue, batch_size=batch_size, flush_seconds=flush_seconds
    )


async def _until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
def metrics() -> GatewayMetrics:
    return GatewayMetrics(MetricsRegistry())


async def test_background_task_writes_in_batches(db: Engine, metrics: GatewayMetrics) -> None:
    repository = _BatchRecordingRepository(db)
    writer = _writer(repository, metrics, batch_size=4, flush_seconds=0.05)
    writer.start()
    records = [_record(response_text=f"answer {n}") for n in range(10)]
    for record in records:
        writer.submit(record)
    await _until(lambda: metrics.traces_written.value() == 10)  # counted once the batch is in
    assert repository.count() == 10
    assert sum(repository.batches) == 10
    assert max(repository.batches) <= 4
    assert len(repository.batches) >= 3
    assert metrics.traces_written.value() == 10
    assert writer.depth == 0
    stored = repository.get(records[7].id)
    assert stored is not None
    assert stored["response_text"] == "answer 7"
    await writer.drain()


async def test_full_batch_is_written_without_waiting_for_the_timer(
    db: Engine, metrics: GatewayMetrics
) -> None:
    repository = _BatchRecordingRepository(db)
    writer = _writer(repository, metrics, batch_size=5, flush_seconds=30)
    writer.start()
    await asyncio.sleep(0.05)  # the task is now waiting on its 30 s timer
    for _ in range(4):
        writer.submit(_record())
    await asyncio.sleep(0.2)
    assert repository.count() == 0  # a partial batch waits for the timer
    writer.submit(_record())
    await _until(lambda: metrics.traces_written.value() == 5, timeout=3)
    assert repository.count() == 5
    assert repository.batches == [5]
    await writer.drain()


async def test_partial_batch_is_written_after_flush_seconds(db: Engine, metrics: GatewayMetrics) -> None:
    repository = TraceRepository(db)
    writer = _writer(repository, metrics, batch_size=500, flush_seconds=0.1)
    writer.start()
    writer.submit(_record())
    writer.submit(_record())
    await _until(lambda: metrics.traces_written.value() == 2, timeout=3)
    assert repository.count() == 2
    assert metrics.traces_written.value() == 2
    await writer.drain()


async def test_drain_writes_everything_queued(db: Engine, metrics: GatewayMetrics) -> None:
    repository = TraceRepository(db)
    writer = _writer(repository, metrics, batch_size=100, flush_seconds=30)
    writer.start()
    for _ in range(1000):
        writer.submit(_record(request={"messages": [{"role": "user", "content": "hi"}]}))
    await writer.drain()
    assert repository.count() == 1000
    assert writer.depth == 0
    assert metrics.traces_written.value() == 1000
    assert metrics.traces_dropped.values == {}


async def test_drain_without_start(db: Engine, metrics: GatewayMetrics) -> None:
    repository = TraceRepository(db)
    writer = _writer(repository, metrics, batch_size=7)
    for _ in range(20):
        writer.submit(_record())
    await writer.drain()
    assert repository.count() == 20
    assert metrics.traces_written.value() == 20


async def test_full_queue_drops_and_counts(db: Engine, metrics: GatewayMetrics) -> None:
    repository = TraceRepository(db)
    writer = _writer(repository, metrics, max_queue=3)
    kept = [_record() for _ in range(3)]
    for record in [*kept, _record(), _record()]:
        writer.submit(record)
    assert writer.depth == 3
    assert metrics.traces_dropped.value(("queue_full",)) == 2
    assert b'llmops_traces_dropped_total{reason="queue_full"} 2' in _render(metrics)
    await writer.drain()
    assert repository.count() == 3
    assert all(repository.exists(record.id) for record in kept)
    assert metrics.traces_written.value() == 3


def _render(metrics: GatewayMetrics) -> bytes:
    registry = MetricsRegistry()
    registry.add(metrics.traces_dropped)
    return registry.render()


async def test_nul_characters_do_not_lose_the_batch(db: Engine, metrics: GatewayMetrics) -> None:
    repository = TraceRepository(db)
    writer = _writer(repository, metrics, batch_size=10)
    before = _record(response_text="fine before")
    bad = _record(
        response_text="a\x00b",
        error_message="nul\x00here",
        request={"messages": [{"role": "user", "content": "x\x00y"}], "k\x00": ["\x00"]},
    )
    after = _record(response_text="fine after")
    for record in (before, bad, after):
        writer.submit(record)
    await writer.drain()
    assert repository.count() == 3
    assert metrics.traces_written.value() == 3
    assert metrics.traces_dropped.values == {}
    stored = repository.get(bad.id)
    assert stored is not None
    if db.dialect.name == "postgresql":  # Postgres refuses NUL: the fallback replaces it
        assert stored["response_text"] == "a\ufffdb"
        assert stored["error_message"] == "nul\ufffdhere"
        assert stored["request"] == {
            "messages": [{"role": "user", "content": "x\ufffdy"}],
            "k\ufffd": ["\ufffd"],
        }
    else:  # SQLite keeps the text as it was
        assert stored["response_text"] == "a\x00b"
        assert stored["request"] == bad.request
    for good in (before, after):
        row = repository.get(good.id)
        assert row is not None
        assert row["response_text"] == good.response_text


async def test_invalid_row_is_counted_and_others_written(db: Engine, metrics: GatewayMetrics) -> None:
    repository = TraceRepository(db)
    writer = _writer(repository, metrics, batch_size=10)
    good = [_record(), _record()]
    not_null_violation = _record(requested_model=None)
    writer.submit(good[0])
    writer.submit(not_null_violation)
    writer.submit(good[1])
    await writer.drain()
    assert repository.count() == 2
    assert all(repository.exists(record.id) for record in good)
    assert metrics.traces_written.value() == 2
    assert metrics.traces_dropped.value(("invalid",)) == 1


async def test_unserialisable_row_does_not_stop_the_writer(db: Engine, metrics: GatewayMetrics) -> None:
    repository = TraceRepository(db)
    writer = _writer(repository, metrics, batch_size=10, flush_seconds=0.05)
    writer.start()
    writer.submit(_record(attributes={"tags": {"a", "b"}}))  # a set: the JSON encoder refuses it
    writer.submit(_record())
    await _until(lambda: metrics.traces_dropped.value(("invalid",)) == 1)
    assert repository.count() == 1
    later = _record()
    writer.submit(later)  # the background task is still alive
    await _until(lambda: metrics.traces_written.value() == 2)
    assert repository.exists(later.id)
    await writer.drain()
    assert repository.count() == 2
    assert metrics.traces_written.value() == 2


async def test_unreachable_database_keeps_the_batch_then_counts_it_at_shutdown(
    metrics: GatewayMetrics,
) -> None:
    engine = create_database_engine("postgresql+psycopg://postgres@127.0.0.1:1/nothing")
    try:
        writer = _writer(TraceRepository(engine), metrics, batch_size=10, flush_seconds=0.02)
        writer.start()
        writer.submit(_record())
        writer.submit(_record())
        await asyncio.sleep(0.3)
        assert writer.depth == 2  # put back for a retry, not lost
        assert metrics.traces_written.value() == 0
        assert metrics.traces_dropped.values == {}
        await writer.drain()
        assert writer.depth == 0
        assert metrics.traces_dropped.value(("shutdown",)) == 2
    finally:
        engine.dispose()


def test_record_to_row() -> None:
    record = TraceRecord(
        id="a" * 32,
        started_at=1_700_000_000.25,
        endpoint="chat.completions",
        requested_model="m",
        stream=True,
        status_code=429,
    )
    row = record.to_row()
    assert record.status == "error"
    assert row["status"] == "error"
    assert row["started_at"].timestamp() == 1_700_000_000.25
    assert row["started_at"].utcoffset().total_seconds() == 0
    assert row["ended_at"] == row["started_at"]  # not finished: same as the start
    assert row["attributes"] is None  # empty attributes are stored as NULL
    record.ended_at = 1_700_000_001.0
    record.status_code = 200
    record.attributes = {"x": 1}
    row = record.to_row()
    assert row["status"] == "ok"
    assert row["ended_at"].timestamp() == 1_700_000_001.0
    assert row["attributes"] == {"x": 1}
    assert set(row) == {column.name for column in _trace_columns()}


def _trace_columns() -> Any:
    from llmops.store.tables import traces

    return traces.columns


def test_without_nul() -> None:
    assert without_nul("plain") == "plain"
    assert without_nul("a\x00b\x00") == "a\ufffdb\ufffd"
    assert without_nul({"k\x00": ["x\x00", 1, None, {"n": "\x00"}]}) == {
        "k\ufffd": ["x\ufffd", 1, None, {"n": "\ufffd"}]
    }
    assert without_nul(3.5) == 3.5

"""The batched background trace writer on SQLite and Postgres: every submitted trace is stored,
the database may refuse rows or go away, and the overflow policy drops (counted) or blocks."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import itertools
import os
import random
import sqlite3
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal

import pytest
from sqlalchemy import Engine, create_engine, event, select, text

from llmops.ids import new_id
from llmops.store import TraceRepository, create_database_engine
from llmops.store.tables import traces
from llmops.store.trace_rows import TRACE_COLUMNS, TraceRow, TraceRowSession, TraceRowSink, utc_text
from llmops.tracing.metrics import GatewayMetrics, MetricsRegistry
from llmops.tracing.record import VALUE_ORDER, TraceRecord, row_without_nul, without_nul
from llmops.tracing.writer import TraceWriter


class _RecordingSession(TraceRowSession):
    def __init__(self, inner: TraceRowSession, batches: list[int]) -> None:
        self._inner = inner
        self._batches = batches

    def insert(self, rows: Any) -> None:
        self._inner.insert(rows)
        self._batches.append(len(rows))


class _RecordingSink(TraceRowSink):
    """The real sink, noting the size of every batch it stores."""

    def __init__(self, inner: TraceRowSink) -> None:
        self._inner = inner
        self.format_time = inner.format_time  # type: ignore[method-assign]
        self.rows_per_statement = inner.rows_per_statement
        self.batches: list[int] = []

    @contextmanager
    def session(self) -> Iterator[TraceRowSession]:
        with self._inner.session() as session:
            yield _RecordingSession(session, self.batches)


class _RecordingRepository(TraceRepository):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.sink: _RecordingSink | None = None

    def row_sink(self, statement_rows: int) -> TraceRowSink:
        self.sink = _RecordingSink(super().row_sink(statement_rows))
        return self.sink

    @property
    def batches(self) -> list[int]:
        assert self.sink is not None
        return self.sink.batches


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
    overflow: Literal["drop", "block"] = "drop",
) -> TraceWriter:
    return TraceWriter(
        repository,
        metrics,
        max_queue=max_queue,
        batch_size=batch_size,
        flush_seconds=flush_seconds,
        overflow=overflow,
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


# --- database outages, for real ----------------------------------------------------------------


class Outage:
    """Makes the test database unusable for the writer, then usable again.

    SQLite: another connection holds the write lock (the writer's connections give up after 50 ms,
    "database is locked"). Postgres: the database refuses new connections and its sessions are
    terminated, as when the server restarts.
    """

    def cut(self) -> None:
        raise NotImplementedError

    def restore(self) -> None:
        raise NotImplementedError


class _SqliteOutage(Outage):
    def __init__(self, path: str) -> None:
        self._locker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._locked = False

    def cut(self) -> None:
        self._locker.execute("BEGIN EXCLUSIVE")
        self._locked = True

    def restore(self) -> None:
        if self._locked:
            self._locker.execute("COMMIT")
            self._locked = False

    def close(self) -> None:
        self.restore()
        self._locker.close()


class _PostgresOutage(Outage):
    def __init__(self, admin_url: str, database: str) -> None:
        self._admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self._database = database

    def cut(self) -> None:
        with self._admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{self._database}" ALLOW_CONNECTIONS false'))
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                {"name": self._database},
            )

    def restore(self) -> None:
        with self._admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{self._database}" ALLOW_CONNECTIONS true'))

    def close(self) -> None:
        self.restore()
        self._admin.dispose()


def _short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA busy_timeout=50")


@pytest.fixture
def outage(db: Engine) -> Iterator[Outage]:
    made: _SqliteOutage | _PostgresOutage
    if db.dialect.name == "sqlite":
        event.listen(db, "connect", _short_busy_timeout)  # after the engine's own 10 s
        db.dispose()
        assert db.url.database is not None
        made = _SqliteOutage(db.url.database)
    else:
        assert db.url.database is not None
        made = _PostgresOutage(os.environ["LLMOPS_TEST_POSTGRES_URL"], db.url.database)
    try:
        yield made
    finally:
        made.close()


# --- batching and flushing ---------------------------------------------------------------------


async def test_background_task_writes_in_batches(db: Engine, metrics: GatewayMetrics) -> None:
    repository = _RecordingRepository(db)
    writer = _writer(repository, metrics, batch_size=4, flush_seconds=0.05)
    writer.start()
    records = [_record(response_text=f"answer {n}") for n in range(10)]
    for record in records:
        writer.submit(record)
    await _until(lambda: metrics.traces_written.value() == 10)  # counted once the batch is in
    assert repository.count() == 10
    assert sum(repository.batches) == 10
    if db.dialect.name == "sqlite":  # a statement per batch
        assert max(repository.batches) <= 4
        assert len(repository.batches) >= 3
    else:  # a COPY per trip: full batches, then the rest when the timer fires
        assert repository.batches == [8, 2]
    assert writer.depth == 0
    stored = repository.get(records[7].id)
    assert stored is not None
    assert stored["response_text"] == "answer 7"
    await writer.drain()


async def test_full_batch_is_written_without_waiting_for_the_timer(
    db: Engine, metrics: GatewayMetrics
) -> None:
    repository = _RecordingRepository(db)
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


async def test_busy_writer_sends_full_batches(db: Engine, metrics: GatewayMetrics) -> None:
    """Under load a trip takes whole batches (one statement each) and leaves the rest for the next."""
    repository = _RecordingRepository(db)
    writer = _writer(repository, metrics, batch_size=10, flush_seconds=30)
    for _ in range(57):
        writer.submit(_record())
    writer.start()
    await _until(lambda: metrics.traces_written.value() == 50)
    await asyncio.sleep(0.1)
    assert repository.batches == ([10] * 5 if db.dialect.name == "sqlite" else [50])
    assert writer.depth == 7  # waits for three more, or for the timer
    await writer.drain()
    assert repository.count() == 57
    assert sum(repository.batches) == 57


async def test_partial_batch_is_written_after_flush_seconds(db: Engine, metrics: GatewayMetrics) -> None:
    repository = TraceRepository(db)
    writer = _writer(repository, metrics, batch_size=500, flush_seconds=0.1)
    writer.start()
    writer.submit(_record())
    writer.submit(_record())
    await _until(lambda: metrics.traces_written.value() == 2, timeout=3)
    assert repository.count() == 2
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


async def test_drain_without_start_and_twice(db: Engine, metrics: GatewayMetrics) -> None:
    repository = TraceRepository(db)
    writer = _writer(repository, metrics, batch_size=7)
    for _ in range(20):
        writer.submit(_record())
    await writer.drain()
    await writer.drain()
    assert repository.count() == 20
    assert metrics.traces_written.value() == 20


async def test_a_trace_after_shutdown_is_counted(db: Engine, metrics: GatewayMetrics) -> None:
    writer = _writer(TraceRepository(db), metrics)
    await writer.drain()
    writer.submit(_record())
    assert metrics.traces_dropped.value(("shutdown",)) == 1


# --- what is stored is what was submitted ------------------------------------------------------

_BIG_TEXT = "x" * (4 * 1024 * 1024) + "é"  # a 4 MB prompt


def _varied_records() -> list[TraceRecord]:
    unicode_text = 'héllo wörld, 你好, 🎉 "quoted" \\ back\\slash \t tab \n newline \r return'
    return [
        _record(),  # the smallest: every optional column NULL
        _record(
            api_key_id="key_alice",
            requested_model="gpt-4o-mini",
            provider="openai",
            upstream_model="gpt-4o-mini-2024",
            deployment="gpt-4o-mini/east",
            cache_status="miss",
            stream=True,
            status_code=200,
            request={
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": unicode_text}],
                "temperature": 0.1 + 0.2,  # 0.30000000000000004 must survive
                "n": 2,
                "stop": ["\n", "\\N"],
                "nested": {"list": [1, -2.5e-300, None, True, False], "empty": {}, "ints": 2**63 - 1},
            },
            response_text=unicode_text,
            finish_reason="stop",
            prompt_tokens=12,
            completion_tokens=34,
            usage_source="upstream",
            cost=0.000123456789,
            ended_at=time.time() + 1.5,
            latency_ms=1500.25,
            ttft_ms=12.5,
            attributes={"choices": ["a", "b"], "ü": 1, "tool_calls": [{"id": "c1", "type": "function"}]},
        ),
        _record(
            status_code=502,
            error_type="upstream_error",
            error_message="line one\nline two\ttabbed\\",
            request={"messages": [{"role": "user", "content": _BIG_TEXT}]},
        ),
        _record(request={"messages": [{"role": "user", "content": f"m{n}"} for n in range(5000)]}),
        _record(requested_model="ümlaut-模型", response_text="", attributes={}),
    ]


def _expected(record: TraceRecord) -> dict[str, Any]:
    expected = {name: getattr(record, name) for name in TRACE_COLUMNS if hasattr(record, name)}
    expected["started_at"] = datetime.fromtimestamp(record.started_at, UTC)
    expected["ended_at"] = datetime.fromtimestamp(record.ended_at or record.started_at, UTC)
    expected["status"] = record.status
    expected["attributes"] = record.attributes or None
    return expected


def _stored(engine: Engine, trace_id: str) -> dict[str, Any]:
    with engine.connect() as connection:
        row = connection.execute(select(traces).where(traces.c.id == trace_id)).one()
    return dict(row._mapping)


async def test_rows_stored_equal_records_submitted(db: Engine, metrics: GatewayMetrics) -> None:
    repository = TraceRepository(db)
    writer = _writer(repository, metrics, batch_size=3)
    writer.start()
    records = _varied_records()
    for record in records:
        writer.submit(record)
    await writer.drain()
    assert metrics.traces_written.value() == len(records)
    assert metrics.traces_dropped.values == {}
    for record in records:
        assert _stored(db, record.id) == _expected(record)


async def test_writer_stores_what_the_core_insert_stores(db: Engine, metrics: GatewayMetrics) -> None:
    """The fast path (plain tuples) and SQLAlchemy Core read back the same, column by column."""
    repository = TraceRepository(db)
    records = _varied_records()
    twins = [dataclasses.replace(record, id=new_id()) for record in records]
    repository.insert_many([twin.to_row() for twin in twins])
    writer = _writer(repository, metrics, batch_size=100)
    for record in records:
        writer.submit(record)
    await writer.drain()
    for record, twin in zip(records, twins, strict=True):
        fast, core = _stored(db, record.id), _stored(db, twin.id)
        assert fast.pop("id") != core.pop("id")
        assert fast == core


async def test_many_rows_are_all_stored(db: Engine, metrics: GatewayMetrics) -> None:
    repository = TraceRepository(db)
    writer = _writer(repository, metrics, batch_size=100, flush_seconds=0.01)
    writer.start()
    submitted = set()
    for n in range(5003):
        record = _record(request={"messages": [{"role": "user", "content": f"question {n}"}]})
        submitted.add(record.id)
        writer.submit(record)
        if n % 500 == 0:
            await asyncio.sleep(0)  # let the writer run while more arrive
    await writer.drain()
    with db.connect() as connection:
        stored = set(connection.execute(select(traces.c.id)).scalars())
    assert stored == submitted
    assert metrics.traces_written.value() == 5003


@pytest.mark.parametrize("suffix", ["", "+00:00"])
def test_utc_text_matches_datetime(suffix: str) -> None:
    format_time = utc_text(suffix)
    samples = [1_700_000_000.0, 1_700_000_000.9999995, 1_700_000_000.0000005, 1_700_000_059.9999999, 0.5]
    samples += [1_600_000_000 + n * 0.000_123_456_7 for n in range(20_000)]  # runs through seconds
    samples += [random.uniform(0, 4_000_000_000) for _ in range(20_000)]
    samples += [-1.25, -0.5]  # before 1970: the slow path
    for seconds in samples:
        expected = datetime.fromtimestamp(seconds, UTC).isoformat(" ", "microseconds")[:26] + suffix
        assert format_time(seconds) == expected, seconds
    with pytest.raises((ValueError, OverflowError)):
        format_time(float("nan"))
    with pytest.raises((ValueError, OverflowError)):
        format_time(float("inf"))


def test_record_values_follow_the_table() -> None:
    assert VALUE_ORDER == TRACE_COLUMNS
    record = _record(request={"a": 1}, attributes={"b": [2]}, status_code=429)
    values = record.values(lambda seconds: f"t{seconds}")
    assert len(values) == len(TRACE_COLUMNS)
    row = dict(zip(TRACE_COLUMNS, values, strict=True))
    assert row["request"] == '{"a":1}'
    assert row["attributes"] == '{"b":[2]}'
    assert row["status"] == "error"
    assert row["started_at"] == row["ended_at"] == f"t{record.started_at}"  # not finished: the start
    assert all(not isinstance(value, dict | list) for value in values)
    gc.collect()
    assert not gc.is_tracked(values)  # a queued row costs the garbage collector nothing


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
    assert row["ended_at"] == row["started_at"]
    assert row["attributes"] is None
    assert set(row) == set(TRACE_COLUMNS)


def test_without_nul() -> None:
    assert without_nul("plain") == "plain"
    assert without_nul("a\x00b\x00") == "a\ufffdb\ufffd"
    assert without_nul({"k\x00": ["x\x00", 1, None, {"n": "\x00"}]}) == {
        "k\ufffd": ["x\ufffd", 1, None, {"n": "\ufffd"}]
    }
    assert without_nul(3.5) == 3.5


def test_row_without_nul_reaches_inside_json() -> None:
    record = _record(
        response_text="a\x00b",
        request={"k\x00": "v\x00", "literal": "\\u0000 is six characters"},
        attributes={"x": 1},
    )
    row: TraceRow = row_without_nul(record.values(str))
    stored = dict(zip(TRACE_COLUMNS, row, strict=True))
    assert stored["response_text"] == "a\ufffdb"
    assert stored["request"] == '{"k\ufffd":"v\ufffd","literal":"\\\\u0000 is six characters"}'
    assert stored["attributes"] == '{"x":1}'
    untouched = _record(request={"literal": "\\u0000"})
    assert row_without_nul(untouched.values(str)) == untouched.values(str)


# --- rows the database refuses -----------------------------------------------------------------


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


async def test_refused_rows_are_counted_and_the_others_written(db: Engine, metrics: GatewayMetrics) -> None:
    repository = TraceRepository(db)
    writer = _writer(repository, metrics, batch_size=10)
    good = [_record() for _ in range(25)]
    duplicate = _record()
    duplicate.id = good[3].id  # the primary key refuses it
    not_null_violation = _record(requested_model=None)
    for record in [*good[:10], not_null_violation, *good[10:20], duplicate, *good[20:]]:
        writer.submit(record)
    await writer.drain()
    assert repository.count() == 25
    assert all(repository.exists(record.id) for record in good)
    assert metrics.traces_written.value() == 25
    assert metrics.traces_dropped.value(("invalid",)) == 2


async def test_unserialisable_record_is_counted_and_the_writer_goes_on(
    db: Engine, metrics: GatewayMetrics
) -> None:
    repository = TraceRepository(db)
    writer = _writer(repository, metrics, batch_size=10, flush_seconds=0.05)
    writer.start()
    writer.submit(_record(attributes={"tags": {"a", "b"}}))  # a set: JSON cannot hold it
    writer.submit(_record(request={"big": 2**70}))  # over 64 bits
    assert metrics.traces_dropped.value(("invalid",)) == 2
    writer.submit(_record())
    await _until(lambda: metrics.traces_written.value() == 1)
    later = _record()
    writer.submit(later)
    await _until(lambda: metrics.traces_written.value() == 2)
    assert repository.exists(later.id)
    await writer.drain()
    assert repository.count() == 2


# --- the database going away -------------------------------------------------------------------


async def test_unreachable_database_keeps_the_rows_then_counts_them_at_shutdown(
    metrics: GatewayMetrics, caplog: pytest.LogCaptureFixture
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
        assert "cannot write 2 traces, will retry: connection failed" in caplog.text
        assert "the trace writer failed" not in caplog.text  # an outage, not a bug
    finally:
        engine.dispose()


async def test_database_going_away_and_back_loses_nothing(
    db: Engine, metrics: GatewayMetrics, outage: Outage
) -> None:
    repository = TraceRepository(db)
    writer = _writer(repository, metrics, batch_size=10, flush_seconds=0.02)
    writer.start()
    submitted = [_record(response_text=f"r{n}") for n in range(200)]
    for record in submitted[:50]:
        writer.submit(record)
    await _until(lambda: metrics.traces_written.value() == 50)
    outage.cut()
    for n, record in enumerate(submitted[50:]):
        writer.submit(record)
        if n % 10 == 0:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.4)
    assert metrics.traces_written.value() == 50
    assert writer.depth == 150
    outage.restore()
    await _until(lambda: metrics.traces_written.value() == 200, timeout=15)
    await writer.drain()
    assert metrics.traces_dropped.values == {}
    with db.connect() as connection:
        stored = set(connection.execute(select(traces.c.id)).scalars())
    assert stored == {record.id for record in submitted}


# --- overflow policies -------------------------------------------------------------------------


async def test_drop_policy_drops_and_counts(db: Engine, metrics: GatewayMetrics) -> None:
    repository = TraceRepository(db)
    writer = _writer(repository, metrics, max_queue=3)
    kept = [_record() for _ in range(3)]
    for record in [*kept, _record(), _record()]:
        assert writer.admission() is None  # drop never makes a request wait
        writer.submit(record)
    assert writer.depth == 3
    assert metrics.traces_dropped.value(("queue_full",)) == 2
    assert b'llmops_traces_dropped_total{reason="queue_full"} 2' in _render(metrics)
    await writer.drain()
    assert repository.count() == 3
    assert all(repository.exists(record.id) for record in kept)


def _render(metrics: GatewayMetrics) -> bytes:
    registry = MetricsRegistry()
    registry.add(metrics.traces_dropped)
    registry.add(metrics.trace_backpressure_waits)
    return registry.render()


async def _request(writer: TraceWriter, record: TraceRecord) -> None:
    """What Gateway.handle does with the writer: wait for admission, then (later) submit."""
    admission = writer.admission()
    if admission is not None:
        await admission
    writer.submit(record)


async def test_block_policy_waits_while_the_database_is_down_and_loses_nothing(
    db: Engine, metrics: GatewayMetrics, outage: Outage
) -> None:
    repository = TraceRepository(db)
    writer = _writer(repository, metrics, max_queue=20, batch_size=5, flush_seconds=0.02, overflow="block")
    writer.start()
    outage.cut()
    records = [_record(response_text=f"r{n}") for n in range(60)]
    tasks = [asyncio.create_task(_request(writer, record)) for record in records]
    await _until(lambda: writer.waiting == 40)
    await asyncio.sleep(0.3)  # several failed trips later: still nobody dropped, nobody let in
    assert writer.waiting == 40
    assert writer.depth == 20
    assert sum(task.done() for task in tasks) == 20
    assert metrics.traces_dropped.values == {}
    assert metrics.trace_backpressure_waits.value() == 40
    assert b"llmops_trace_backpressure_waits_total 40" in _render(metrics)
    outage.restore()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=15)
    await _until(lambda: metrics.traces_written.value() == 60, timeout=15)
    await writer.drain()
    assert repository.count() == 60
    assert metrics.traces_dropped.values == {}
    assert writer.waiting == 0


async def test_block_policy_lets_requests_in_first_come_first_served(
    db: Engine, metrics: GatewayMetrics
) -> None:
    repository = TraceRepository(db)
    writer = _writer(repository, metrics, max_queue=4, batch_size=2, flush_seconds=30, overflow="block")
    for _ in range(4):
        writer.submit(_record())
    order: list[int] = []

    async def request(n: int) -> None:
        await _request(writer, _record(response_text=str(n)))
        order.append(n)

    tasks = [asyncio.create_task(request(n)) for n in range(6)]
    await _until(lambda: writer.waiting == 6)
    writer.start()  # four queued rows: full batches are written at once, without the 30 s timer
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
    assert order == list(range(6))
    await writer.drain()
    assert repository.count() == 10


async def test_block_policy_drain_releases_waiting_requests(
    db: Engine, metrics: GatewayMetrics, outage: Outage
) -> None:
    repository = TraceRepository(db)
    writer = _writer(repository, metrics, max_queue=5, batch_size=5, flush_seconds=0.02, overflow="block")
    writer.start()
    outage.cut()
    tasks = [asyncio.create_task(_request(writer, _record())) for _ in range(10)]
    await _until(lambda: writer.waiting == 5)
    draining = asyncio.create_task(writer.drain())
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=2)  # released at once, database or not
    assert writer.admission() is None  # and nobody waits any more
    outage.restore()
    await asyncio.wait_for(draining, timeout=15)
    assert repository.count() == 10
    assert metrics.traces_dropped.values == {}


async def test_block_policy_a_cancelled_request_does_not_hold_the_others(
    db: Engine, metrics: GatewayMetrics
) -> None:
    repository = TraceRepository(db)
    writer = _writer(repository, metrics, max_queue=2, batch_size=2, flush_seconds=30, overflow="block")
    writer.submit(_record())
    writer.submit(_record())
    first = asyncio.create_task(_request(writer, _record()))
    second = asyncio.create_task(_request(writer, _record()))
    await _until(lambda: writer.waiting == 2)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    assert writer.waiting == 1
    writer.start()
    await asyncio.wait_for(second, timeout=5)
    await writer.drain()
    assert repository.count() == 3


def test_admission_allocates_nothing_when_there_is_room(db: Engine, metrics: GatewayMetrics) -> None:
    for overflow, queued in (("block", 300), ("drop", 400)):  # drop: the queue is full, still None
        writer = _writer(TraceRepository(db), metrics, max_queue=400, overflow=overflow)  # type: ignore[arg-type]
        for _ in range(queued):
            writer.submit(_record())
        calls = itertools.repeat(None, 10_000)
        admission = writer.admission
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            for _ in calls:
                if admission() is not None:
                    raise AssertionError("a request had to wait")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak == before, overflow

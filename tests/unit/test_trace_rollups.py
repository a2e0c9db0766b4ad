"""Trace rollups kept by the trace writer, and the stats answered from them, against a full scan."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from llmops.ids import new_id
from llmops.monitoring.rollups import RollupWriter, add_feedback, rebuild
from llmops.monitoring.sketch import QuantileSketch
from llmops.monitoring.stats import StatsQuery, StatsQueryError, StatsService
from llmops.monitoring.tables import trace_rollups
from llmops.store import TraceRepository
from llmops.store.tables import traces
from llmops.tracing.metrics import GatewayMetrics, MetricsRegistry
from llmops.tracing.record import TraceRecord
from llmops.tracing.writer import TraceWriter

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
KEYS = {"key_a": ("team_1", "search"), "key_b": ("team_2", "support"), "key_c": (None, None)}


def _records(count: int, seed: int, start: datetime = NOW - timedelta(hours=3)) -> list[TraceRecord]:
    generator = random.Random(seed)
    records = []
    for _ in range(count):
        at = start + timedelta(seconds=generator.uniform(0, 3 * 3600))
        failed = generator.random() < 0.1
        record = TraceRecord(
            id=new_id(),
            started_at=at.timestamp(),
            endpoint="chat.completions",
            requested_model=generator.choice(["gpt-a", "gpt-b", "llama"]),
            stream=False,
            api_key_id=generator.choice(list(KEYS)),
            deployment=generator.choice(["d1", "d2"]),
            status_code=500 if failed else 200,
            error_type="upstream_error" if failed else None,
            prompt_tokens=generator.randint(1, 500),
            completion_tokens=generator.randint(1, 200),
            cost=generator.random() / 100,
            latency_ms=generator.lognormvariate(5, 0.7),
            ttft_ms=generator.lognormvariate(4, 0.5) if generator.random() < 0.5 else None,
            cache_status=generator.choice([None, "hit", "miss"]),
            prompt_name=generator.choice([None, "support"]),
        )
        record.prompt_version = 2 if record.prompt_name else None
        record.ended_at = record.started_at + record.latency_ms / 1000
        records.append(record)
    return records


async def _write(engine: Engine, records: list[TraceRecord], writer_id: str) -> None:
    writer = TraceWriter(
        TraceRepository(engine),
        GatewayMetrics(MetricsRegistry()),
        max_queue=100_000,
        batch_size=100,
        flush_seconds=0.01,
        rollups=RollupWriter(engine, writer_id),
    )
    writer.start()
    for record in records:
        writer.submit(record)
    await writer.drain()


def _service(engine: Engine) -> StatsService:
    return StatsService(engine, lambda: KEYS)


def _scan(engine: Engine, since: datetime, until: datetime) -> dict[str, dict[str, Any]]:
    """The same aggregates by model, straight from the traces (what the rollups must equal)."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(traces).where(traces.c.started_at >= since, traces.c.started_at < until)
        ).all()
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = found.setdefault(
            row.requested_model, {"requests": 0, "errors": 0, "tokens": 0, "latencies": []}
        )
        entry["requests"] += 1
        entry["errors"] += row.status_code >= 400
        entry["tokens"] += row.prompt_tokens + row.completion_tokens
        entry["latencies"].append(row.latency_ms)
    return found


def test_two_writers_rollups_equal_a_full_scan(db: Engine) -> None:
    first, second = _records(1500, seed=1), _records(1500, seed=2)
    asyncio.run(_write(db, first, "replica-a"))
    asyncio.run(_write(db, second, "replica-b"))  # another replica, same buckets
    since, until = NOW - timedelta(hours=3), NOW
    result = _service(db).query(StatsQuery(since, until, "5m", ("model",)))
    expected = _scan(db, result.since, result.until)
    assert {series.group["model"] for series in result.series} == set(expected)
    for series in result.series:
        scanned = expected[series.group["model"]]
        assert series.total.requests == scanned["requests"]
        assert series.total.errors == scanned["errors"]
        assert series.total.prompt_tokens + series.total.completion_tokens == scanned["tokens"]
        truth = sorted(scanned["latencies"])
        p95 = truth[int(0.95 * (len(truth) - 1))]
        assert series.total.latency_ms["p95"] == pytest.approx(p95, rel=0.02)
        assert len(series.points) == 36  # three hours of five minutes
        assert sum(point.requests for point in series.points) == scanned["requests"]


def test_levels_give_the_same_totals(db: Engine) -> None:
    asyncio.run(_write(db, _records(800, seed=3), "replica-a"))
    service = _service(db)
    since, until = NOW - timedelta(hours=3), NOW
    totals = {
        bucket: service.query(StatsQuery(since, until, bucket)).series[0].total.requests
        for bucket in ("1m", "5m", "15m", "1h")
    }
    assert set(totals.values()) == {800}
    by_key = service.query(StatsQuery(since, until, "15m", ("key",)))  # the full rows, not the per-model ones
    assert sum(series.total.requests for series in by_key.series) == 800
    with pytest.raises(StatsQueryError, match="1m buckets are kept per model only"):
        service.query(StatsQuery(since, until, "1m", ("key",)))


def test_group_by_team_and_version_and_filters(db: Engine) -> None:
    asyncio.run(_write(db, _records(600, seed=4), "replica-a"))
    service = _service(db)
    since, until = NOW - timedelta(hours=3), NOW
    by_team = service.query(StatsQuery(since, until, "1h", ("team",)))
    assert {series.group["team"] for series in by_team.series} == {"search", "support", ""}
    one_team = service.query(StatsQuery(since, until, "1h", ("model",), team="team_1"))
    filtered = service.query(StatsQuery(since, until, "1h", ("model",), {"key": "key_a"}))
    assert sum(s.total.requests for s in one_team.series) == sum(s.total.requests for s in filtered.series)
    versions = service.query(StatsQuery(since, until, "1h", ("version",)))
    assert {series.group["version"] for series in versions.series} == {"", "support@2"}
    only = service.window(since, until, {"version": "support@2"})
    assert only.requests == next(
        s.total.requests for s in versions.series if s.group["version"] == "support@2"
    )


def test_late_rows_for_a_bucket_gone_from_memory_add_to_it(db: Engine) -> None:
    rollups = RollupWriter(db, "replica-a")  # its clock is today: these rows are late
    old = _records(50, seed=5)
    rows = [
        record.values(lambda seconds: datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S.%f"))
        for record in old
    ]
    rollups.add(rows[:25])
    rollups.flush(force=True)
    again = RollupWriter(db, "replica-a")  # the same writer after its totals left memory
    again.add(rows[25:])
    again.flush(force=True)
    with db.connect() as connection:
        total = connection.execute(
            select(func.sum(trace_rollups.c.requests)).where(
                trace_rollups.c.granularity == "h", trace_rollups.c.api_key_id != "*"
            )
        ).scalar()
    assert total == 50


def test_feedback_and_rebuild(db: Engine) -> None:
    records = _records(400, seed=6)
    asyncio.run(_write(db, records, "replica-a"))
    with db.begin() as connection:
        for record, thumb in zip(records[:30], ["up", "down", "down"] * 10, strict=True):
            trace = connection.execute(select(traces).where(traces.c.id == record.id)).first()
            assert trace is not None
            add_feedback(connection, dict(trace._mapping), 0.5, thumb)
    since, until = NOW - timedelta(hours=3), NOW
    live = _service(db).window(since, until)
    assert (live.feedback_count, live.thumbs_down, live.thumbs_down_rate) == (30, 20, pytest.approx(2 / 3))
    assert rebuild(db, since, until) == 400
    rebuilt = _service(db).window(since, until)
    assert (rebuilt.requests, rebuilt.errors, rebuilt.cost) == (
        live.requests,
        live.errors,
        pytest.approx(live.cost),
    )
    assert rebuilt.latency_ms == live.latency_ms
    assert (
        rebuilt.feedback_count == 0
    )  # feedback rows are added with the traces' feedback table: none stored here


def test_bad_queries_are_clear_errors(db: Engine) -> None:
    service = _service(db)
    since = NOW - timedelta(hours=1)
    with pytest.raises(StatsQueryError, match="bucket: expected one of 1m, 5m"):
        service.query(StatsQuery(since, NOW, "7m"))
    with pytest.raises(StatsQueryError, match="group_by: 'colour'"):
        service.query(StatsQuery(since, NOW, "5m", ("colour",)))
    with pytest.raises(StatsQueryError, match="more than 5000"):
        service.query(StatsQuery(NOW - timedelta(days=30), NOW, "1m"))
    with pytest.raises(StatsQueryError, match="until must be after since"):
        service.query(StatsQuery(NOW, since, "5m"))


def test_sketch_quantiles_are_within_one_percent() -> None:
    generator = random.Random(7)
    values = sorted(generator.lognormvariate(5, 1.2) for _ in range(20_000))
    halves = QuantileSketch.of(values[::2]), QuantileSketch.of(values[1::2])
    merged = QuantileSketch.from_json(halves[0].to_json())
    merged.merge(QuantileSketch.from_json(halves[1].to_json()))
    for q in (0.5, 0.9, 0.95, 0.99):
        truth = values[int(q * (len(values) - 1))]
        assert merged.quantile(q) == pytest.approx(truth, rel=0.011)
    assert QuantileSketch().quantile(0.5) is None

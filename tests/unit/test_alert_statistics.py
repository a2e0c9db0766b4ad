"""Alert statistics measured on the real rollups (written by the trace writer) and the spend table."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from llmops.alerts.service import InvalidAlert, parse_rule
from llmops.alerts.statistics import Measurer, budget_reader, key_finder, team_finder
from llmops.gateway.keys import KeyService
from llmops.ids import new_id
from llmops.limits.periods import bucket
from llmops.limits.policy import Limits
from llmops.limits.spend import SpendRepository
from llmops.monitoring.rollups import RollupWriter
from llmops.monitoring.stats import StatsService
from llmops.store import KeyRepository, TraceRepository
from llmops.teams.repository import TeamRepository
from llmops.teams.service import TeamService
from llmops.tracing.metrics import GatewayMetrics, MetricsRegistry
from llmops.tracing.record import TraceRecord
from llmops.tracing.writer import TraceWriter

NOW = datetime(2026, 11, 20, 12, 7, 30, tzinfo=UTC)


def _trace(
    at: datetime, model: str, *, failed: bool = False, latency: float = 100.0, **more: object
) -> TraceRecord:
    record = TraceRecord(
        id=new_id(),
        started_at=at.timestamp(),
        endpoint="chat.completions",
        requested_model=model,
        stream=False,
        status_code=500 if failed else 200,
        error_type="upstream_error" if failed else None,
        prompt_tokens=10,
        completion_tokens=5,
        cost=0.01,
        latency_ms=latency,
        ttft_ms=latency / 2,
        **more,  # type: ignore[arg-type]
    )
    record.ended_at = record.started_at + latency / 1000
    return record


async def _write(db: Engine, records: list[TraceRecord]) -> None:
    writer = TraceWriter(
        TraceRepository(db),
        GatewayMetrics(MetricsRegistry()),
        max_queue=10_000,
        batch_size=100,
        flush_seconds=0.01,
        rollups=RollupWriter(db, "test-writer"),
    )
    writer.start()
    for record in records:
        writer.submit(record)
    await writer.drain()


def _measurer(db: Engine) -> Measurer:
    keys, teams = KeyRepository(db), TeamRepository(db)
    return Measurer(
        StatsService(db, lambda: {}),
        find_key=key_finder(keys),
        find_team=team_finder(teams),
        budget_use=budget_reader(keys, teams, SpendRepository(db)),
    )


async def test_rates_percentiles_and_cost_per_hour_over_the_window(db: Engine) -> None:
    minute = timedelta(minutes=1)
    records = [_trace(NOW - 20 * minute, "gpt-a", failed=True) for _ in range(10)]  # before the window
    records += [_trace(NOW - 3 * minute, "gpt-a", latency=100.0 + i) for i in range(8)]
    records += [_trace(NOW - 2 * minute, "gpt-a", failed=True, latency=2000.0) for _ in range(2)]
    records += [_trace(NOW - 1 * minute, "gpt-b", cache_status="hit") for _ in range(5)]
    await _write(db, records)
    measurer = _measurer(db)

    def value(statistic: str, **fields: object) -> float | None:
        rule = parse_rule({"name": "r", "statistic": statistic, "threshold": 0, "window": "5m", **fields})
        return measurer.measure(rule, NOW).value

    assert value("error_rate", filters={"model": "gpt-a"}) == pytest.approx(0.2)
    assert value("error_rate") == pytest.approx(2 / 15)
    assert value("requests") == 15
    assert value("requests", window="30m") == 25
    assert value("p95_latency_ms", filters={"model": "gpt-a"}) == pytest.approx(2000, rel=0.02)
    assert value("ttft_p95_ms", filters={"model": "gpt-a"}) == pytest.approx(1000, rel=0.02)
    assert value("cache_hit_rate", filters={"model": "gpt-b"}) == 1.0
    # 15 requests at $0.01 over the 5.5 minutes from 12:02 to 12:07:30
    assert value("cost_per_hour") == pytest.approx(0.15 / (5.5 / 60))
    assert value("thumbs_down_rate") is None  # no feedback
    quiet = parse_rule({"name": "r", "statistic": "error_rate", "threshold": 0, "min_requests": 20})
    measured = measurer.measure(quiet, NOW)
    assert (measured.value, measured.requests) == (None, 15)
    assert measured.note == "15 requests in the window, fewer than min_requests 20"
    assert measured.since == datetime(2026, 11, 20, 12, 2, tzinfo=UTC)
    assert measured.until == NOW


async def test_key_and_team_filters_take_names_and_budget_use_reads_the_spend_table(db: Engine) -> None:
    keys, teams = KeyRepository(db), TeamRepository(db)
    team = TeamService(teams).create("search", limits=Limits(budget_month=100.0))
    key = KeyService(keys, teams).create("app", "inference", team=team.id, limits=Limits(budget_day=10.0)).row
    await _write(db, [_trace(NOW - timedelta(minutes=2), "gpt-a", api_key_id=key.id, failed=True)])
    measurer = _measurer(db)
    by_key = parse_rule({"name": "r", "statistic": "error_rate", "threshold": 0, "filters": {"key": "app"}})
    assert measurer.measure(by_key, NOW).value == 1.0
    nobody = parse_rule({"name": "r", "statistic": "requests", "threshold": 0, "filters": {"key": "nobody"}})
    assert measurer.measure(nobody, NOW).note == "no key named 'nobody'"

    now = time.time()
    SpendRepository(db).add(
        {
            ("key", key.id, "day", bucket("day", now)): 4_000_000_000,  # $4 of $10 today
            ("team", team.id, "month", bucket("month", now)): 90_000_000_000,  # $90 of $100 this month
        }
    )
    key_use = parse_rule(
        {"name": "k", "statistic": "budget_use", "threshold": 0.8, "filters": {"key": key.id}}
    )
    team_use = parse_rule(
        {"name": "t", "statistic": "budget_use", "threshold": 0.8, "filters": {"team": "search"}}
    )
    assert measurer.measure(key_use, NOW).value == pytest.approx(0.4)
    assert measurer.measure(team_use, NOW).value == pytest.approx(0.9)
    unlimited = KeyService(keys, teams).create("free", "inference").row
    free = parse_rule(
        {"name": "f", "statistic": "budget_use", "threshold": 0.8, "filters": {"key": unlimited.id}}
    )
    assert measurer.measure(free, NOW).note == "the key has no budget"


async def test_drift_score_comes_from_the_drift_checks_and_reuses_a_recent_one(db: Engine) -> None:
    from sqlalchemy import func, select

    from llmops.datasets.service import DatasetService
    from llmops.drift.service import DriftService
    from llmops.drift.tables import drift_checks

    def asked(at: datetime, text: str) -> TraceRecord:
        return _trace(at, "gpt-a", request={"messages": [{"role": "user", "content": text}]})

    reference = [asked(NOW - timedelta(days=3, minutes=i), f"weather in town {i}?") for i in range(60)]
    current = [
        asked(
            NOW - timedelta(minutes=10 + i), "Pouvez-vous résumer ce long rapport trimestriel " * (3 + i % 4)
        )
        for i in range(60)
    ]
    await _write(db, reference + current)
    measurer = _measurer(db)
    measurer.use_drift(
        DriftService(db, DatasetService(db), sample=200, permutations=99, embedder=lambda: None)
    )
    rule = parse_rule(
        {
            "name": "drift",
            "statistic": "drift_score",
            "threshold": 0.3,
            "window": "1d",
            "filters": {"model": "gpt-a"},
        }
    )
    first = measurer.measure(rule, NOW)
    assert first.value is not None
    assert first.value > 0.3
    assert measurer.measure(rule, NOW + timedelta(minutes=5)).value == first.value
    with db.connect() as connection:
        assert connection.execute(select(func.count()).select_from(drift_checks)).scalar_one() == 1
    with pytest.raises(InvalidAlert, match="drift_score filters by model or prompt only"):
        parse_rule({"name": "d", "statistic": "drift_score", "threshold": 1, "filters": {"key": "k"}})

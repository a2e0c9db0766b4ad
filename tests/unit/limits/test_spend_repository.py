"""The spend table on SQLite and Postgres: additions add up exactly, reads and listings by period."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from limits_support import NOON
from llmops.limits.periods import buckets, period_end, to_nano
from llmops.limits.spend import SpendLedger, SpendRepository


def test_additions_add_up_exactly(db: Engine) -> None:
    spend = SpendRepository(db)
    day = ("key", "key_a", "day", "2026-11-26")
    total = ("key", "key_a", "total", "all")
    for _ in range(1000):
        spend.add({day: 100_000_001, total: 100_000_001})  # 0.100000001 USD: a float sum would drift
    spend.add({total: 7})
    assert spend.read([day, total, ("key", "key_b", "total", "all")]) == {
        day: 100_000_001_000,
        total: 100_000_001_007,
        ("key", "key_b", "total", "all"): 0,
    }


def test_concurrent_writers_lose_nothing(db: Engine) -> None:
    """Two replicas flushing the same rows at once (one lock order, so no deadlock either)."""
    spend = SpendRepository(db)
    rows = {("team", "team_x", period, bucket): 1 for period, bucket in buckets(NOON).items()}

    def writer() -> None:
        for _ in range(50):
            spend.add(rows)

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(spend.read(rows).values()) == {100}


def test_current_spend_per_period_for_listings(db: Engine) -> None:
    spend = SpendRepository(db)
    yesterday = NOON - 86_400
    spend.add({("key", "key_a", "day", buckets(yesterday)["day"]): to_nano(4.0)})
    spend.add(
        {
            ("key", "key_a", "day", "2026-11-26"): to_nano(0.25),
            ("key", "key_a", "month", "2026-11"): to_nano(4.25),
            ("key", "key_a", "total", "all"): to_nano(10.5),
            ("team", "key_a", "total", "all"): to_nano(99.0),  # another scope with the same id
        }
    )
    assert spend.current("key", ["key_a", "key_none"], now=NOON) == {
        "key_a": {"day": 0.25, "month": 4.25, "total": 10.5},
        "key_none": {"day": 0.0, "month": 0.0, "total": 0.0},
    }
    assert spend.current("key", [], now=NOON) == {}


def test_period_ends_on_the_utc_calendar() -> None:
    assert period_end("day", NOON) == NOON + 12 * 3600
    assert period_end("month", NOON) == NOON + (4 * 24 + 12) * 3600
    assert period_end("month", 1_796_083_200.0 + 10) == 1_798_761_600.0  # December → 1 January
    assert period_end("total", NOON) is None
    assert buckets(NOON) == {"day": "2026-11-26", "month": "2026-11", "total": "all"}


async def test_a_failed_batch_is_kept_for_the_next_flush(db: Engine) -> None:
    ledger = SpendLedger(SpendRepository(db))
    key = ("key", "key_a", "total", "all")
    ledger.add(key, 5)
    with db.begin() as connection:  # the table is away: the write fails
        connection.execute(text("ALTER TABLE spend RENAME TO spend_away"))
    with pytest.raises(SQLAlchemyError):
        await ledger.flush()
    assert ledger.pending(key) == 5
    ledger.add(key, 2)
    with db.begin() as connection:
        connection.execute(text("ALTER TABLE spend_away RENAME TO spend"))
    assert await asyncio.wait_for(ledger.flush(), 5) == 1
    assert ledger.pending(key) == 0
    assert SpendRepository(db).read([key]) == {key: 7}

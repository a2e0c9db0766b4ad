"""Budgets through the limiter, the same cases on the memory backend and on real Redis.

A request reserves the most it may cost; its settlement replaces the reservation by what it cost.
Spend goes to the ``spend`` table in batches, and a counter that does not exist yet starts from it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

import pytest
from sqlalchemy import Engine

from limits_support import Clock, caller, delete_prefix
from llmops.gateway.errors import GatewayError
from llmops.limits.limiter import Demand, Limiter, Ticket
from llmops.limits.periods import to_nano
from llmops.limits.policy import Limits
from llmops.limits.redis_backend import RedisBackend
from llmops.limits.spend import SpendRepository

CENT = to_nano(0.01)


def retry_after(error: GatewayError) -> str | None:
    return dict((k.decode(), v.decode()) for k, v in error.headers).get("retry-after")


async def refused(limiter: Limiter, who: object, demand: Demand) -> GatewayError:
    with pytest.raises(GatewayError) as failed:
        await limiter.admit(who, demand)  # type: ignore[arg-type]
    return failed.value


async def settled(limiter: Limiter, ticket: Ticket, nano: int, tokens: int = 0) -> None:
    limiter.settle(ticket, tokens, nano)
    await limiter.backend.flush()
    assert limiter._metrics.backend_errors.values == {}  # the settlement was applied, not just logged


async def test_reservation_then_settlement(limiter: Limiter, engine: Engine, wall: Clock) -> None:
    key = caller("key_budget", Limits(budget_total=1.0), name="budget")
    first = await limiter.admit(key, Demand(nano=60 * CENT))
    error = await refused(limiter, key, Demand(nano=60 * CENT))  # 60 cents held by the first
    assert (error.status, error.error_type, error.code) == (429, "insufficient_quota", "insufficient_quota")
    assert error.message == (
        "budget of key 'budget' reached: $1.00 in total; spent $0.00, $0.60 held by requests under way, "
        "and this request may cost up to $0.60"
    )
    assert retry_after(error) is None  # a total budget never resets
    await settled(limiter, first, 10 * CENT)
    second = await limiter.admit(key, Demand(nano=60 * CENT))
    await settled(limiter, second, 90 * CENT)
    error = await refused(limiter, key, Demand(nano=1))
    assert "spent $1.00" in error.message
    zero_cost = await limiter.admit(key, Demand(nano=0))  # nothing left, but a free request costs nothing
    await settled(limiter, zero_cost, 0)
    await limiter.flush()
    assert SpendRepository(engine).current("key", ["key_budget"], now=wall.now)["key_budget"] == {
        "day": 1.0,
        "month": 1.0,
        "total": 1.0,
    }


async def test_a_day_budget_resets_at_utc_midnight(limiter: Limiter, wall: Clock) -> None:
    key = caller("key_daily", Limits(budget_day=0.05, budget_month=10.0))
    ticket = await limiter.admit(key, Demand(nano=5 * CENT))
    await settled(limiter, ticket, 5 * CENT)
    error = await refused(limiter, key, Demand(nano=1))
    assert error.message.endswith("it resets in 12h0m0s")
    assert retry_after(error) == str(12 * 3600)
    assert limiter._metrics.rejections.value(("key", "budget_day")) == 1
    wall.advance(12 * 3600)  # 2026-11-27 00:00 UTC
    ticket = await limiter.admit(key, Demand(nano=5 * CENT))
    await settled(limiter, ticket, 5 * CENT)
    await limiter.flush()
    spend = SpendRepository(limiter.ledger.repository._engine).current("key", ["key_daily"], now=wall.now)
    assert spend["key_daily"]["day"] == pytest.approx(0.05)
    assert spend["key_daily"]["month"] == pytest.approx(0.10)


async def test_the_team_budget_is_shared_by_its_keys(limiter: Limiter) -> None:
    team = Limits(budget_month=0.10)
    one = caller("key_m1", team_id="team_m", team_limits=team)
    two = caller("key_m2", team_id="team_m", team_limits=team)
    await settled(limiter, await limiter.admit(one, Demand(nano=6 * CENT)), 6 * CENT)
    error = await refused(limiter, two, Demand(nano=6 * CENT))
    assert error.message.startswith("budget of team 'team_m' reached: $0.10 per month (UTC)")
    assert retry_after(error) == str(4 * 86_400 + 12 * 3600)  # to 2026-12-01 00:00 UTC
    await limiter.admit(two, Demand(nano=4 * CENT))


async def test_a_request_dearer_than_the_whole_budget(limiter: Limiter) -> None:
    error = await refused(limiter, caller("key_dear", Limits(budget_day=0.01)), Demand(nano=2 * CENT))
    assert "more than the whole budget" in error.message
    assert retry_after(error) is None


async def test_concurrent_reservations_never_overshoot(limiter: Limiter) -> None:
    """Many requests under way at once, each costing up to 3 cents: spend stays within $1."""
    key = caller("key_race", Limits(budget_total=1.0))
    rng = random.Random(7)
    admitted = 0

    async def one_request() -> None:
        nonlocal admitted
        try:
            ticket = await limiter.admit(key, Demand(nano=3 * CENT))
        except GatewayError:
            return
        admitted += 1
        await asyncio.sleep(rng.random() / 1000)
        limiter.settle(ticket, 0, rng.randint(CENT, 3 * CENT))

    for _ in range(6):
        await asyncio.gather(*(one_request() for _ in range(40)))
    await limiter.backend.flush()
    await limiter.flush()
    spent = SpendRepository(limiter.ledger.repository._engine).read([("key", "key_race", "total", "all")])
    assert admitted > 33
    assert spent[("key", "key_race", "total", "all")] <= to_nano(1.0)


async def test_settling_twice_counts_once(limiter: Limiter) -> None:
    key = caller("key_twice", Limits(budget_total=1.0))
    ticket = await limiter.admit(key, Demand(nano=10 * CENT))
    await settled(limiter, ticket, 10 * CENT)
    await settled(limiter, ticket, 10 * CENT)
    await limiter.flush()
    assert limiter.ledger.repository.read([("key", "key_twice", "total", "all")]) == {
        ("key", "key_twice", "total", "all"): 10 * CENT
    }


async def test_an_unsettled_reservation_lapses_after_its_hold(
    make_limiter: Callable[..., Limiter], clock: Clock
) -> None:
    limiter = make_limiter(hold_seconds=30)
    key = caller("key_crash", Limits(budget_total=0.10))
    await limiter.admit(key, Demand(nano=10 * CENT))  # never settled: its replica "crashed"
    await refused(limiter, key, Demand(nano=CENT))
    clock.advance(30)
    await limiter.admit(key, Demand(nano=10 * CENT))


async def test_counters_start_from_the_spend_table(make_limiter: Callable[..., Limiter]) -> None:
    """A new process (memory) or a Redis that lost its keys: the counter is seeded from the database."""
    first = make_limiter()
    key = caller("key_seed", Limits(budget_total=1.0))
    await settled(first, await first.admit(key, Demand(nano=70 * CENT)), 70 * CENT)
    await first.flush()
    backend = first.backend
    if isinstance(backend, RedisBackend):
        assert delete_prefix(backend.prefix) > 0
    second = make_limiter(backend=backend if isinstance(backend, RedisBackend) else None)
    error = await refused(second, key, Demand(nano=40 * CENT))
    assert "spent $0.70" in error.message
    await second.admit(key, Demand(nano=30 * CENT))


async def test_the_seed_includes_spend_not_yet_written(make_limiter: Callable[..., Limiter]) -> None:
    limiter = make_limiter()
    key = caller("key_pending", Limits(budget_total=1.0))
    await settled(limiter, await limiter.admit(key, Demand(nano=50 * CENT)), 50 * CENT)
    backend = limiter.backend
    if not isinstance(backend, RedisBackend):
        pytest.skip("only a shared backend loses its counters while the process keeps running")
    delete_prefix(backend.prefix)  # Redis restarted before the ledger wrote its batch
    assert limiter.ledger.size > 0
    error = await refused(limiter, key, Demand(nano=60 * CENT))
    assert "spent $0.50" in error.message


async def test_the_soft_limit_alert_fires_once(limiter: Limiter, caplog: pytest.LogCaptureFixture) -> None:
    key = caller("key_alert", Limits(budget_day=1.0, budget_total=100.0), name="alerting")
    with caplog.at_level(logging.WARNING, logger="llmops.limits"):
        for cost in (50, 29, 2, 5):  # crosses 80% of the day budget on the third request
            await settled(limiter, await limiter.admit(key, Demand(nano=cost * CENT)), cost * CENT)
    alerts = [r.getMessage() for r in caplog.records if "budget alert" in r.getMessage()]
    assert alerts == [
        "budget alert: key 'alerting' has spent $0.81 of its $1.00 budget per day (UTC) (81%, alert at 80%)"
    ]
    assert limiter._metrics.budget_alerts.value(("key", "day")) == 1
    assert limiter._metrics.budget_alerts.value(("key", "total")) == 0

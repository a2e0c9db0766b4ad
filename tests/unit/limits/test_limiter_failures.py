"""When Redis cannot be reached: fail_open admits uncounted, fail_closed answers 503; both are counted
and logged without flooding the log. Also what a limiter's shutdown leaves in the database."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from sqlalchemy import Engine

from limits_support import caller
from llmops.gateway.errors import GatewayError
from llmops.limits.limiter import Demand, Limiter
from llmops.limits.policy import Limits
from llmops.limits.redis_backend import RedisBackend
from llmops.limits.spend import SpendRepository

UNREACHABLE = "redis://127.0.0.1:1/0"
RATE_ONLY = caller("key_rate", Limits(rpm=1))
BUDGETED = caller("key_money", Limits(rpm=1, budget_day=1.0))


@pytest.fixture
def unreachable(limiters: Callable[..., Limiter]) -> Callable[..., Limiter]:
    def build(**options: object) -> Limiter:
        return limiters(RedisBackend(UNREACHABLE, retry_after=60), **options)

    return build


async def test_defaults_admit_rate_limited_keys_and_refuse_budgeted_ones(
    unreachable: Callable[..., Limiter], caplog: pytest.LogCaptureFixture
) -> None:
    limiter = unreachable()
    with caplog.at_level(logging.WARNING, logger="llmops.limits"):
        for _ in range(3):  # rpm 1, but uncounted: all three pass
            ticket = await limiter.admit(RATE_ONLY, Demand())
            assert not ticket.backed
            assert ticket.headers == []
            limiter.settle(ticket, 0, 0)
        with pytest.raises(GatewayError) as refused:
            await limiter.admit(BUDGETED, Demand(nano=1))
    error = refused.value
    assert (error.status, error.code) == (503, "limits_unavailable")
    assert (b"retry-after", b"1") in error.headers
    metrics = limiter._metrics
    assert metrics.error_decisions.value(("admitted",)) == 3
    assert metrics.error_decisions.value(("refused",)) == 1
    assert metrics.backend_errors.value(("admit",)) == 4
    warnings = [r.getMessage() for r in caplog.records if r.name == "llmops.limits"]
    assert len(warnings) == 1  # logged once per interval, not once per request
    assert "the redis backend failed" in warnings[0]


async def test_the_policies_can_be_swapped(unreachable: Callable[..., Limiter]) -> None:
    limiter = unreachable(rate_on_error="fail_closed", budget_on_error="fail_open")
    with pytest.raises(GatewayError):
        await limiter.admit(RATE_ONLY, Demand())
    with pytest.raises(GatewayError):  # it has an rpm limit too: closed wins
        await limiter.admit(BUDGETED, Demand(nano=1))
    ticket = await limiter.admit(caller("key_only_money", Limits(budget_total=1.0)), Demand(nano=1))
    assert not ticket.backed


async def test_spend_of_a_request_admitted_uncounted_still_reaches_the_database(
    unreachable: Callable[..., Limiter], engine: Engine
) -> None:
    limiter = unreachable(budget_on_error="fail_open")
    ticket = await limiter.admit(caller("key_open", Limits(budget_total=5.0)), Demand(nano=100))
    limiter.settle(ticket, 0, 42)
    await limiter.stop()
    assert SpendRepository(engine).read([("key", "key_open", "total", "all")]) == {
        ("key", "key_open", "total", "all"): 42
    }


async def test_stop_drains_settlements_and_spend(limiter: Limiter, engine: Engine) -> None:
    limiter.start()
    key = caller(
        "key_stop", Limits(tpm=1000, budget_month=3.0), team_id="team_stop", team_limits=Limits(rpm=5)
    )
    for _ in range(3):
        ticket = await limiter.admit(key, Demand(tokens=10, nano=1000))
        limiter.settle(ticket, 5, 700)
    await limiter.stop()
    stored = SpendRepository(engine)
    assert stored.current("key", ["key_stop"], now=limiter._wall())["key_stop"]["month"] == pytest.approx(
        2.1e-6
    )
    # a limited team's spend is recorded too (for listings), even without a budget of its own
    assert stored.current("team", ["team_stop"], now=limiter._wall())["team_stop"]["total"] == pytest.approx(
        2.1e-6
    )

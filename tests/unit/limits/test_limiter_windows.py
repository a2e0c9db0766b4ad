"""Rate limits through the limiter, the same cases on the memory backend and on real Redis.

Windows are exact sliding logs: in any 60 s no more than the limit is admitted, a burst as large
as the limit passes at once, and a refusal says when the oldest entry leaves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from limits_support import Clock, caller
from llmops.gateway.errors import GatewayError
from llmops.limits.limiter import Demand, Limiter, Ticket, duration_text
from llmops.limits.policy import Limits


async def refused(limiter: Limiter, who: object, demand: Demand | None = None) -> GatewayError:
    with pytest.raises(GatewayError) as failed:
        await limiter.admit(who, demand or Demand())  # type: ignore[arg-type]
    return failed.value


def header(headers: list[tuple[bytes, bytes]], name: str) -> str | None:
    for key, value in headers:
        if key.decode() == name:
            return value.decode()
    return None


async def test_a_burst_as_large_as_the_limit_then_a_wait(limiter: Limiter, clock: Clock) -> None:
    key = caller("key_burst", Limits(rpm=5), name="burst")
    for _ in range(5):
        await limiter.admit(key, Demand())
    error = await refused(limiter, key)
    assert (error.status, error.error_type, error.code) == (429, "rate_limit_error", "rate_limit_exceeded")
    assert error.message == "rate limit of key 'burst': 5 requests per minute; retry in 60s"
    assert header(error.headers, "retry-after") == "60"
    assert header(error.headers, "x-ratelimit-remaining-requests") == "0"
    clock.advance(59.5)
    assert header((await refused(limiter, key)).headers, "retry-after") == "1"
    clock.advance(0.5)  # the five entries leave together
    for _ in range(5):
        await limiter.admit(key, Demand())
    await refused(limiter, key)


async def test_the_window_slides_entry_by_entry(limiter: Limiter, clock: Clock) -> None:
    key = caller("key_slide", Limits(rpm=5))
    for _ in range(3):
        await limiter.admit(key, Demand())
    clock.advance(30)
    for _ in range(2):
        await limiter.admit(key, Demand())
    clock.advance(29)
    error = await refused(limiter, key)
    assert header(error.headers, "retry-after") == "1"
    clock.advance(1)  # the first three left, the last two have 30 s to go
    for _ in range(3):
        await limiter.admit(key, Demand())
    error = await refused(limiter, key)
    assert header(error.headers, "retry-after") == "30"


async def test_success_headers_follow_openai(limiter: Limiter, clock: Clock) -> None:
    key = caller("key_headers", Limits(rpm=10, tpm=1000))
    first = await limiter.admit(key, Demand(tokens=100))
    assert dict((k.decode(), v.decode()) for k, v in first.headers) == {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "9",
        "x-ratelimit-reset-requests": "1m0s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "900",
        "x-ratelimit-reset-tokens": "1m0s",
    }
    clock.advance(59.98)
    second = await limiter.admit(key, Demand(tokens=50))
    assert header(second.headers, "x-ratelimit-remaining-requests") == "8"
    assert header(second.headers, "x-ratelimit-reset-requests") == "20ms"  # when the first entry leaves
    assert header(second.headers, "x-ratelimit-remaining-tokens") == "850"


def test_reset_durations_read_like_openai_s() -> None:
    assert [duration_text(s) for s in (0.02, 1, 1.2, 59.999, 60, 360, 3725)] == [
        "20ms",
        "1s",
        "2s",
        "1m0s",
        "1m0s",
        "6m0s",
        "1h2m5s",
    ]


async def test_tpm_estimate_is_replaced_by_the_actual_count(limiter: Limiter) -> None:
    key = caller("key_tpm", Limits(tpm=100), name="tokens")
    first = await limiter.admit(key, Demand(tokens=60))
    error = await refused(limiter, key, Demand(tokens=60))
    assert (
        error.message
        == "rate limit of key 'tokens': 100 tokens per minute (this request counts 60); retry in 60s"
    )
    limiter.settle(first, 10, 0)
    await limiter.backend.flush()
    second = await limiter.admit(key, Demand(tokens=60))
    assert header(second.headers, "x-ratelimit-remaining-tokens") == "30"
    limiter.settle(second, 90, 0)  # more than estimated: counted as it is
    await limiter.backend.flush()
    error = await refused(limiter, key, Demand(tokens=1))
    assert header(error.headers, "x-ratelimit-remaining-tokens") == "0"


async def test_a_request_larger_than_the_tpm_limit_is_refused_without_retry(limiter: Limiter) -> None:
    error = await refused(limiter, caller("key_big", Limits(tpm=100)), Demand(tokens=101))
    assert "more than the limit allows" in error.message
    assert header(error.headers, "retry-after") is None


async def test_tokens_free_up_in_the_order_they_were_admitted(limiter: Limiter, clock: Clock) -> None:
    key = caller("key_order", Limits(tpm=100))
    await limiter.admit(key, Demand(tokens=20))
    clock.advance(10)
    await limiter.admit(key, Demand(tokens=50))
    clock.advance(10)
    await limiter.admit(key, Demand(tokens=30))
    error = await refused(limiter, key, Demand(tokens=60))  # needs 60 freed: the first two entries
    assert header(error.headers, "retry-after") == "50"
    clock.advance(50)
    await limiter.admit(key, Demand(tokens=60))


async def test_refused_requests_do_not_count(limiter: Limiter) -> None:
    key = caller("key_refused", Limits(rpm=2))
    await limiter.admit(key, Demand())
    await limiter.admit(key, Demand())
    for _ in range(5):
        await refused(limiter, key)
    assert limiter._metrics.rejections.value(("key", "rpm")) == 5


async def test_all_or_nothing_across_key_and_team(limiter: Limiter) -> None:
    """The team's window is full: the key's own window does not count the refused request."""
    one = caller("key_one", Limits(rpm=3), team_id="team_x", team_limits=Limits(rpm=2))
    other = caller("key_two", Limits(rpm=3), team_id="team_x", team_limits=Limits(rpm=2))
    await limiter.admit(one, Demand())
    await limiter.admit(other, Demand())
    error = await refused(limiter, one)
    assert error.message.startswith("rate limit of team 'team_x': 2 requests per minute")
    assert limiter._metrics.rejections.value(("team", "rpm")) == 1
    lone = caller("key_one", Limits(rpm=3))  # the same key without its team: one entry, not two
    ticket = await limiter.admit(lone, Demand())
    assert header(ticket.headers, "x-ratelimit-remaining-requests") == "1"


async def test_headers_report_the_tighter_of_key_and_team(limiter: Limiter) -> None:
    key = caller("key_tight", Limits(rpm=100), team_id="team_tight", team_limits=Limits(rpm=10))
    ticket = await limiter.admit(key, Demand())
    assert header(ticket.headers, "x-ratelimit-limit-requests") == "10"
    assert header(ticket.headers, "x-ratelimit-remaining-requests") == "9"


async def test_200_concurrent_admissions_against_50_rpm_admit_exactly_50(limiter: Limiter) -> None:
    key = caller("key_crowd", Limits(rpm=50))
    results = await asyncio.gather(
        *(limiter.admit(key, Demand()) for _ in range(200)), return_exceptions=True
    )
    admitted = [r for r in results if isinstance(r, Ticket)]
    refusals = [r for r in results if isinstance(r, GatewayError)]
    assert (len(admitted), len(refusals)) == (50, 150)


async def test_two_limiters_on_one_redis_behave_as_one(
    make_limiter: Callable[..., Limiter], request: pytest.FixtureRequest
) -> None:
    first, second = make_limiter(), make_limiter()
    if first.backend.name == "memory":
        pytest.skip("two memory backends are two replicas with counters of their own")
    key = caller("key_shared", Limits(rpm=50, tpm=10_000))
    results = await asyncio.gather(
        *(limiter.admit(key, Demand(tokens=10)) for _ in range(120) for limiter in (first, second)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Ticket) for r in results) == 50
    error = await refused(second, key, Demand(tokens=10))
    assert header(error.headers, "x-ratelimit-remaining-tokens") == str(10_000 - 500)

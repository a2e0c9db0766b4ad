"""Helpers of the limits tests: a hand-moved clock, callers with limits, and Redis clean-up."""

from __future__ import annotations

import os

import pytest
import redis

from llmops.gateway.auth import Principal
from llmops.limits.policy import NO_LIMITS, Limits

REDIS_URL_ENV = "LLMOPS_TEST_REDIS_URL"
# 2026-11-26 12:00:00 UTC: half a day before the day's budgets reset
NOON = 1_795_694_400.0


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def redis_url() -> str:
    url = os.environ.get(REDIS_URL_ENV)
    if not url:
        pytest.skip(f"{REDIS_URL_ENV} is not set (make test sets it)")
    return url


def delete_prefix(prefix: str) -> int:
    with redis.Redis.from_url(redis_url()) as client:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        return len(keys)


def caller(
    key_id: str = "key_a",
    limits: Limits = NO_LIMITS,
    *,
    name: str | None = None,
    team_id: str | None = None,
    team_limits: Limits = NO_LIMITS,
) -> Principal:
    return Principal(
        key_id=key_id,
        name=name or key_id,
        scope="inference",
        team_id=team_id,
        team_name=team_id,
        limits=limits,
        team_limits=team_limits,
    )

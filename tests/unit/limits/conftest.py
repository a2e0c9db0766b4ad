"""Fixtures of the limits tests: a hand-moved clock, both backends, and limiters on a real database.

The Redis cases use the real Redis of LLMOPS_TEST_REDIS_URL under a key prefix of their own, deleted
afterwards; they are skipped when the variable is unset (`make test` and .ci/run set it).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import Engine

from limits_support import NOON, Clock, delete_prefix, redis_url
from llmops.limits.backends import LimitBackend, MemoryBackend
from llmops.limits.limiter import Limiter, LimiterOptions
from llmops.limits.redis_backend import RedisBackend
from llmops.limits.spend import SpendLedger, SpendRepository
from llmops.store import open_database
from llmops.tracing.metrics import LimitMetrics, MetricsRegistry


@pytest.fixture
def clock() -> Clock:
    """Monotonic time of the windows (the memory backend's, and the Redis scripts' in these tests)."""
    return Clock(50_000.0)


@pytest.fixture
def wall() -> Clock:
    """Wall time of the budget periods."""
    return Clock(NOON)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = f"llmops:limits:test:{uuid.uuid4().hex}:"
    yield prefix
    delete_prefix(prefix)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = open_database(f"sqlite:///{tmp_path / 'limits.db'}")
    yield made
    made.dispose()


BackendFactory = Callable[[], LimitBackend]


@pytest.fixture(params=["memory", "redis"])
def make_backend(request: pytest.FixtureRequest, clock: Clock) -> BackendFactory:
    """Builds backends of one kind; two Redis backends share the counters, two memory ones do not."""
    if request.param == "memory":
        return lambda: MemoryBackend(clock)
    url = redis_url()
    prefix = request.getfixturevalue("redis_prefix")
    return lambda: RedisBackend(url, prefix=prefix, clock=clock)


@pytest_asyncio.fixture
async def limiters(engine: Engine, wall: Clock) -> AsyncIterator[Callable[..., Limiter]]:
    """Limiters on a given backend and the test's database; their backends are closed after the test."""
    made: list[Limiter] = []

    def build(backend: LimitBackend, **options: Any) -> Limiter:
        limiter = Limiter(
            backend,
            SpendLedger(SpendRepository(engine)),
            LimitMetrics(MetricsRegistry()),
            LimiterOptions(**options),
            wall=wall,
        )
        made.append(limiter)
        return limiter

    yield build
    for limiter in made:
        await limiter.backend.aclose()


@pytest.fixture
def make_limiter(make_backend: BackendFactory, limiters: Callable[..., Limiter]) -> Callable[..., Limiter]:
    """Limiters on the test's backend kind (a new backend each, unless one is given)."""

    def build(backend: LimitBackend | None = None, **options: Any) -> Limiter:
        return limiters(backend or make_backend(), **options)

    return build


@pytest_asyncio.fixture
async def limiter(make_limiter: Callable[..., Limiter]) -> Limiter:
    return make_limiter()

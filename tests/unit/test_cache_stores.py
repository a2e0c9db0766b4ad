"""Where cached answers live: in memory (LRU, TTL) and in the real Redis of LLMOPS_TEST_REDIS_URL.

Redis tests use a key prefix of their own and delete their keys afterwards. They are skipped when
the variable is unset (`make test` and .ci/run set it) and fail when Redis cannot be reached.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
import redis
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from cache_support import Clock, closed_port, make_plan
from llmops.gateway.cache import ResponseCache
from llmops.gateway.cache.redis_store import Breaker, RedisAnswerStore, RedisUnavailable
from llmops.gateway.cache.stores import AnswerStore, MemoryAnswerStore
from llmops.tracing.metrics import GatewayMetrics, MetricsRegistry

REDIS_URL_ENV = "LLMOPS_TEST_REDIS_URL"


def redis_url() -> str:
    url = os.environ.get(REDIS_URL_ENV)
    if not url:
        pytest.skip(f"{REDIS_URL_ENV} is not set (make test sets it)")
    return url


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix no other test uses; every key under it is deleted afterwards."""
    prefix = f"llmops:test:{uuid.uuid4().hex}:"
    yield prefix
    with redis.Redis.from_url(redis_url()) as client:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)


@pytest_asyncio.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[AnswerStore]:
    """An answer store on each backend."""
    made: AnswerStore
    if request.param == "memory":
        made = MemoryAnswerStore(100)
    else:
        made = RedisAnswerStore(redis_url(), prefix=request.getfixturevalue("redis_prefix"))
    yield made
    await made.aclose()


async def put(store: AnswerStore, key: str, value: bytes, ttl: float) -> None:
    pending = store.set_soon(key, value, ttl)
    if pending is not None:
        await pending


async def test_store_get_replace_and_expire_on_each_backend(store: AnswerStore) -> None:
    await put(store, "k", b"old", 60)
    assert await store.get("k") == b"old"
    await put(store, "k", b"new", 60)
    assert await store.get("k") == b"new"
    assert await store.get("missing") is None
    await put(store, "brief", b"x", 0.05)
    await asyncio.sleep(0.15)
    assert await store.get("brief") is None
    assert await store.get("k") == b"new"


# -- memory ------------------------------------------------------------------------------


async def test_memory_store_keeps_the_most_recently_used() -> None:
    store = MemoryAnswerStore(2)
    await put(store, "a", b"1", 60)
    await put(store, "b", b"2", 60)
    assert await store.get("a") == b"1"  # a is now the most recently used
    await put(store, "c", b"3", 60)
    assert len(store) == 2
    assert await store.get("b") is None
    assert await store.get("a") == b"1"
    assert await store.get("c") == b"3"


async def test_memory_store_forgets_after_the_ttl() -> None:
    clock = Clock()
    store = MemoryAnswerStore(10, clock=clock)
    await put(store, "short", b"1", 5)
    await put(store, "long", b"2", 50)
    clock.now += 4.9
    assert await store.get("short") == b"1"
    clock.now += 0.2
    assert await store.get("short") is None
    assert len(store) == 1
    assert await store.get("long") == b"2"


# -- Redis -------------------------------------------------------------------------------


async def test_redis_store_sets_with_a_ttl_under_its_prefix(redis_prefix: str) -> None:
    store = RedisAnswerStore(redis_url(), prefix=redis_prefix)
    other = RedisAnswerStore(redis_url(), prefix=redis_prefix + "other:")
    raw = Redis.from_url(redis_url())
    try:
        await put(store, "k1", b'{"data": 1}', 30)
        assert await store.get("k1") == b'{"data": 1}'
        assert await store.get("missing") is None
        assert await other.get("k1") is None  # another prefix is another cache
        assert await raw.get(redis_prefix + "k1") == b'{"data": 1}'
        remaining = await raw.pttl(redis_prefix + "k1")
        assert 29_000 < remaining <= 30_000
    finally:
        await raw.aclose()
        await store.aclose()
        await other.aclose()


async def test_redis_store_is_shared_by_two_clients(redis_prefix: str) -> None:
    """Two replicas are two clients of one Redis: what one stores, the other reads."""
    first = RedisAnswerStore(redis_url(), prefix=redis_prefix)
    second = RedisAnswerStore(redis_url(), prefix=redis_prefix)
    try:
        await put(first, "shared", b"answer", 30)
        assert await second.get("shared") == b"answer"
        # concurrent use goes through one bounded pool
        results = await asyncio.gather(*(second.get("shared") for _ in range(200)))
        assert set(results) == {b"answer"}
    finally:
        await first.aclose()
        await second.aclose()


async def test_redis_down_raises_then_fails_fast() -> None:
    store = RedisAnswerStore(f"redis://127.0.0.1:{closed_port()}/0")
    try:
        with pytest.raises(RedisConnectionError):
            await store.get("k")
        started = time.perf_counter()
        for _ in range(100):
            with pytest.raises(RedisUnavailable, match="next try in"):
                await store.get("k")
        assert time.perf_counter() - started < 0.1  # no connection attempt while backing off
        with pytest.raises(RedisUnavailable):
            await put(store, "k", b"v", 10)
    finally:
        await store.aclose()


async def test_breaker_lets_one_call_through_after_the_pause() -> None:
    clock = Clock()
    breaker = Breaker(retry_after=2.0, clock=clock)
    calls = 0

    async def refused() -> None:
        nonlocal calls
        calls += 1
        raise RedisConnectionError("refused")

    async def fine() -> str:
        return "ok"

    with pytest.raises(RedisConnectionError):
        await breaker.call(refused)
    with pytest.raises(RedisUnavailable):
        await breaker.call(refused)
    clock.now += 2.1
    with pytest.raises(RedisConnectionError):
        await breaker.call(refused)
    assert calls == 2
    clock.now += 2.1
    assert await breaker.call(fine) == "ok"


async def test_cache_on_a_redis_that_is_down_serves_misses_and_logs_rarely(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = ResponseCache(
        RedisAnswerStore(f"redis://127.0.0.1:{closed_port()}/0"), GatewayMetrics(MetricsRegistry())
    )
    caplog.set_level(logging.WARNING, logger="llmops.cache")
    try:
        started = time.perf_counter()
        for number in range(300):
            plan = make_plan(f"key-{number}")
            assert await cache.lookup(plan) is None
            cache.store(plan, {"choices": []}, "trace")
        await cache.flush()
        assert time.perf_counter() - started < 3.0
    finally:
        await cache.aclose()
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert 1 <= len(warnings) <= 3, [record.getMessage() for record in warnings]
    assert any("serving a miss" in record.getMessage() for record in warnings)


async def test_throttled_warnings_say_how_many_were_held_back(caplog: pytest.LogCaptureFixture) -> None:
    from llmops.throttled_log import ThrottledLog

    clock = Clock()
    throttled = ThrottledLog(logging.getLogger("llmops.cache.test"), every=30, clock=clock)
    caplog.set_level(logging.WARNING, logger="llmops.cache.test")
    for _ in range(5):
        throttled.warning("down", "redis is down: %s", "refused")
    throttled.warning("other", "another kind")
    clock.now += 31
    throttled.warning("down", "redis is down: %s", "refused")
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "redis is down: refused",
        "another kind",
        "redis is down: refused (4 more like this since the last one, not logged)",
    ]

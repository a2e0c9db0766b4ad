"""Cached answers in Redis, shared by every replica that has the same ``LLMOPS_REDIS_URL``.

One client with one bounded connection pool per process (redis-py's asyncio client). Each answer is
one string key, ``<prefix><cache key>``, written with ``SET ... PX <ttl>`` so Redis expires it.
Writes happen in the background and take at most :data:`MAX_WRITERS` connections at a time (the
others wait their turn), so a burst of writes never keeps lookups waiting for a connection.

Errors: whatever redis-py raises (:class:`redis.exceptions.RedisError`) and
:class:`RedisUnavailable`. After a connection failure or a time-out the store fails fast, without
touching the network, for :data:`RETRY_AFTER_SECONDS`, so a Redis that is down or unreachable costs
each request nothing (the :class:`~llmops.gateway.cache.ResponseCache` serves it as a miss) and at
most one request per period waits on a connection attempt.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from llmops.gateway.cache.stores import AnswerStore

DEFAULT_PREFIX = "llmops:cache:"
RETRY_AFTER_SECONDS = 2.0
MAX_CONNECTIONS = 64
MAX_WRITERS = 16  # of MAX_CONNECTIONS: background writes never take more
SOCKET_TIMEOUT_SECONDS = 1.0  # a cache that answers slower than this is no help

T = TypeVar("T")


class RedisUnavailable(RedisError):
    """Redis failed a moment ago; not tried again until the back-off period ends."""


def connect(url: str) -> Redis:
    """A client on its own bounded pool, with short time-outs and one retry on a stale connection."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=SOCKET_TIMEOUT_SECONDS,  # wait for a free pooled connection
        socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 1),
    )
    return Redis.from_pool(pool)


class Breaker:
    """Fails calls fast for a while after a connection failure (one per period goes through)."""

    def __init__(self, retry_after: float = RETRY_AFTER_SECONDS, clock: Callable[[], float] = time.monotonic):
        self._retry_after = retry_after
        self._clock = clock
        self._closed_until = 0.0
        self._last_error = ""

    async def call(self, work: Callable[[], Awaitable[T]]) -> T:
        now = self._clock()
        if now < self._closed_until:
            wait = self._closed_until - now
            raise RedisUnavailable(f"redis failed ({self._last_error}); next try in {wait:.1f}s")
        try:
            return await work()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            self._closed_until = self._clock() + self._retry_after
            self._last_error = str(exc) or type(exc).__name__
            raise


class RedisAnswerStore(AnswerStore):
    """Answers under ``prefix`` in the Redis at ``url``, each expiring after its TTL."""

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX, client: Redis | None = None) -> None:
        self._client = client if client is not None else connect(url)
        self._prefix = prefix
        self._breaker = Breaker()
        self._writers = asyncio.Semaphore(MAX_WRITERS)

    @property
    def prefix(self) -> str:
        return self._prefix

    async def get(self, key: str) -> bytes | None:
        value: Any = await self._breaker.call(lambda: self._client.get(self._prefix + key))
        return bytes(value) if value is not None else None

    def set_soon(self, key: str, value: bytes, ttl: float) -> Awaitable[None]:
        return self._set(key, value, ttl)

    async def _set(self, key: str, value: bytes, ttl: float) -> None:
        milliseconds = max(1, int(ttl * 1000))
        async with self._writers:
            await self._breaker.call(lambda: self._client.set(self._prefix + key, value, px=milliseconds))

    async def aclose(self) -> None:
        await self._client.aclose()

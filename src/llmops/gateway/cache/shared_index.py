"""The semantic index shared by replicas through one Redis stream (no vector search module needed).

Every replica keeps the whole index in memory (:class:`MemorySemanticIndex`). Adding an entry puts
it in the local index and appends it to the stream ``<prefix>semantic`` with ``XADD ... MAXLEN ~ N``
(N = ``semantic_cache_max_entries``): the replica's id, the scope, the cache key, the expiry
(wall-clock seconds) and the vector (384 little-endian float32). Before each search, a replica reads
what was appended since its last read (``XREAD``: one round trip when nothing is new) and adds the
other replicas' entries to its own index. So an answer cached by one replica is a semantic hit on
every other from its next search on, and a replica that starts reads the stream from the beginning:
it starts with every live entry the others have.

Concurrent searches share reads: a search waits for at most the read in progress and the one after
it, which covers everything appended before the search began. A failed read raises (the
:class:`~llmops.gateway.cache.ResponseCache` serves a miss) and the next search reads again from the
same position, so nothing is skipped. Entries are as safe across tenants as in one replica: the
scope, which includes the tenant, travels with each one.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import numpy as np
from redis.asyncio import Redis

from llmops.gateway.cache.redis_store import DEFAULT_PREFIX, MAX_WRITERS, Breaker
from llmops.gateway.cache.semantic import SemanticIndex, Vector
from llmops.gateway.cache.vector_index import MemorySemanticIndex

log = logging.getLogger("llmops.cache")

READ_BATCH = 2000


class RedisSharedIndex(SemanticIndex):
    def __init__(self, local: MemorySemanticIndex, client: Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.local = local
        self.stream = prefix + "semantic"
        self.replica = uuid.uuid4().hex[:16]
        self._client = client
        self._breaker = Breaker()
        self._last_id: bytes = b"0-0"
        self._lock = asyncio.Lock()
        self._writers = asyncio.Semaphore(MAX_WRITERS)  # appends wait their turn, reads never do
        self._requested = 0
        self._completed = 0
        self._unreadable = 0

    async def add(self, scope: str, vector: Vector, key: str, ttl: float) -> None:
        expires = self.local.clock() + ttl
        self.local.add_now(scope, vector, key, expires)
        fields: dict[Any, Any] = {
            b"r": self.replica,
            b"s": scope,
            b"k": key,
            b"e": repr(expires),
            b"v": np.asarray(vector, dtype="<f4").tobytes(),
        }
        maxlen = self.local.max_entries
        async with self._writers:
            await self._breaker.call(
                lambda: self._client.xadd(self.stream, fields, maxlen=maxlen, approximate=True)
            )

    async def search(self, scope: str, vector: Vector, threshold: float) -> tuple[str, float] | None:
        await self.sync()
        return self.local.search_now(scope, vector, threshold)

    async def sync(self) -> None:
        """Take in what other replicas added before this call (joining a read already under way)."""
        self._requested += 1
        ticket = self._requested
        async with self._lock:
            if self._completed >= ticket:
                return  # a read that started after this call began has covered it
            covers = self._requested
            await self._read_new()
            self._completed = covers

    async def _read_new(self) -> None:
        while True:
            reply: Any = await self._breaker.call(
                lambda: self._client.xread({self.stream: self._last_id}, count=READ_BATCH)
            )
            entries = reply[0][1] if reply else []
            for entry_id, fields in entries:
                self._take(fields)
                self._last_id = entry_id
            if len(entries) < READ_BATCH:
                return

    def _take(self, fields: dict[bytes, bytes]) -> None:
        if fields.get(b"r") == self.replica.encode():
            return  # added to the local index already
        try:
            vector = np.frombuffer(fields[b"v"], dtype="<f4")
            self.local.add_now(fields[b"s"].decode(), vector, fields[b"k"].decode(), float(fields[b"e"]))
        except (KeyError, ValueError, UnicodeDecodeError) as exc:
            self._unreadable += 1
            if self._unreadable == 1 or self._unreadable % 1000 == 0:
                log.warning(
                    "semantic cache: skipped %d unreadable shared entries (%s)", self._unreadable, exc
                )

    async def aclose(self) -> None:
        await self._client.aclose()
        await self.local.aclose()

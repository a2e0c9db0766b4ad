"""The semantic index shared by replicas through one Redis stream (no vector search module needed).

Every replica keeps the whole index in memory (:class:`MemorySemanticIndex`). Adding an entry puts
it in the local index and appends it to the stream ``<prefix>semantic`` with ``XADD ... MAXLEN ~ N``
(N = ``semantic_cache_max_entries``), as one field: the replica's id, the scope, the cache key and
the expiry (wall-clock seconds), separated by NUL bytes, then the vector (384 little-endian
float32). Before each search, a replica reads what was appended since its last read (``XREAD``: one
round trip when nothing is new) and adds the other replicas' entries to its own index. So an answer
cached by one replica is a semantic hit on every other from its next search on, and a replica that
starts reads the stream from the beginning: it starts with every live entry the others have. That
first read can take seconds (100,000 entries); the search that starts it waits for it at most
:data:`CATCH_UP_WAIT_SECONDS`, and until it ends searches look at what has been read so far.

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

READ_BATCH = 200  # entries taken in per read: about 10 ms of the event loop
CATCH_UP_WAIT_SECONDS = 0.05


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
        self._first_read: asyncio.Future[None] | None = None
        self._caught_up = False

    async def add(self, scope: str, vector: Vector, key: str, ttl: float) -> None:
        expires = self.local.clock() + ttl
        self.local.add_now(scope, vector, key, expires)
        fields: dict[Any, Any] = {b"e": pack(self.replica, scope, key, expires, vector)}
        maxlen = self.local.max_entries
        async with self._writers:
            await self._breaker.call(
                lambda: self._client.xadd(self.stream, fields, maxlen=maxlen, approximate=True)
            )

    async def search(self, scope: str, vector: Vector, threshold: float) -> tuple[str, float] | None:
        if self._caught_up:
            await self.sync()
        else:
            await self._catch_up()
        return self.local.search_now(scope, vector, threshold)

    async def catch_up(self) -> None:
        """Read the whole stream (what the first search starts) and wait until it is in."""
        await self._first_read_task()

    async def _catch_up(self) -> None:
        """The first read takes in the whole stream: the search that starts it waits a moment for it,
        the others search what has been read so far (a miss at worst)."""
        started = self._first_read is None
        task = self._first_read_task()
        if started:
            await asyncio.wait({task}, timeout=CATCH_UP_WAIT_SECONDS)
        error = task.exception() if task.done() and not task.cancelled() else None
        if error is not None:
            raise error

    def _first_read_task(self) -> asyncio.Future[None]:
        task = self._first_read
        if task is None:
            task = self._first_read = asyncio.ensure_future(self.sync())
            task.add_done_callback(self._first_read_done)
        return task

    def _first_read_done(self, task: asyncio.Future[None]) -> None:
        if not task.cancelled() and task.exception() is None:
            self._caught_up = True
        else:
            self._first_read = None  # the next search starts it again

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
            if not entries:
                return
            self.local.add_many_now(self._taken(entries))
            self._last_id = entries[-1][0]
            if len(entries) < READ_BATCH:
                return

    def _taken(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> list[tuple[str, Vector, str, float]]:
        """The other replicas' readable entries of one read."""
        taken = []
        own = self.replica.encode()
        for _, fields in entries:
            try:
                replica, scope, key, expires, vector = unpack(fields[b"e"], self.local.dimensions)
            except (KeyError, ValueError, UnicodeDecodeError) as exc:
                self._unreadable += 1
                if self._unreadable == 1 or self._unreadable % 1000 == 0:
                    log.warning(
                        "semantic cache: skipped %d unreadable shared entries (%s)", self._unreadable, exc
                    )
                continue
            if replica != own:  # its own entries are in the local index already
                taken.append((scope, vector, key, expires))
        return taken

    async def aclose(self) -> None:
        if self._first_read is not None and not self._first_read.done():
            self._first_read.cancel()
            await asyncio.gather(self._first_read, return_exceptions=True)
        await self._client.aclose()
        await self.local.aclose()


def pack(replica: str, scope: str, key: str, expires: float, vector: Vector) -> bytes:
    """One stream entry as one value (parsing one field per entry is what makes a catch-up fast)."""
    head = "\0".join((replica, scope, key, repr(expires))).encode()
    return head + b"\0" + np.asarray(vector, dtype="<f4").tobytes()


def unpack(value: bytes, dimensions: int) -> tuple[bytes, str, str, float, Vector]:
    """(replica, scope, key, expires, vector) of :func:`pack`; ValueError when it is not one."""
    replica, scope, key, expires, vector = value.split(b"\0", 4)
    if len(vector) != dimensions * 4:
        raise ValueError(f"a vector of {len(vector)} bytes, not {dimensions * 4}")
    return replica, scope.decode(), key.decode(), float(expires), np.frombuffer(vector, dtype="<f4")

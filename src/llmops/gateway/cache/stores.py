"""Where cached answers live: in this process (one replica) or in Redis (shared by every replica).

An :class:`AnswerStore` maps a cache key to the serialised answer, each entry with its own TTL.
Backends raise whatever their client raises; the :class:`~llmops.gateway.cache.ResponseCache`
treats any failure as a miss, so the cache can never fail a request.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable


class AnswerStore:
    """Key → bytes with a TTL."""

    async def get(self, key: str) -> bytes | None:
        raise NotImplementedError

    def set_soon(self, key: str, value: bytes, ttl: float) -> Awaitable[None] | None:
        """Store now and return None, or return what must be awaited (in the background) to store."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections."""


class MemoryAnswerStore(AnswerStore):
    """Least-recently-used entries of this process, bounded in number, each expiring after its TTL."""

    def __init__(self, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        return self.get_now(key)

    def get_now(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def set_soon(self, key: str, value: bytes, ttl: float) -> None:
        entries = self._entries
        entries[key] = (self._clock() + ttl, value)
        entries.move_to_end(key)
        while len(entries) > self._max_entries:
            entries.popitem(last=False)
        return None

"""The semantic cache's in-memory index: unit vectors per scope, nearest neighbour by cosine similarity.

Each scope keeps a float32 matrix of unit vectors (cosine similarity = dot product), with each row's
cache key and expiry time. It starts with :data:`FIRST_ROWS` rows (a server may have many small
scopes: one per tenant, model, parameters and system prompt) and doubles when full. A search
compares the query with a scope's rows in two steps, so 100,000 rows take about a millisecond:

1. a 256-bit sign code per row (random-hyperplane LSH, SimHash): each bit of two vectors' codes
   differs with probability angle / pi, independently. Rows whose code is within a Hamming
   distance of the query's code are candidates; the distance is chosen so that a row exactly at
   the threshold is left out with a probability of 1e-6 (the binomial tail), a closer one less;
2. the exact dot product with the candidates' float32 rows; the best live one wins if it reaches
   the threshold. So an answer is never served below the threshold; the approximation can only
   cost a rare miss.

Bounded by ``max_entries`` rows over all scopes: expired rows go first, then the oldest added.
Not thread-safe: it is used from the event loop only. Imports numpy (only loaded for semantic mode).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from llmops.gateway.cache.semantic import SemanticIndex, Vector

FIRST_ROWS = 16
CODE_BITS = 256
MAX_CANDIDATES = 1024  # exact comparisons per search at most (the nearest codes first)
PURGE_EVERY_SECONDS = 1.0
MISS_PROBABILITY = 1e-6  # of leaving out a row at exactly the threshold (more similar ones: less)

Matrix = npt.NDArray[np.float32]


class _Scope:
    """The rows of one scope: vectors, sign codes (one row per 64-bit word), expiries and keys."""

    __slots__ = ("codes", "count", "expires", "keys", "rows", "vectors")

    def __init__(self, dimensions: int, capacity: int) -> None:
        self.vectors: Matrix = np.empty((capacity, dimensions), dtype=np.float32)
        self.codes = np.empty((CODE_BITS // 64, capacity), dtype=np.uint64)
        self.expires = np.empty(capacity, dtype=np.float64)
        self.keys: list[str] = []
        self.rows: dict[str, int] = {}
        self.count = 0

    @property
    def capacity(self) -> int:
        return int(self.vectors.shape[0])

    def grow(self, capacity: int) -> None:
        count = self.count
        vectors = np.empty((capacity, self.vectors.shape[1]), dtype=np.float32)
        vectors[:count] = self.vectors[:count]
        codes = np.empty((self.codes.shape[0], capacity), dtype=np.uint64)
        codes[:, :count] = self.codes[:, :count]
        expires = np.empty(capacity, dtype=np.float64)
        expires[:count] = self.expires[:count]
        self.vectors, self.codes, self.expires = vectors, codes, expires

    def put(self, row: int, key: str, vector: Matrix, code: npt.NDArray[np.uint64], expires: float) -> None:
        self.vectors[row] = vector
        self.codes[:, row] = code
        self.expires[row] = expires
        if row == self.count:
            self.keys.append(key)
            self.count += 1
        self.rows[key] = row

    def remove(self, key: str) -> None:
        """Move the last row into the hole: rows stay packed."""
        row = self.rows.pop(key)
        last = self.count - 1
        if row != last:
            moved = self.keys[last]
            self.vectors[row] = self.vectors[last]
            self.codes[:, row] = self.codes[:, last]
            self.expires[row] = self.expires[last]
            self.keys[row] = moved
            self.rows[moved] = row
        self.keys.pop()
        self.count = last

    def candidates(self, code: npt.NDArray[np.uint64], cutoff: int) -> npt.NDArray[np.intp]:
        """Rows whose code differs from ``code`` in at most ``cutoff`` bits, nearest first if too many."""
        count = self.count
        distance = np.bitwise_count(self.codes[0, :count] ^ code[0]).astype(np.uint16)
        for word in range(1, self.codes.shape[0]):
            distance += np.bitwise_count(self.codes[word, :count] ^ code[word])
        rows = np.flatnonzero(distance <= cutoff)
        if rows.size > MAX_CANDIDATES:
            nearest = np.argpartition(distance[rows], MAX_CANDIDATES - 1)[:MAX_CANDIDATES]
            rows = rows[nearest]
        return rows


class MemorySemanticIndex(SemanticIndex):
    """Unit vectors of this process, by scope, each with a cache key and an expiry (``clock`` time)."""

    def __init__(
        self,
        dimensions: int = 384,
        max_entries: int = 100_000,
        *,
        clock: Callable[[], float] = time.time,
        seed: int = 0,
    ) -> None:
        if not hasattr(np, "bitwise_count"):
            raise ImportError("the semantic cache needs numpy 2.0 or later")
        self.dimensions = dimensions
        self.max_entries = max_entries
        self.clock = clock
        self._planes = np.random.default_rng(seed).standard_normal((dimensions, CODE_BITS)).astype(np.float32)
        self._scopes: dict[str, _Scope] = {}
        self._order: OrderedDict[tuple[str, str], None] = OrderedDict()  # oldest added first
        self._next_purge = 0.0
        self._cutoffs: dict[float, int] = {}

    def __len__(self) -> int:
        return len(self._order)

    def scope_size(self, scope: str) -> int:
        entries = self._scopes.get(scope)
        return entries.count if entries is not None else 0

    def scope_capacity(self, scope: str) -> int:
        entries = self._scopes.get(scope)
        return entries.capacity if entries is not None else 0

    async def search(self, scope: str, vector: Vector, threshold: float) -> tuple[str, float] | None:
        return self.search_now(scope, vector, threshold)

    async def add(self, scope: str, vector: Vector, key: str, ttl: float) -> None:
        self.add_now(scope, vector, key, self.clock() + ttl)

    def search_now(self, scope: str, vector: Vector, threshold: float) -> tuple[str, float] | None:
        entries = self._scopes.get(scope)
        if entries is None:
            return None
        query = self._unit(vector)
        cutoff = self._cutoffs.get(threshold)
        if cutoff is None:
            cutoff = self._cutoffs[threshold] = _cutoff(threshold)
        rows = entries.candidates(self._code(query), cutoff)
        if rows.size == 0:
            return None
        scores = entries.vectors[rows] @ query
        expired = entries.expires[rows] <= self.clock()
        if expired.any():
            scores[expired] = -2.0
        best = int(scores.argmax())
        score = float(scores[best])
        found = (entries.keys[int(rows[best])], score) if score >= threshold else None
        if expired.any():
            for key in [entries.keys[int(row)] for row in rows[expired]]:
                self._remove(scope, key)
        return found

    def add_now(self, scope: str, vector: Vector, key: str, expires: float) -> None:
        """Keep ``key`` for ``vector`` until ``expires``; a key already in the scope is replaced."""
        if expires <= self.clock():
            return
        unit = self._unit(vector)
        self._put(scope, key, unit, self._code(unit), expires)

    def add_many_now(self, entries: list[tuple[str, Vector, str, float]]) -> int:
        """:meth:`add_now` for each (scope, vector, key, expires), the codes computed together.

        Entries that have expired or whose vector is zero are left out; returns how many were kept.
        """
        now = self.clock()
        live = [entry for entry in entries if entry[3] > now]
        if not live:
            return 0
        matrix = np.stack([np.asarray(entry[1], dtype=np.float32).reshape(-1) for entry in live])
        if matrix.shape[1] != self.dimensions:
            raise ValueError(f"expected vectors of {self.dimensions} numbers, got {matrix.shape[1]}")
        norms = np.linalg.norm(matrix, axis=1)
        usable = np.isfinite(norms) & (norms > 0)
        units = matrix[usable] / norms[usable, None]
        codes = np.packbits(units @ self._planes > 0, axis=1).view(np.uint64)
        kept = [entry for entry, ok in zip(live, usable, strict=True) if ok]
        for (scope, _, key, expires), unit, code in zip(kept, units, codes, strict=True):
            self._put(scope, key, unit, code, expires)
        return len(kept)

    def _put(self, scope: str, key: str, unit: Matrix, code: npt.NDArray[np.uint64], expires: float) -> None:
        entries = self._scopes.get(scope)
        if entries is not None and key in entries.rows:
            entries.put(entries.rows[key], key, unit, code, expires)
            self._order.move_to_end((scope, key))
            return
        self._make_room()
        entries = self._scopes.get(scope)  # making room may have emptied (and dropped) it
        if entries is None:
            entries = self._scopes[scope] = _Scope(self.dimensions, min(FIRST_ROWS, self.max_entries))
        if entries.count == entries.capacity:
            entries.grow(min(entries.capacity * 2, self.max_entries))
        entries.put(entries.count, key, unit, code, expires)
        self._order[(scope, key)] = None

    async def aclose(self) -> None:
        self._scopes.clear()
        self._order.clear()

    def _make_room(self) -> None:
        if len(self._order) < self.max_entries:
            return
        now = self.clock()
        if now >= self._next_purge:
            self._next_purge = now + PURGE_EVERY_SECONDS
            self._purge(now)
        while len(self._order) >= self.max_entries:
            scope, key = next(iter(self._order))
            self._remove(scope, key)

    def _purge(self, now: float) -> None:
        for scope, entries in list(self._scopes.items()):
            rows = np.flatnonzero(entries.expires[: entries.count] <= now)
            for key in [entries.keys[int(row)] for row in rows]:
                self._remove(scope, key)

    def _remove(self, scope: str, key: str) -> None:
        entries = self._scopes[scope]
        entries.remove(key)
        del self._order[(scope, key)]
        if entries.count == 0:
            del self._scopes[scope]

    def _unit(self, vector: Vector) -> Matrix:
        array = np.asarray(vector, dtype=np.float32).reshape(-1)
        if array.shape[0] != self.dimensions:
            raise ValueError(f"expected a vector of {self.dimensions} numbers, got {array.shape[0]}")
        norm = float(np.linalg.norm(array))
        if norm == 0.0 or not math.isfinite(norm):
            raise ValueError("cannot index a zero or non-finite vector")
        return array / norm

    def _code(self, unit: Matrix) -> npt.NDArray[np.uint64]:
        return np.packbits(unit @ self._planes > 0).view(np.uint64)


def _cutoff(threshold: float) -> int:
    """The most code bits a row at ``threshold`` similarity differs in, but for MISS_PROBABILITY of the time.

    Each bit differs with probability angle / pi, independently: the count is binomial.
    """
    share = math.acos(max(-1.0, min(1.0, threshold))) / math.pi
    tail = 1.0
    for bits in range(CODE_BITS + 1):
        tail -= math.comb(CODE_BITS, bits) * share**bits * (1 - share) ** (CODE_BITS - bits)
        if tail <= MISS_PROBABILITY:
            return bits
    return CODE_BITS

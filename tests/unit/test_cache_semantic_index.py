"""The semantic index: threshold, scopes (tenants), TTL, bounds, growth, and sharing through Redis.

Vectors are made with an exact cosine similarity to a query (``at_similarity``), so thresholds are
tested to the third decimal. The shared index runs against the real Redis of LLMOPS_TEST_REDIS_URL,
each test under a key prefix of its own.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from test_cache_stores import redis_url

from cache_support import Clock, closed_port
from llmops.gateway.cache.keys import semantic_scope
from llmops.gateway.cache.redis_store import RedisUnavailable, connect
from llmops.gateway.cache.shared_index import READ_BATCH, RedisSharedIndex, pack
from llmops.gateway.cache.vector_index import FIRST_ROWS, MemorySemanticIndex, _cutoff

DIM = 384
Vec = np.ndarray


def unit(rng: np.random.Generator, count: int | None = None) -> Vec:
    shape = (DIM,) if count is None else (count, DIM)
    values = rng.standard_normal(shape).astype(np.float32)
    return values / np.linalg.norm(values, axis=-1, keepdims=True)


def at_similarity(query: Vec, similarity: float, rng: np.random.Generator) -> Vec:
    """A unit vector whose cosine similarity with ``query`` is exactly ``similarity``."""
    other = unit(rng)
    other -= (other @ query) * query
    other /= np.linalg.norm(other)
    return (similarity * query + math.sqrt(1 - similarity**2) * other).astype(np.float32)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(42)


def index(max_entries: int = 100_000, clock: Clock | None = None) -> MemorySemanticIndex:
    return MemorySemanticIndex(DIM, max_entries, clock=clock or Clock())


# -- one process -------------------------------------------------------------------------


async def test_threshold_decides_hit_or_miss(rng: np.random.Generator) -> None:
    query = unit(rng)
    found = index()
    await found.add("s", at_similarity(query, 0.951, rng), "close", 60)
    await found.add("s", at_similarity(query, 0.90, rng), "far", 60)
    hit = await found.search("s", query, 0.95)
    assert hit is not None
    assert hit[0] == "close"
    assert hit[1] == pytest.approx(0.951, abs=1e-4)
    assert await found.search("s", query, 0.952) is None
    hit = await found.search("s", query, 0.85)
    assert hit is not None
    assert hit[0] == "close"


async def test_scopes_are_isolated_tenants_never_share(rng: np.random.Generator) -> None:
    payload = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    tenant_a = semantic_scope("chat.completions", "key_a", payload)
    tenant_b = semantic_scope("chat.completions", "key_b", payload)
    vector = unit(rng)
    found = index()
    await found.add(tenant_a, vector, "answer-of-a", 60)
    assert await found.search(tenant_b, vector, 0.5) is None
    hit = await found.search(tenant_a, vector, 0.99)
    assert hit is not None
    assert hit[0] == "answer-of-a"
    await found.add(tenant_b, vector, "answer-of-b", 60)
    hit = await found.search(tenant_b, vector, 0.99)
    assert hit is not None
    assert hit[0] == "answer-of-b"


async def test_entries_expire_after_their_ttl(rng: np.random.Generator) -> None:
    clock = Clock()
    found = index(clock=clock)
    vector = unit(rng)
    await found.add("s", vector, "brief", 10)
    await found.add("s", at_similarity(vector, 0.97, rng), "lasting", 100)
    hit = await found.search("s", vector, 0.95)
    assert hit is not None
    assert hit[0] == "brief"
    clock.now += 10.5
    hit = await found.search("s", vector, 0.95)
    assert hit is not None
    assert hit[0] == "lasting"
    assert found.scope_size("s") == 1  # ...and dropped
    clock.now += 100
    assert await found.search("s", vector, 0.95) is None
    assert len(found) == 0
    found.add_now("s", vector, "already-expired", clock.now - 1)
    assert len(found) == 0


async def test_readding_a_key_replaces_its_entry(rng: np.random.Generator) -> None:
    found = index()
    first, second = unit(rng), unit(rng)
    await found.add("s", first, "k", 60)
    await found.add("s", second, "k", 60)
    assert len(found) == 1
    assert await found.search("s", first, 0.9) is None
    hit = await found.search("s", second, 0.99)
    assert hit is not None
    assert hit[0] == "k"


async def test_grows_past_the_first_chunk_and_finds_every_entry(rng: np.random.Generator) -> None:
    found = index()
    count = 3000
    vectors = unit(rng, count)
    for number, vector in enumerate(vectors):
        await found.add("s", vector, f"k{number}", 60)
    assert found.scope_size("s") == count
    assert found.scope_capacity("s") >= count > FIRST_ROWS
    for number in (0, FIRST_ROWS - 1, FIRST_ROWS, 2 * FIRST_ROWS + 5, count - 1):
        hit = await found.search("s", at_similarity(vectors[number], 0.97, rng), 0.95)
        assert hit is not None
        assert hit[0] == f"k{number}"


async def test_bounded_by_max_entries_expired_first_then_oldest(rng: np.random.Generator) -> None:
    clock = Clock()
    found = index(max_entries=4, clock=clock)
    vectors = unit(rng, 7)
    await found.add("a", vectors[0], "old", 60)
    await found.add("b", vectors[1], "brief", 5)
    await found.add("a", vectors[2], "k2", 60)
    await found.add("b", vectors[3], "k3", 60)
    clock.now += 6  # "brief" has expired: it makes room first
    await found.add("a", vectors[4], "k4", 60)
    assert len(found) == 4
    assert await found.search("a", vectors[0], 0.99) is not None  # the oldest stays this time
    await found.add("a", vectors[5], "k5", 60)  # full: the oldest added goes
    assert len(found) == 4
    assert await found.search("a", vectors[0], 0.99) is None
    for number, key in ((2, "k2"), (4, "k4"), (5, "k5")):
        hit = await found.search("a", vectors[number], 0.99)
        assert hit is not None
        assert hit[0] == key
    assert found.scope_capacity("a") <= FIRST_ROWS


async def test_many_small_scopes_stay_small(rng: np.random.Generator) -> None:
    found = index()
    for number, vector in enumerate(unit(rng, 500)):
        await found.add(f"tenant-{number}", vector, "k", 60)
    assert {found.scope_capacity(f"tenant-{number}") for number in range(500)} == {FIRST_ROWS}


async def test_rows_stay_consistent_when_entries_leave_from_the_middle(rng: np.random.Generator) -> None:
    clock = Clock()
    found = index(clock=clock)
    vectors = unit(rng, 50)
    for number, vector in enumerate(vectors):
        await found.add("s", vector, f"k{number}", 5 if number % 3 == 0 else 60)
    clock.now += 6
    for number, vector in enumerate(vectors):  # searching drops the expired rows as it meets them
        hit = await found.search("s", vector, 0.999)
        if number % 3 == 0:
            assert hit is None
        else:
            assert hit is not None
            assert hit[0] == f"k{number}"
    assert found.scope_size("s") == len([n for n in range(50) if n % 3])


async def test_candidate_codes_miss_nothing_near_the_threshold(rng: np.random.Generator) -> None:
    """The sign-code prefilter is approximate; near-threshold rows among many must still be found."""
    found = index()
    filler = unit(rng, 20_000)
    for number, vector in enumerate(filler):
        found.add_now("s", vector, f"fill{number}", 2000.0)
    queries = unit(rng, 200)
    for number, query in enumerate(queries):
        found.add_now("s", at_similarity(query, 0.80, rng), f"target{number}", 2000.0)
    hits = [await found.search("s", query, 0.79) for query in queries]
    assert all(hit is not None and hit[0] == f"target{number}" for number, hit in enumerate(hits))


def test_cutoff_grows_as_the_threshold_falls() -> None:
    cutoffs = [_cutoff(threshold) for threshold in (1.0, 0.99, 0.95, 0.9, 0.8, 0.5)]
    assert cutoffs == sorted(cutoffs)
    assert cutoffs[0] == 0


async def test_vectors_of_the_wrong_size_are_refused(rng: np.random.Generator) -> None:
    found = index()
    with pytest.raises(ValueError, match="384"):
        await found.add("s", np.ones(10, dtype=np.float32), "k", 60)
    with pytest.raises(ValueError, match="zero"):
        await found.add("s", np.zeros(DIM, dtype=np.float32), "k", 60)


# -- shared through Redis ----------------------------------------------------------------


@pytest.fixture
def shared_prefix() -> Iterator[str]:
    prefix = f"llmops:test:{uuid.uuid4().hex}:"
    yield prefix
    with redis.Redis.from_url(redis_url()) as client:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)


def replica(prefix: str, max_entries: int = 1000, url: str | None = None) -> RedisSharedIndex:
    """One replica's index: its own memory, the common stream."""
    return RedisSharedIndex(MemorySemanticIndex(DIM, max_entries), connect(url or redis_url()), prefix=prefix)


async def test_an_entry_added_on_one_replica_is_found_on_another_at_once(
    shared_prefix: str, rng: np.random.Generator
) -> None:
    first, second = replica(shared_prefix), replica(shared_prefix)
    try:
        query = unit(rng)
        assert await second.search("scope", query, 0.9) is None  # second has read the stream (empty)
        await first.add("scope", at_similarity(query, 0.96, rng), "key-1", 60)
        hit = await second.search("scope", query, 0.95)
        assert hit is not None
        assert hit[0] == "key-1"
        assert hit[1] == pytest.approx(0.96, abs=1e-4)
        assert await second.search("other-tenant-scope", query, 0.5) is None
        # the first replica does not take its own entries twice
        await first.search("scope", query, 0.95)
        assert len(first.local) == 1
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_replica_that_starts_later_reads_every_live_entry(
    shared_prefix: str, rng: np.random.Generator
) -> None:
    first = replica(shared_prefix, max_entries=10_000)
    vectors = unit(rng, READ_BATCH + 300)  # more than one read
    try:
        await asyncio.gather(*(first.add("s", v, f"k{n}", 60) for n, v in enumerate(vectors)))
        await first.add("s", unit(rng), "expired", 0.01)
        await asyncio.sleep(0.05)
        late = replica(shared_prefix, max_entries=10_000)
        try:
            await late.catch_up()
            hit = await late.search("s", vectors[-1], 0.99)
            assert hit is not None
            assert hit[0] == f"k{len(vectors) - 1}"
            assert len(late.local) == len(vectors)  # the expired entry was not taken in
        finally:
            await late.aclose()
    finally:
        await first.aclose()


async def test_searches_do_not_wait_long_for_a_long_catch_up(
    shared_prefix: str, rng: np.random.Generator
) -> None:
    vectors = unit(rng, 20_000)
    with redis.Redis.from_url(redis_url()) as raw, raw.pipeline(transaction=False) as pipe:
        for number, vector in enumerate(vectors):
            pipe.xadd(f"{shared_prefix}semantic", {"e": pack("other", "s", f"k{number}", 1e12, vector)})
        pipe.execute()
    late = replica(shared_prefix, max_entries=30_000)
    try:
        started = asyncio.get_running_loop().time()
        await late.search("s", vectors[-1], 0.99)  # starts the catch-up, waits for it a moment
        first_search = asyncio.get_running_loop().time() - started
        await late.catch_up()
        whole_catch_up = asyncio.get_running_loop().time() - started
        assert first_search < whole_catch_up
        assert len(late.local) == len(vectors)
        hit = await late.search("s", vectors[-1], 0.99)
        assert hit is not None
        assert hit[0] == f"k{len(vectors) - 1}"
    finally:
        await late.aclose()


async def test_concurrent_searches_share_reads(shared_prefix: str, rng: np.random.Generator) -> None:
    first, second = replica(shared_prefix), replica(shared_prefix)
    try:
        await second.catch_up()
        query = unit(rng)
        await first.add("s", query, "k", 60)
        hits = await asyncio.gather(*(second.search("s", query, 0.99) for _ in range(50)))
        assert all(hit is not None and hit[0] == "k" for hit in hits)
        assert len(second.local) == 1
    finally:
        await first.aclose()
        await second.aclose()


async def test_unreadable_shared_entries_are_skipped(shared_prefix: str, rng: np.random.Generator) -> None:
    shared = replica(shared_prefix)
    try:
        vector = unit(rng)
        with redis.Redis.from_url(redis_url()) as raw:
            raw.xadd(shared.stream, {"e": pack("other", "s", "short", 1e12, vector[:10])})
            raw.xadd(shared.stream, {"e": b"other\0s\0no expiry and vector"})
            raw.xadd(shared.stream, {"e": pack("other", "s", "zero", 1e12, np.zeros(DIM, np.float32))})
            raw.xadd(shared.stream, {"something": "else"})
            raw.xadd(shared.stream, {"e": pack("other", "s", "good", 1e12, vector)})
        hit = await shared.search("s", vector, 0.99)
        assert hit is not None
        assert hit[0] == "good"
        assert len(shared.local) == 1
    finally:
        await shared.aclose()


async def test_shared_index_on_a_redis_that_is_down_raises(rng: np.random.Generator) -> None:
    down = replica("llmops:test:down:", url=f"redis://127.0.0.1:{closed_port()}/0")
    try:
        with pytest.raises(RedisConnectionError):
            await down.search("s", unit(rng), 0.9)
        with pytest.raises(RedisUnavailable):
            await down.add("s", unit(rng), "k", 60)
        assert len(down.local) == 1  # kept locally all the same
    finally:
        await down.aclose()

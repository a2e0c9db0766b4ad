#!/usr/bin/env python3
"""How long a semantic-cache lookup takes with 100,000 entries in one scope (no server, no HTTP).

A lookup is what the response cache does on an exact miss for a model in semantic mode: embed the
conversation with the embedded all-MiniLM-L6-v2 (in a worker thread), then search the scope's index.
Both are timed together, per query, and apart:

  lookup      embed + search, the figure the target is about (p50 < 10 ms)
  embed       MiniLM alone (onnxruntime, a worker thread)
  search      the index alone (sign-code prefilter + exact cosine over the candidates)

The index is filled with --entries unit vectors in one scope. ``--fill random`` uses random unit
vectors (unrelated entries: few candidates survive the prefilter). ``--fill near`` puts every entry
at a cosine similarity of 0.80-0.94 to one of the query texts, just under a 0.95 threshold, so
thousands of rows pass the prefilter and the search does the most exact work it can (at most 1,024
rows per query). The queries are real text embedded by MiniLM; half of them are paraphrases of 50
questions stored with their real embeddings, so both hits and misses are timed.

With ``--redis-url`` it measures the index shared through Redis too: the entries are appended to the
stream (what replicas do as they store answers), a fresh replica catches up from the stream (timed),
then every lookup includes the read of what was appended since the last one (XREAD), once with
nothing new and once with one entry added by another replica before each lookup. Keys live under a
prefix of their own, deleted at the end.

Run: .venv/bin/python bench/semantic_cache.py [--entries 100000] [--queries 400]
     [--fill random|near|both] [--redis-url redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from llmops.gateway.cache.semantic import MINILM_DIMENSIONS, MiniLMEmbedder, build_semantic
from llmops.gateway.cache.vector_index import MemorySemanticIndex
from llmops.providers.base import ProviderContext
from llmops.settings import Settings

SCOPE = "bench-scope"
THRESHOLD = 0.95
TARGET_MS = 10.0
TOPICS = (
    "the capital of France",
    "how to bake sourdough bread",
    "the boiling point of water",
    "why the sky is blue",
    "how a transformer model works",
    "the tallest mountain on Earth",
    "how to reset a router",
    "what causes inflation",
    "the rules of chess castling",
    "how vaccines train the immune system",
    "the speed of light",
    "how to write a cover letter",
    "what a black hole is",
    "the difference between TCP and UDP",
    "how photosynthesis works",
    "the history of the Roman empire",
    "how to change a flat tyre",
    "what a mortgage rate is",
    "how solar panels make electricity",
    "the best way to learn a language",
    "what DNS does",
    "how to cook rice",
    "what the stock market is",
    "the causes of the first world war",
    "how to train a puppy",
    "what an API is",
    "how earthquakes happen",
    "what a prime number is",
    "how to meditate",
    "the plot of Hamlet",
    "how a refrigerator works",
    "what GDP measures",
    "how to brew coffee",
    "the planets of the solar system",
    "what machine learning is",
    "how to tie a tie",
    "why leaves change colour",
    "what a virus is",
    "how batteries work",
    "the meaning of entropy",
    "how to start running",
    "what a blockchain is",
    "how tides work",
    "the origin of the Olympic games",
    "how to save for retirement",
    "what a neural network is",
    "how airplanes stay in the air",
    "what causes rainbows",
    "how to grow tomatoes",
    "what SQL is",
)
FORMS = ("What is {}?", "Can you explain {}?", "Tell me about {}.", "I would like to know {}.")
PARAPHRASES = ("what's {}?", "Please explain {}.", "Explain {} to me.", "Could you tell me about {}?")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def summary(name: str, values: list[float]) -> str:
    return (
        f"{name:<34} p50 {percentile(values, 0.5):7.2f} ms   p95 {percentile(values, 0.95):7.2f} ms"
        f"   mean {statistics.fmean(values):7.2f} ms   n={len(values)}"
    )


def random_units(rng: np.random.Generator, count: int) -> np.ndarray:
    values = rng.standard_normal((count, MINILM_DIMENSIONS)).astype(np.float32)
    return values / np.linalg.norm(values, axis=1, keepdims=True)


def near(rng: np.random.Generator, anchors: np.ndarray, count: int) -> np.ndarray:
    """Unit vectors at a similarity of 0.80-0.94 to anchors taken in turn."""
    base = anchors[np.arange(count) % len(anchors)]
    noise = random_units(rng, count)
    noise -= (noise * base).sum(axis=1, keepdims=True) * base
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    similarity = rng.uniform(0.80, 0.94, size=(count, 1)).astype(np.float32)
    return similarity * base + np.sqrt(1 - similarity**2) * noise


def texts(count: int) -> tuple[list[str], list[str]]:
    """(stored questions, queries): half the queries paraphrase a stored question, half are new."""
    stored = [f"user: {FORMS[0].format(topic)}" for topic in TOPICS]
    queries = []
    for number in range(count):
        topic = TOPICS[number % len(TOPICS)]
        if number % 2 == 0:
            queries.append(f"user: {PARAPHRASES[number // 2 % len(PARAPHRASES)].format(topic)}")
        else:
            queries.append(f"user: {FORMS[1 + number % 3].format(topic)} (case {number})")
    return stored, queries


async def time_lookups(
    embedder: MiniLMEmbedder,
    search: Callable[[Any], Awaitable[tuple[str, float] | None]],
    queries: list[str],
    before: Callable[[int], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    lookup, embed, searched, hits = [], [], [], 0
    for number, query in enumerate(queries):
        if before is not None:
            await before(number)
        started = time.perf_counter()
        vector = await embedder.embed(query)
        embedded = time.perf_counter()
        found = await search(vector)
        ended = time.perf_counter()
        lookup.append((ended - started) * 1000)
        embed.append((embedded - started) * 1000)
        searched.append((ended - embedded) * 1000)
        hits += found is not None
    return {"lookup": lookup, "embed": embed, "search": searched, "hits": hits}


def report(title: str, timings: dict[str, Any]) -> float:
    print(f"\n{title}")
    print("  " + summary("lookup (embed + search)", timings["lookup"]))
    print("  " + summary("  embed", timings["embed"]))
    print("  " + summary("  search", timings["search"]))
    print(f"  hits: {timings['hits']} of {len(timings['lookup'])} (threshold {THRESHOLD})")
    return percentile(timings["lookup"], 0.5)


async def fill_memory(index: MemorySemanticIndex, vectors: np.ndarray, ttl: float) -> float:
    started = time.perf_counter()
    expires = index.clock() + ttl
    for number, vector in enumerate(vectors):
        index.add_now(SCOPE, vector, f"fill-{number}", expires)
    return time.perf_counter() - started


async def store_real(index: Any, embedder: MiniLMEmbedder, stored: list[str]) -> np.ndarray:
    vectors = []
    for number, question in enumerate(stored):
        vector = await embedder.embed(question)
        vectors.append(vector)
        await index.add(SCOPE, vector, f"real-{number}", 3600)
    return np.asarray(vectors)


async def memory_run(args: argparse.Namespace, embedder: MiniLMEmbedder, fill: str) -> float:
    rng = np.random.default_rng(1)
    stored, queries = texts(args.queries)
    index = MemorySemanticIndex(MINILM_DIMENSIONS, args.entries + len(stored))
    anchors = await store_real(index, embedder, stored)
    vectors = random_units(rng, args.entries) if fill == "random" else near(rng, anchors, args.entries)
    seconds = await fill_memory(index, vectors, 3600)
    print(f"\nfilled {len(index):,} entries ({fill}) in one scope in {seconds:.1f} s")
    await time_lookups(embedder, lambda v: index.search(SCOPE, v, THRESHOLD), queries[:20])  # warm-up
    timings = await time_lookups(embedder, lambda v: index.search(SCOPE, v, THRESHOLD), queries)
    return report(f"in memory, {len(index):,} entries, fill={fill}", timings)


async def redis_run(args: argparse.Namespace, embedder: MiniLMEmbedder, fill: str) -> float:
    from redis.asyncio import Redis

    from llmops.gateway.cache.redis_store import connect
    from llmops.gateway.cache.shared_index import RedisSharedIndex, pack

    prefix = f"llmops:bench:{uuid.uuid4().hex[:8]}:"
    rng = np.random.default_rng(2)
    stored, queries = texts(args.queries)
    size = args.entries + len(stored) + len(queries) + 100

    def replica() -> RedisSharedIndex:
        return RedisSharedIndex(
            MemorySemanticIndex(MINILM_DIMENSIONS, size), connect(args.redis_url), prefix=prefix
        )

    writer, reader = replica(), replica()
    raw = Redis.from_url(args.redis_url)
    try:
        anchors = await store_real(writer, embedder, stored)
        vectors = random_units(rng, args.entries) if fill == "random" else near(rng, anchors, args.entries)
        started = time.perf_counter()
        expires = time.time() + 3600
        for start in range(0, len(vectors), 1000):  # what replicas append as they store answers
            async with raw.pipeline(transaction=False) as pipe:
                for number in range(start, min(start + 1000, len(vectors))):
                    entry = pack("other", SCOPE, f"fill-{number}", expires, vectors[number])
                    pipe.xadd(writer.stream, {"e": entry})
                await pipe.execute()
        seconds = time.perf_counter() - started
        print(f"\nappended {len(vectors):,} entries ({fill}) to the stream in {seconds:.1f} s")
        started = time.perf_counter()
        await reader.catch_up()
        seconds = time.perf_counter() - started
        print(f"a new replica caught up with {len(reader.local):,} entries in {seconds:.1f} s")
        await time_lookups(embedder, lambda v: reader.search(SCOPE, v, THRESHOLD), queries[:20])
        quiet = await time_lookups(embedder, lambda v: reader.search(SCOPE, v, THRESHOLD), queries)
        p50 = report(f"shared through Redis, nothing new per lookup, fill={fill}", quiet)

        async def another_replica_adds(number: int) -> None:
            await writer.add("another-scope", random_units(rng, 1)[0], f"new-{number}", 3600)

        busy = await time_lookups(
            embedder, lambda v: reader.search(SCOPE, v, THRESHOLD), queries, before=another_replica_adds
        )
        report(f"shared through Redis, one new entry from another replica per lookup, fill={fill}", busy)
        return p50
    finally:
        keys = [key async for key in raw.scan_iter(match=prefix + "*")]
        if keys:
            await raw.delete(*keys)
        await raw.aclose()
        await writer.aclose()
        await reader.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=100_000, help="entries in the scope (100000)")
    parser.add_argument("--queries", type=int, default=400, help="timed lookups per case (400)")
    parser.add_argument(
        "--fill", choices=("random", "near", "both"), default="both", help="how to fill (both)"
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("LLMOPS_TEST_REDIS_URL"),
        help="also measure the index shared through this Redis (default: $LLMOPS_TEST_REDIS_URL; '' skips)",
    )
    args = parser.parse_args()
    print(f"load average: {' '.join(open('/proc/loadavg').read().split()[:3])}; cpus: {os.cpu_count()}")
    context = ProviderContext(settings=Settings())
    try:
        _, embedder = build_semantic(Settings(), context)
        assert isinstance(embedder, MiniLMEmbedder)
        started = time.perf_counter()
        await embedder.embed("user: load the model")
        print(f"MiniLM loaded in {time.perf_counter() - started:.2f} s")
        fills = ("random", "near") if args.fill == "both" else (args.fill,)
        results = [(f"memory/{fill}", await memory_run(args, embedder, fill)) for fill in fills]
        if args.redis_url:
            results += [(f"redis/{fill}", await redis_run(args, embedder, fill)) for fill in fills]
    finally:
        await context.aclose()
    print()
    for name, p50 in results:
        verdict = "met" if p50 < TARGET_MS else "NOT met"
        figures = f"entries={args.entries} lookup_p50_ms={p50:.2f} target<{TARGET_MS:g}ms"
        print(f"summary case={name} {figures} {verdict}")


if __name__ == "__main__":
    asyncio.run(main())

"""What routing over two deployments plus the exact cache adds, in-process (`Gateway.handle`, no HTTP).

Two models are built as `llmops serve` builds them: `single` (one deployment, no cache) and `routed`
(two deployments, weighted random, `cache: {mode: exact}`). Every request is a new question at
temperature 0, so each `routed` request is a cache miss that is keyed, looked up, routed, answered and
stored. The upstream is the `echo` provider, or with ``--upstream URL`` an OpenAI-compatible server
(e.g. the nginx fake of bench/run.sh). The two kinds alternate in blocks so that a drift of the shared
machine hits both alike; traces are queued (the writer is not started) and the queue is emptied per block.

usage: .venv/bin/python bench/routing_inprocess.py [--upstream http://127.0.0.1:19080/v1] [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from llmops.gateway.auth import ANONYMOUS
from llmops.gateway.cache import MemoryAnswerStore, ResponseCache
from llmops.gateway.catalog import ModelCatalog
from llmops.gateway.endpoints import CHAT
from llmops.gateway.service import Gateway
from llmops.providers.base import ProviderContext
from llmops.providers.registry import ProviderRegistry
from llmops.services import open_store
from llmops.settings import ModelConfig, load_settings
from llmops.store import TraceRepository
from llmops.tracing.metrics import GatewayMetrics, MetricsRegistry
from llmops.tracing.writer import TraceWriter


def _deployment(upstream: str | None, **extra: Any) -> dict[str, Any]:
    if upstream is None:
        return {"provider": "echo", **extra}
    return {"provider": "openai", "base_url": upstream, **extra}


async def _run(args: argparse.Namespace, home: Path) -> None:
    settings = load_settings(home=home, database_url=f"sqlite:///{home / 'bench.db'}")
    store = open_store(settings)
    configs = (
        ModelConfig.model_validate({"name": "single", **_deployment(args.upstream)}),
        ModelConfig.model_validate(
            {
                "name": "routed",
                "routing": "weighted-random",
                "cache": {"mode": "exact"},
                "deployments": [_deployment(args.upstream, id="a"), _deployment(args.upstream, id="b")],
            }
        ),
    )
    context = ProviderContext(settings=settings)  # owns the shared HTTP session
    catalog = ModelCatalog.build(configs, ProviderRegistry(), context)
    metrics = GatewayMetrics(MetricsRegistry())
    writer = TraceWriter(
        TraceRepository(store.engine), metrics, max_queue=args.block + 10, batch_size=100, flush_seconds=1
    )
    cache = ResponseCache(MemoryAnswerStore(100_000), metrics)
    gateway = Gateway(catalog, writer, metrics, record_content=True, cache=cache)
    await catalog.start()
    timings: dict[str, list[float]] = {"single": [], "routed": []}
    asked = 0

    async def block(model: str, keep: bool) -> None:
        nonlocal asked
        for _ in range(args.block):
            asked += 1
            question = {"role": "user", "content": f"What is a gateway benchmark for? ({asked})"}
            body = orjson.dumps({"model": model, "temperature": 0, "max_tokens": 24, "messages": [question]})
            began = time.perf_counter_ns()
            await gateway.handle(CHAT, ANONYMOUS, body)
            if keep:
                timings[model].append((time.perf_counter_ns() - began) / 1000)
        writer._queue.clear()  # the writer is not started: drop what this block queued

    try:
        for model in timings:
            await block(model, keep=False)
        for _ in range(args.rounds):
            for model in timings:
                await block(model, keep=True)
    finally:
        await catalog.aclose()
        await context.aclose()
        store.close()
    single, routed = (statistics.median(timings[name]) for name in ("single", "routed"))
    print(f"upstream: {args.upstream or 'echo provider'}; {len(timings['single'])} requests of each kind")
    print(f"single deployment, no cache     p50 {single:7.1f} µs")
    print(f"2 deployments + exact cache     p50 {routed:7.1f} µs")
    print(f"routing_inprocess_result added_p50_us={routed - single:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", help="an OpenAI-compatible base URL instead of the echo provider")
    parser.add_argument("--rounds", type=int, default=20, help="blocks of each kind (alternating)")
    parser.add_argument("--block", type=int, default=250, help="requests per block")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(_run(args, Path(folder)))


if __name__ == "__main__":
    main()

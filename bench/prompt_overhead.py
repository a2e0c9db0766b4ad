"""What naming a prompt adds to a request: `Gateway.handle` in-process, a model vs `prompt:NAME@production`.

No HTTP, no upstream: both requests go to the `echo` provider through the real gateway (validation,
catalog, router, trace recorder), built as `llmops serve` builds it, on a uvloop event loop, with a
real prompt registry in a fresh SQLite database. The prompt is a chat prompt of two message
templates with three variables (one defaulted), a model and two parameters; the plain request is
what that prompt renders to, so the echo provider does the same work for both and the difference
is the prompt step: resolution from memory, rendering, building the upstream request, and the
trace's prompt fields (the variables are recorded in its attributes, as with trace_content on).

Each call is timed alone (perf_counter_ns around `await gateway.handle(...)`); the two kinds
alternate in blocks of 100 so that a drift of the shared machine hits both alike. Traces are queued
as in the server; the writer is not started (no database writes meanwhile) and its queue is emptied
between blocks. SQL statements are counted during the timed part: there must be none.

usage: .venv/bin/python bench/prompt_overhead.py [--iterations N] [--warmup N] [--block N]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event

from llmops.gateway.auth import ANONYMOUS
from llmops.gateway.catalog import ModelCatalog
from llmops.gateway.endpoints import CHAT
from llmops.gateway.prompting import PromptStep
from llmops.gateway.service import Gateway, WholeReply
from llmops.prompts.resolver import PromptResolver
from llmops.prompts.spec import MessageTemplate, PromptContent, VariableSpec
from llmops.providers.base import ProviderContext
from llmops.providers.registry import ProviderRegistry
from llmops.services import open_store
from llmops.settings import ModelConfig, load_settings
from llmops.store import TraceRepository
from llmops.tracing.metrics import GatewayMetrics, MetricsRegistry
from llmops.tracing.writer import TraceWriter

PROMPT = PromptContent(
    kind="chat",
    messages=(
        MessageTemplate(
            role="system",
            content="You are the support assistant of {{ product }}. "
            "Answer in a {{ tone }} tone, in two sentences.",
        ),
        MessageTemplate(role="user", content="Customer question: {{ question }}"),
    ),
    variables={
        "product": VariableSpec(required=True),
        "tone": VariableSpec(default="friendly"),
        "question": VariableSpec(required=True),
    },
    model="echo",
    parameters={"temperature": 0.2, "max_tokens": 64},
)
VARIABLES = {"product": "llmops", "question": "What is a gateway benchmark for?"}
PROMPTED = {"model": "prompt:support@production", "messages": [], "prompt_variables": VARIABLES}
PLAIN = {
    "model": "echo",
    "messages": [
        {
            "role": "system",
            "content": "You are the support assistant of llmops. "
            "Answer in a friendly tone, in two sentences.",
        },
        {"role": "user", "content": "Customer question: What is a gateway benchmark for?"},
    ],
    "temperature": 0.2,
    "max_tokens": 64,
}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _describe(name: str, micros: list[float]) -> str:
    return (
        f"{name:<28} p50 {statistics.median(micros):7.1f}  p90 {_percentile(micros, 0.9):7.1f}  "
        f"p99 {_percentile(micros, 0.99):7.1f}  mean {statistics.fmean(micros):7.1f}  (µs, n={len(micros)})"
    )


async def _run(args: argparse.Namespace, home: Path) -> int:
    settings = load_settings(home=home, database_url=f"sqlite:///{home / 'bench.db'}")
    store = open_store(settings)
    store.prompts.create_version("support", PROMPT, labels=["production"])
    catalog = ModelCatalog.build(
        (ModelConfig.model_validate({"name": "echo", "provider": "echo"}),),
        ProviderRegistry(),
        ProviderContext(settings=settings),
    )
    metrics = GatewayMetrics(MetricsRegistry())
    writer = TraceWriter(
        TraceRepository(store.engine),
        metrics,
        max_queue=10 * args.block + 10,
        batch_size=100,
        flush_seconds=1,
    )
    resolver = PromptResolver(
        store.prompts, store.experiments, refresh_seconds=settings.prompt_refresh_seconds
    )
    gateway = Gateway(
        catalog,
        writer,
        metrics,
        record_content=True,
        prompts=PromptStep(resolver, record_variables=True),
    )
    await catalog.start()
    bodies = {"plain": orjson.dumps(PLAIN), "prompt": orjson.dumps(PROMPTED)}
    first = {}
    for kind, body in bodies.items():
        reply = await gateway.handle(CHAT, ANONYMOUS, body)
        assert isinstance(reply, WholeReply)
        first[kind] = orjson.loads(reply.body)["choices"][0]["message"]["content"]
    assert first["plain"] == first["prompt"], first  # the same work for the echo provider
    timings: dict[str, list[float]] = {"plain": [], "prompt": []}

    async def block(kind: str, count: int, keep: bool) -> None:
        body = bodies[kind]
        handle, clock, out = gateway.handle, time.perf_counter_ns, timings[kind]
        for number in range(count):
            began = clock()
            await handle(CHAT, ANONYMOUS, body)
            ended = clock()
            if keep:
                out.append((ended - began) / 1000)
            if number % args.block == args.block - 1:
                writer._queue.clear()  # the writer is not started: drop what was queued
        writer._queue.clear()

    for kind in bodies:
        await block(kind, args.warmup, keep=False)
    loads = resolver.loads
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", seen)
    gc.collect()
    gc.freeze()  # as `llmops serve` does once started
    try:
        for _ in range(args.iterations // args.block):
            for kind in ("plain", "prompt"):
                await block(kind, args.block, keep=True)
    finally:
        event.remove(store.engine, "before_cursor_execute", seen)
    plain, prompt = timings["plain"], timings["prompt"]
    print(_describe("plain model (echo)", plain))
    print(_describe("prompt:support@production", prompt))
    added_p50 = statistics.median(prompt) - statistics.median(plain)
    added_mean = statistics.fmean(prompt) - statistics.fmean(plain)
    added_p99 = _percentile(prompt, 0.99) - _percentile(plain, 0.99)
    print(f"added by the prompt: p50 {added_p50:.1f} µs, mean {added_mean:.1f} µs, p99 {added_p99:.1f} µs")
    print(
        f"SQL statements during the timed part: {len(statements)}; "
        f"loads from the registry: {resolver.loads - loads}"
    )
    print(
        f"prompt_overhead_result added_p50_us={added_p50:.1f} added_mean_us={added_mean:.1f} "
        f"plain_p50_us={statistics.median(plain):.1f} prompt_p50_us={statistics.median(prompt):.1f} "
        f"sql_statements={len(statements)} target_p50_under_50us={'PASS' if added_p50 < 50 else 'FAIL'}"
    )
    await catalog.aclose()
    store.close()
    return 0 if not statements and resolver.loads == loads else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20_000, help="timed requests of each kind")
    parser.add_argument("--warmup", type=int, default=2_000, help="untimed requests of each kind first")
    parser.add_argument("--block", type=int, default=100, help="requests of one kind in a row")
    args = parser.parse_args(argv)
    try:
        import uvloop

        new_loop: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        loop_name = f"uvloop {uvloop.__version__}"
    except ImportError:
        new_loop, loop_name = asyncio.new_event_loop, "asyncio"
    print(f"python {platform.python_version()}, {loop_name}, {args.iterations} timed requests of each kind")
    with tempfile.TemporaryDirectory(prefix="llmops-prompt-bench-") as folder:
        with asyncio.Runner(loop_factory=new_loop) as runner:
            return runner.run(_run(args, Path(folder)))


if __name__ == "__main__":
    sys.exit(main())

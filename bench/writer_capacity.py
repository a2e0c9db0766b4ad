"""How many traces per second the trace writer stores, without the gateway: SQLite and Postgres.

Records shaped like the ones `bench/run.sh` produces (the same request body, answer, usage and
timings) are submitted to a real `TraceWriter` on a uvloop event loop, as fast as it takes them,
and the clock stops when `llmops_traces_written_total` reaches the count. Two event-loop states:

  idle  the loop does nothing else: the writer's ceiling
  busy  a task keeps the loop, and so the GIL, busy the whole time, as the gateway's loop is at
        its peak: the writer's thread must win the GIL back after every statement it sends

`--compare-core` also measures the writer this one replaced (SQLAlchemy Core `insert()` executemany
of `to_row()` dicts, 100-row transactions, 8 per trip to a worker thread), in the same sitting.

Postgres runs in a fresh database (created, then dropped) on the server of --postgres-url
(default: $LLMOPS_TEST_POSTGRES_URL, else postgresql+psycopg://postgres@127.0.0.1:5432/postgres).

usage: .venv/bin/python bench/writer_capacity.py [--rows N] [--batch-size N] [--repeats N]
           [--backend sqlite|postgresql|both] [--loop idle|busy|both] [--compare-core]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

from llmops.ids import new_id
from llmops.store import TraceRepository, open_database
from llmops.tracing.metrics import GatewayMetrics, MetricsRegistry
from llmops.tracing.record import TraceRecord
from llmops.tracing.writer import TraceWriter

REQUEST = {
    "model": "fake-model",
    "messages": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is a gateway benchmark for?"},
    ],
    "max_tokens": 24,
    "temperature": 0,
}


def _records(count: int) -> list[TraceRecord]:
    now = time.time()
    return [
        TraceRecord(
            id=new_id(),
            started_at=now,
            endpoint="chat.completions",
            requested_model="fake-model",
            stream=False,
            api_key_id="key_0123456789abcdef0123456789abcdef",
            provider="openai",
            upstream_model="fake-model",
            deployment="fake-model",
            ended_at=now + 0.0012,
            request={**REQUEST, "messages": [dict(message) for message in REQUEST["messages"]]},
            response_text="The llmops bench upstream says hello.",
            finish_reason="stop",
            prompt_tokens=14,
            completion_tokens=7,
            usage_source="upstream",
            cost=0.0,
            latency_ms=1.2,
        )
        for _ in range(count)
    ]


async def _spin(stop: asyncio.Event) -> None:
    """A saturated event loop: short bursts of Python work, yielding between them."""
    while not stop.is_set():
        total = 0
        for value in range(300):
            total += value
        await asyncio.sleep(0)


async def _writer(engine: Engine, records: list[TraceRecord], batch: int) -> float:
    metrics = GatewayMetrics(MetricsRegistry())
    writer = TraceWriter(
        TraceRepository(engine), metrics, max_queue=len(records) + 1, batch_size=batch, flush_seconds=0.05
    )
    writer.start()
    started = time.perf_counter()
    for start in range(0, len(records), 1000):  # arrivals in bursts, so the loop interleaves
        for record in records[start : start + 1000]:
            writer.submit(record)
        await asyncio.sleep(0)
    while metrics.traces_written.value() < len(records):
        await asyncio.sleep(0.002)
    seconds = time.perf_counter() - started
    await writer.drain()
    assert metrics.traces_dropped.values == {}, metrics.traces_dropped.values
    return seconds


async def _core(engine: Engine, records: list[TraceRecord], batch: int) -> float:
    """The replaced writer's work: to_row() dicts, Core executemany, `batch` rows a transaction."""
    repository = TraceRepository(engine)
    queue = deque(records)

    def trip(taken: list[TraceRecord]) -> None:
        for start in range(0, len(taken), batch):
            repository.insert_many([record.to_row() for record in taken[start : start + batch]])

    started = time.perf_counter()
    while queue:
        taken = [queue.popleft() for _ in range(min(len(queue), batch * 8))]
        await asyncio.to_thread(trip, taken)
    return time.perf_counter() - started


async def _measure(
    run: Callable[[Engine, list[TraceRecord], int], Awaitable[float]],
    engine: Engine,
    rows: int,
    batch: int,
    busy: bool,
) -> float:
    records = _records(rows)
    stop = asyncio.Event()
    spinner = asyncio.create_task(_spin(stop)) if busy else None
    try:
        return await run(engine, records, batch)
    finally:
        stop.set()
        if spinner is not None:
            await spinner


def _encode_microseconds(engine: Engine, batch: int) -> float:
    """Event-loop time to turn one record into its row (what submit() adds to each request)."""
    sink = TraceRepository(engine).row_sink(batch)
    records = _records(20_000)
    started = time.perf_counter()
    for record in records:
        record.values(sink.format_time)
    return (time.perf_counter() - started) / len(records) * 1e6


@contextmanager
def _database(backend: str, postgres_url: str) -> Iterator[Engine]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="llmops-writer-bench-") as folder:
            engine = open_database(f"sqlite:///{Path(folder) / 'llmops.db'}")
            try:
                yield engine
            finally:
                engine.dispose()
        return
    name = f"llmops_writer_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        engine = open_database(f"{postgres_url.rpartition('/')[0]}/{name}")
        try:
            yield engine
        finally:
            engine.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _clear(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM trace"))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=50_000, help="traces per measurement (50000)")
    parser.add_argument(
        "--batch-size", type=int, default=100, help="rows per statement (the default setting)"
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--loop", choices=["idle", "busy", "both"], default="both")
    parser.add_argument("--compare-core", action="store_true", help="also measure the replaced Core writer")
    parser.add_argument("--repeats", type=int, default=2, help="runs per point; the median is reported")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("LLMOPS_TEST_POSTGRES_URL")
        or "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    )
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    loops = ["idle", "busy"] if args.loop == "both" else [args.loop]
    paths: list[tuple[str, Callable[[Engine, list[TraceRecord], int], Awaitable[float]]]] = [
        ("writer", _writer)
    ]
    if args.compare_core:
        paths.append(("core", _core))
    try:
        import uvloop

        new_loop: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    except ImportError:
        new_loop = asyncio.new_event_loop
    print(f"cpus {os.cpu_count()}  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    loop_module = new_loop.__module__
    print(f"rows {args.rows} per run, batch {args.batch_size}, median of {args.repeats}; loop {loop_module}")
    print(f"{'backend':10} {'path':6} {'loop':5} {'rows/s':>9}  runs (rows/s)")
    summary = []
    for backend in backends:
        with _database(backend, args.postgres_url) as engine:
            encode = _encode_microseconds(engine, args.batch_size)
            print(f"{backend:10} encode: {encode:.2f} us per record on the event loop (submit)")
            summary.append(f"{backend}_encode_us={encode:.2f}")
            for path, run in paths:
                for loop_state in loops:
                    rates = []
                    for _ in range(args.repeats):
                        _clear(engine)
                        with asyncio.Runner(loop_factory=new_loop) as runner:
                            seconds = runner.run(
                                _measure(run, engine, args.rows, args.batch_size, loop_state == "busy")
                            )
                        rates.append(args.rows / seconds)
                    rate = statistics.median(rates)
                    runs = " ".join(f"{r:,.0f}" for r in rates)
                    print(f"{backend:10} {path:6} {loop_state:5} {rate:9,.0f}  {runs}")
                    summary.append(f"{backend}_{path}_{loop_state}_rows_per_s={rate:.0f}")
    print("summary " + " ".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

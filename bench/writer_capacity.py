"""How many traces per second the trace writer stores, without the gateway: SQLite and Postgres.

Records shaped like the ones `bench/run.sh` produces (the same request body, answer, usage and
timings) are submitted to a real `TraceWriter` on a uvloop event loop, as fast as it takes them,
and the clock stops when `llmops_traces_written_total` reaches the count (or after --max-seconds:
the rate is then what was stored by that time). Two event-loop states:

  idle  the loop does nothing else: the writer's ceiling
  busy  a task keeps the loop, and so the GIL, busy the whole time (pure Python, yielding between
        bursts): the worst case for the writer's thread, which must win the GIL back (up to the 5 ms
        switch interval) each time the database driver gave it away. The gateway's loop at its
        peak is less harsh: it waits in epoll between callbacks.

`--compare-core` also measures the writer this one replaced (SQLAlchemy Core `insert()` executemany
of `to_row()` dicts, 100-row transactions, 8 per trip to a worker thread), in the same sitting.

Postgres runs in a fresh database (created, then dropped) on the server of --postgres-url
(default: $LLMOPS_TEST_POSTGRES_URL, else postgresql+psycopg://postgres@127.0.0.1:5432/postgres).

usage: .venv/bin/python bench/writer_capacity.py [--rows N] [--batch-size N] [--repeats N]
           [--backend sqlite|postgresql|both] [--loop idle|busy|both] [--compare-core] [--max-seconds S]
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


# a run stops at its row count or at its deadline, whichever comes first: (rows stored, seconds)
Run = Callable[[Engine, list[TraceRecord], int, float, asyncio.Event], Awaitable[tuple[int, float]]]


async def _writer(
    engine: Engine, records: list[TraceRecord], batch: int, deadline: float, stop: asyncio.Event
) -> tuple[int, float]:
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
    while metrics.traces_written.value() < len(records) and time.perf_counter() < deadline:
        await asyncio.sleep(0.002)
    written, seconds = int(metrics.traces_written.value()), time.perf_counter() - started
    stop.set()  # the busy loop ends; what is left is written without it
    await writer.drain()
    assert metrics.traces_dropped.values == {}, metrics.traces_dropped.values
    return written, seconds


async def _core(
    engine: Engine, records: list[TraceRecord], batch: int, deadline: float, stop: asyncio.Event
) -> tuple[int, float]:
    """The replaced writer's work: to_row() dicts, Core executemany, `batch` rows a transaction."""
    repository = TraceRepository(engine)
    queue = deque(records)

    def trip(taken: list[TraceRecord]) -> None:
        for start in range(0, len(taken), batch):
            repository.insert_many([record.to_row() for record in taken[start : start + batch]])

    started = time.perf_counter()
    written = 0
    while queue and time.perf_counter() < deadline:
        taken = [queue.popleft() for _ in range(min(len(queue), batch * 8))]
        await asyncio.to_thread(trip, taken)
        written += len(taken)
    return written, time.perf_counter() - started


async def _measure(run: Run, engine: Engine, rows: int, batch: int, busy: bool, max_seconds: float) -> float:
    """Rows stored per second."""
    records = _records(rows)
    stop = asyncio.Event()
    spinner = asyncio.create_task(_spin(stop)) if busy else None
    try:
        written, seconds = await run(engine, records, batch, time.perf_counter() + max_seconds, stop)
    finally:
        stop.set()
        if spinner is not None:
            await spinner
    return written / seconds


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
        "--max-seconds", type=float, default=30, help="a run stops here even short of --rows (30)"
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("LLMOPS_TEST_POSTGRES_URL")
        or "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    )
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    loops = ["idle", "busy"] if args.loop == "both" else [args.loop]
    paths: list[tuple[str, Run]] = [("writer", _writer)]
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
                            busy = loop_state == "busy"
                            measuring = _measure(
                                run, engine, args.rows, args.batch_size, busy, args.max_seconds
                            )
                            rates.append(runner.run(measuring))
                    rate = statistics.median(rates)
                    runs = " ".join(f"{r:,.0f}" for r in rates)
                    print(f"{backend:10} {path:6} {loop_state:5} {rate:9,.0f}  {runs}")
                    summary.append(f"{backend}_{path}_{loop_state}_rows_per_s={rate:.0f}")
    print("summary " + " ".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

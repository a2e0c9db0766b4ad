#!/usr/bin/env python3
"""Issue 11 target: a 24-hour, 5-minute-bucket stats query grouped by model over 10,000,000 stored traces
answers in under 1 s on Postgres and under 2 s on SQLite, and its counts equal a full scan's.

The benchmark generates the traces (a day of traffic: 4 models, 2 deployments each, 20 keys, prompts with
versions, 8% errors, log-normal latencies) and stores them with the trace writer's own insert path (COPY
on Postgres, multi-row INSERT on SQLite); the rollups are made by the trace writer's RollupWriter from the
same rows, as a running server does. Then it times ``StatsService.query`` (median of --repeats), and
compares its per-model counts with ``SELECT requested_model, count(*) ... GROUP BY`` over the traces.

    .venv/bin/python bench/stats.py --traces 10000000 --backend postgresql   # needs LLMOPS_TEST_POSTGRES_URL
    .venv/bin/python bench/stats.py --traces 10000000 --backend sqlite        # a file under /tmp
Stops by itself; drops its Postgres database and deletes its SQLite file afterwards (--keep keeps them).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

from llmops.ids import new_id
from llmops.monitoring.rollups import RollupWriter
from llmops.monitoring.stats import StatsQuery, StatsService
from llmops.store import open_database
from llmops.store.tables import traces
from llmops.store.trace_rows import row_sink
from llmops.tracing.record import TraceRecord

MODELS = {
    "gpt-4o-mini": ("oa-1", "oa-2"),
    "claude": ("an-1", "an-2"),
    "llama": ("vllm-a", "vllm-b"),
    "smollm2": ("local", "local-2"),
}
KEYS = [f"key_bench{index:02d}" for index in range(20)]
PROMPTS = [(None, None), ("support", 3), ("support", 4), ("search", 1)]


def generate(size: int, end: datetime, seed: int, first: int, count: int) -> list[TraceRecord]:
    """Traces ``first`` to ``first + size`` of ``count`` spread evenly over the day before ``end``."""
    generator = random.Random(seed + first)
    start = end.timestamp() - 86400
    models = list(MODELS)
    rows = []
    for index in range(first, first + size):
        model = generator.choice(models)
        prompt, version = generator.choice(PROMPTS)
        failed = generator.random() < 0.08
        latency = generator.lognormvariate(6, 0.8)
        started = start + 86400 * index / count
        record = TraceRecord(
            id=new_id(),
            started_at=started,
            endpoint="chat.completions",
            requested_model=model,
            stream=False,
            api_key_id=generator.choice(KEYS),
            provider="openai",
            deployment=generator.choice(MODELS[model]),
            status_code=502 if failed else 200,
            error_type="upstream_error" if failed else None,
            prompt_tokens=generator.randint(20, 800),
            completion_tokens=0 if failed else generator.randint(5, 400),
            cost=generator.random() / 1000,
            latency_ms=latency,
            ended_at=started + latency / 1000,
            prompt_name=prompt,
            prompt_version=version,
        )
        rows.append(record)
    return rows


def fill(engine, count: int, end: datetime, seed: int, chunk: int) -> float:
    sink = row_sink(engine, 500)
    simulated = [end.timestamp() - 86400]  # the writer's clock walks through the day with the traces
    rollups = RollupWriter(engine, "bench", clock=lambda: simulated[0])
    began = time.perf_counter()
    done = 0
    while done < count:
        size = min(chunk, count - done)
        rows = [record.values(sink.format_time) for record in generate(size, end, seed, done, count)]
        simulated[0] = end.timestamp() - 86400 * (1 - (done + size) / count)
        with sink.session() as session:
            for start in range(0, len(rows), sink.rows_per_statement or len(rows)):
                session.insert(rows[start : start + (sink.rows_per_statement or len(rows))])
        rollups.add(rows)
        rollups.flush(force=True)
        done += size
        print(f"  stored {done:,} traces ({time.perf_counter() - began:.0f} s)", file=sys.stderr, flush=True)
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--traces", type=int, default=10_000_000)
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    end = datetime.now(UTC).replace(second=0, microsecond=0)
    cleanup = None
    if args.backend == "postgresql":
        admin_url = os.environ.get("LLMOPS_TEST_POSTGRES_URL")
        if not admin_url:
            print("set LLMOPS_TEST_POSTGRES_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
            return 2
        name = f"llmops_bench_stats_{os.getpid()}"
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = admin_url.rsplit("/", 1)[0] + f"/{name}"

        def cleanup() -> None:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    else:
        folder = Path(tempfile.mkdtemp(prefix="llmops-bench-stats-"))
        url = f"sqlite:///{folder / 'stats.db'}"

        def cleanup() -> None:
            for path in folder.iterdir():
                path.unlink()
            folder.rmdir()

    try:
        engine = open_database(url)
        print(f"{args.backend}: generating and storing {args.traces:,} traces over 24 h ...", file=sys.stderr)
        seconds = fill(engine, args.traces, end, args.seed, args.chunk)
        service = StatsService(engine, lambda: {})
        query = StatsQuery(end - timedelta(hours=24), end, "5m", ("model",))
        timings = []
        for _ in range(args.repeats):
            began = time.perf_counter()
            result = service.query(query)
            timings.append(time.perf_counter() - began)
        with engine.connect() as connection:
            began = time.perf_counter()
            scanned = dict(
                connection.execute(
                    select(traces.c.requested_model, func.count())
                    .where(traces.c.started_at >= result.since, traces.c.started_at < result.until)
                    .group_by(traces.c.requested_model)
                ).all()
            )
            scan_seconds = time.perf_counter() - began
        counted = {series.group["model"]: series.total.requests for series in result.series}
        limit = 1.0 if args.backend == "postgresql" else 2.0
        median = statistics.median(timings)
        print(f"backend: {args.backend}   traces stored: {args.traces:,} (in {seconds:.0f} s)")
        print(
            f"stats query 24h / 5m / by model: median {median * 1000:.0f} ms over {args.repeats} runs "
            f"(min {min(timings) * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms); "
            f"{result.rows_read:,} rollup rows read; target < {limit:.0f} s: "
            + ("PASS" if median < limit else "FAIL")
        )
        print(f"full scan GROUP BY model: {scan_seconds * 1000:.0f} ms")
        same = counted == scanned
        print(f"counts equal the full scan's: {'yes' if same else 'NO'}  {counted}")
        return 0 if same and median < limit else 1
    finally:
        if not args.keep:
            engine.dispose()
            cleanup()


if __name__ == "__main__":
    sys.exit(main())

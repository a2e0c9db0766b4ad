"""Evaluation harness overhead: 10,000 items against the `echo` model with three cheap metrics.

Target (issue 8): under 30 s on 2 cores. What is timed is `llmops evals run` without the process start:
the run created, the gateway's in-process services started with the echo model, every item sent through
`Gateway.handle` (routed, traced, its trace written by the batch writer), scored with `exact_match`,
`contains` and `length`, results written in batches, and the summary computed. The dataset is imported
first (not timed). SQLite by default.

    .venv/bin/python bench/eval_harness.py
    .venv/bin/python bench/eval_harness.py --items 2000 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from llmops.evals.execution import execute_run, models_used
from llmops.evals.scorers.registry import ScorerRegistry
from llmops.evals.service import RunRequest
from llmops.evals.targets import Target
from llmops.model_config import ModelConfig
from llmops.services import build_services
from llmops.settings import load_settings

METRICS = ("exact_match", "contains", "length")


async def run(items: int, concurrency: int, folder: Path) -> tuple[float, dict[str, object]]:
    settings = load_settings(
        home=folder,
        database_url=f"sqlite:///{folder / 'bench.db'}",
        models=(ModelConfig(name="echo", provider="echo"),),
    )
    services = build_services(settings, open_allowed=True)
    try:
        rows = ({"input": f"question number {n}", "expected": f"question number {n}"} for n in range(items))
        services.store.datasets.create_version("bench", rows, operation="import")
        started = time.perf_counter()
        request = RunRequest(Target("model", model="echo"), METRICS, dataset="bench", concurrency=concurrency)
        created = services.store.evals.create_run(request, ScorerRegistry(), author="bench")
        await services.start_in_process(models_used(created, services))
        finished = await execute_run(services, created)
        seconds = time.perf_counter() - started
        assert finished.status == "succeeded", finished.error
        return seconds, finished.summary or {}
    finally:
        await services.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        seconds, summary = asyncio.run(run(args.items, args.concurrency, Path(scratch)))
    metrics = summary.get("metrics", {})
    assert isinstance(metrics, dict)
    print(
        f"{args.items:,} items, {len(METRICS)} metrics, concurrency {args.concurrency}: {seconds:.1f} s "
        f"({args.items / seconds:,.0f} items/s); errors {summary.get('errors')}"
    )
    for name, values in metrics.items():
        print(f"  {name}: mean {values['mean']:.3f} over {values['n']} items")
    ok = seconds < 30 and summary.get("errors") == 0
    print(f"eval_harness_result: {'PASS' if ok else 'FAIL'} (target < 30 s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

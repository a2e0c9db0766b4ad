"""Cleaning memory: N generated rows through ``dedup_exact`` + ``filter_outliers``; peak RSS and rows/s.

Rows are generated on the fly (about 200 bytes each as JSON, a share of them exact copies of a recent
row, a few much longer than the rest), so the input itself takes no memory. They go through
``CleaningPipeline`` exactly as ``llmops datasets clean`` runs it: ``dedup_exact`` streams and keeps
one 16-byte digest per distinct row; ``filter_outliers`` needs a scan, so the rows reaching it are
spooled to a temporary JSONL file and read twice. The output is consumed and counted, not kept.
The figures: the process's peak resident set size (``ru_maxrss``), the baseline before the run, the
wall time and the rate, and the per-step counts.

    .venv/bin/python bench/clean_memory.py                 # 1,000,000 rows
    .venv/bin/python bench/clean_memory.py --rows 100000 --workdir /tmp
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from llmops.datasets.cleaning.base import StepContext, StepRegistry
from llmops.datasets.cleaning.pipeline import CleaningPipeline
from llmops.datasets.cleaning.recipe import Recipe
from llmops.datasets.rows import Row

VOCABULARY = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
    "quebec romeo sierra tango uniform victor whiskey xray yankee zulu answer question model data"
).split()
RECIPE = [
    {"dedup_exact": {"fields": ["input", "expected"]}},
    {"filter_outliers": {"fields": ["input"], "unit": "chars", "method": "iqr", "k": 3.0}},
]


def generate_rows(count: int, duplicate_share: float, long_share: float, seed: int) -> Iterator[Row]:
    """``count`` rows; with ``duplicate_share`` odds a row repeats one of the last 1,000 fresh rows,
    with ``long_share`` odds a fresh row is ten times longer than usual (an outlier)."""
    rng = random.Random(seed)
    recent: list[Row] = []
    for index in range(count):
        if recent and rng.random() < duplicate_share:
            yield dict(recent[rng.randrange(len(recent))])
            continue
        words = rng.choices(VOCABULARY, k=250 if rng.random() < long_share else 22)
        row = {
            "input": f"{index} " + " ".join(words),
            "expected": rng.choice(VOCABULARY),
            "metadata": {"i": index},
        }
        if len(recent) >= 1000:
            recent[rng.randrange(1000)] = row
        else:
            recent.append(row)
        yield row


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--duplicates", type=float, default=0.1, help="share of exact duplicate rows")
    parser.add_argument("--long", type=float, default=0.01, help="share of 10x longer rows (outliers)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None, help="where the spool goes (default: $TMPDIR)")
    args = parser.parse_args(argv)

    baseline = peak_rss_mb()
    pipeline = CleaningPipeline(
        Recipe.from_data(RECIPE), StepRegistry(load_plugins=False), StepContext(), workdir=args.workdir
    )
    started = time.perf_counter()
    kept = sum(1 for _ in pipeline.run(generate_rows(args.rows, args.duplicates, args.long, args.seed)))
    elapsed = time.perf_counter() - started

    print(f"rows in           {args.rows:,}")
    print(f"rows out          {kept:,}")
    for report in pipeline.reports:
        counts = f"in {report.rows_in:>9,}  out {report.rows_out:>9,}  removed {report.removed:>8,}"
        print(f"  {report.step:<16}{counts}")
    bounds = pipeline.reports[1].details
    print(f"outlier bounds    {bounds.get('lower')} .. {bounds.get('upper')} chars (iqr)")
    print(f"elapsed           {elapsed:.1f} s")
    print(f"rate              {args.rows / elapsed:,.0f} rows/s")
    print(f"peak RSS          {peak_rss_mb():.0f} MB (before the run: {baseline:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

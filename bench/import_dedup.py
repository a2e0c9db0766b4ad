"""Import and exact de-duplication of 1,000,000 JSONL rows: peak RSS (target under 1 GB) and time.

Generates the file (about 200 bytes a row, 10% exact duplicate rows planted; ``bench/import_memory.py``'s
generator), then runs what a user runs, in this process, against a fresh database:

    llmops datasets import big rows.jsonl
    llmops datasets clean big --step dedup_exact

through the same service functions (``DatasetService.import_files`` and ``operations.clean``), and checks
that the cleaned version has exactly the distinct rows. Prints rows/s of each phase and the process's
peak resident set size (``ru_maxrss``). SQLite by default; ``--database-url`` for Postgres.

    .venv/bin/python bench/import_dedup.py
    .venv/bin/python bench/import_dedup.py --rows 200000 --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from import_memory import generate_jsonl, peak_rss_mib  # noqa: E402
from llmops.datasets import operations  # noqa: E402
from llmops.datasets.cleaning.recipe import Recipe  # noqa: E402
from llmops.datasets.service import DatasetService  # noqa: E402
from llmops.store import open_database  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--duplicate-share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        generated = generate_jsonl(folder / "rows.jsonl", args.rows, args.duplicate_share, args.seed)
        print(
            f"generated {generated.rows:,} rows ({generated.bytes / 2**20:.0f} MiB), "
            f"{generated.duplicates:,} duplicates"
        )
        print(f"peak RSS after generating: {peak_rss_mib():.0f} MiB")
        engine = open_database(args.database_url or f"sqlite:///{folder / 'bench.db'}")
        datasets = DatasetService(engine)
        name = f"bench-{int(time.time())}"
        started = time.perf_counter()
        imported = datasets.import_files(name, [generated.path])
        import_seconds = time.perf_counter() - started
        count = imported.result.version.row_count
        print(
            f"import: {count:,} rows in {import_seconds:.1f} s ({count / import_seconds:,.0f} rows/s); "
            f"peak RSS {peak_rss_mib():.0f} MiB"
        )
        started = time.perf_counter()
        cleaned = operations.clean(datasets, name, Recipe.from_cli(["dedup_exact"]))
        clean_seconds = time.perf_counter() - started
        kept = cleaned.result.version.row_count
        print(
            f"dedup_exact: {kept:,} rows kept, {cleaned.reports[0].removed:,} removed "
            f"in {clean_seconds:.1f} s ({args.rows / clean_seconds:,.0f} rows/s)"
        )
        peak = peak_rss_mib()
        print(f"peak RSS: {peak:.0f} MiB (target < 1024 MiB)")
        engine.dispose()
        correct = kept == generated.distinct
        print(f"kept rows equal the distinct rows generated: {correct}")
        return 0 if correct and peak < 1024 else 1


if __name__ == "__main__":
    sys.exit(main())

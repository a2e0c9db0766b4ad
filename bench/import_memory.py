"""Import memory: read a 1,000,000-row JSONL file through read_rows and report peak RSS and rows/s.

The file is generated first (about 200 bytes a row, a share of exact duplicate lines planted by
copying earlier rows) unless ``--file`` names one that exists. Reading goes through
``llmops.datasets.readers.read_rows`` exactly as an import does, consuming every item; the figures are
the process's peak resident set size (``ru_maxrss``, which includes generating the file, itself
streaming) and the read rate. ``generate_jsonl`` is importable for the full import + de-duplication bench.

    .venv/bin/python bench/import_memory.py
    .venv/bin/python bench/import_memory.py --rows 200000 --keep /tmp/rows.jsonl
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from llmops.datasets.readers import read_rows

WORDS = (
    "data model prompt answer token question user system training vector cache latency request "
    "server metric cluster budget label review record sample value quality context output input "
    "signal pattern batch query filter result report update version change stream window format"
).split()
_RECENT = 10_000  # duplicates copy one of this many latest fresh rows: the generator holds no more


@dataclass(frozen=True)
class GeneratedFile:
    """What :func:`generate_jsonl` wrote: ``distinct`` = ``rows`` - ``duplicates`` exactly."""

    path: Path
    rows: int
    duplicates: int
    bytes: int

    @property
    def distinct(self) -> int:
        return self.rows - self.duplicates


def generate_jsonl(path: Path, rows: int, duplicate_share: float, seed: int) -> GeneratedFile:
    """Write ``rows`` JSONL rows of about 200 bytes; each is, with ``duplicate_share`` odds, an exact
    copy of an earlier row. Fresh rows carry a unique id, so they never repeat by chance."""
    rng = random.Random(seed)
    recent: list[bytes] = []
    duplicates = 0
    size = 0
    with path.open("wb") as stream:
        for index in range(rows):
            if recent and rng.random() < duplicate_share:
                line = recent[rng.randrange(len(recent))]
                duplicates += 1
            else:
                line = _fresh_row(rng, index)
                if len(recent) < _RECENT:
                    recent.append(line)
                else:
                    recent[index % _RECENT] = line
            stream.write(line)
            size += len(line)
    return GeneratedFile(path, rows, duplicates, size)


def _fresh_row(rng: random.Random, index: int) -> bytes:
    row = {
        "input": " ".join(rng.choices(WORDS, k=14)) + "?",
        "expected": " ".join(rng.choices(WORDS, k=7)) + ".",
        "metadata": {"id": index, "source": rng.choice(("web", "api", "batch"))},
    }
    return orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)


@dataclass(frozen=True)
class ReadFigures:
    rows: int
    errors: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def read_all(path: Path) -> ReadFigures:
    """Consume every item of ``read_rows`` over ``path``, counting rows and errors."""
    rows = errors = 0
    started = time.perf_counter()
    for item in read_rows([path]):
        if item.row is None:
            errors += 1
        else:
            rows += 1
    return ReadFigures(rows, errors, time.perf_counter() - started)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--duplicate-share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--file", type=Path, help="read this JSONL file instead of generating one")
    parser.add_argument("--keep", type=Path, help="generate into this path and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        path = args.file
        if path is None:
            path = args.keep or Path(scratch) / "rows.jsonl"
            started = time.perf_counter()
            made = generate_jsonl(path, args.rows, args.duplicate_share, args.seed)
            print(
                f"generated {made.rows:,} rows ({made.duplicates:,} exact duplicates, "
                f"{made.distinct:,} distinct), "
                f"{made.bytes / 2**20:.0f} MiB, {made.bytes / made.rows:.0f} bytes/row "
                f"in {time.perf_counter() - started:.1f} s"
            )
        before = peak_rss_mib()
        figures = read_all(path)
    print(f"read {figures.rows:,} rows ({figures.errors} errors) in {figures.seconds:.1f} s")
    print(f"rows/s: {figures.rows_per_second:,.0f}")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB (before reading: {before:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

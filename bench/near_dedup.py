"""Near-duplicate removal at scale: the ``dedup_near`` step through the cleaning pipeline.

Generates ``--rows`` rows of ``--words`` words each (fixed seed) from a synthetic vocabulary of
``--vocabulary`` words drawn with Zipf-like frequencies (s=1, like natural text: a few very common
words, a long tail), so that unrelated rows share common words and short n-grams but never come close
to a duplicate. Among them are ``--pairs`` planted pairs: a copy of an original row with exactly
``--changes`` words replaced, at distinct uniformly random positions, by a different vocabulary word.
Copies are shuffled among the originals (a copy may come before its original). The rows are written
to a JSONL file first; the timed part reads that file and runs the recipe
``[{dedup_near: {fields: [input], threshold: T, shingle: S, num_perm: P}}]`` through
``CleaningPipeline`` (with its spooling to disk, as ``llmops datasets clean`` runs it).

Recall: share of planted pairs of which exactly one row was removed. Precision: share of removed rows
that belong to a planted pair whose other row was kept. Peak RSS is the process's maximum resident
set (``ru_maxrss``); the RSS before the run is printed beside it. Exit status 1 when a target is
missed (60 s, recall 95%, precision 95%).

    .venv/bin/python bench/near_dedup.py                                  # 3 words changed, shingle 3, 0.6
    .venv/bin/python bench/near_dedup.py --changes 1 --shingle 5 --threshold 0.8   # the issue's recipe
"""

from __future__ import annotations

import argparse
import itertools
import random
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import orjson

from llmops.datasets.cleaning.base import StepContext, StepRegistry
from llmops.datasets.cleaning.pipeline import CleaningPipeline
from llmops.datasets.cleaning.recipe import Recipe
from llmops.datasets.rows import Row


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000, help="rows in total, planted copies included")
    parser.add_argument("--words", type=int, default=50, help="words per row")
    parser.add_argument("--pairs", type=int, default=5_000, help="planted near-duplicate pairs")
    parser.add_argument("--changes", type=int, default=3, help="words replaced in each planted copy")
    parser.add_argument("--vocabulary", type=int, default=200_000, help="synthetic vocabulary size")
    parser.add_argument("--threshold", type=float, default=0.6)
    parser.add_argument("--shingle", type=int, default=3)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args()


def vocabulary(size: int, rng: random.Random) -> tuple[list[str], list[float]]:
    """Pronounceable distinct words and cumulative Zipf weights (rank r has weight 1/r)."""
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"]
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choices(syllables, k=rng.randint(2, 4))))
    ordered = sorted(words)
    rng.shuffle(ordered)
    return ordered, list(itertools.accumulate(1.0 / rank for rank in range(1, size + 1)))


def generate(args: argparse.Namespace, path: Path) -> set[frozenset[int]]:
    """Write the rows to ``path``; return the planted pairs as sets of two row ids."""
    rng = random.Random(args.seed)
    words, weights = vocabulary(args.vocabulary, rng)
    originals = args.rows - args.pairs
    texts = [rng.choices(words, cum_weights=weights, k=args.words) for _ in range(originals)]
    planted: list[tuple[int, list[str]]] = []
    for base in rng.sample(range(originals), args.pairs):
        copy = list(texts[base])
        for position in rng.sample(range(args.words), args.changes):
            while (replacement := rng.choice(words)) == copy[position]:
                pass
            copy[position] = replacement
        planted.append((base, copy))
    order = list(range(args.rows))
    rng.shuffle(order)  # order[k] = the row id written at line k
    truth = {frozenset((base, originals + number)) for number, (base, _) in enumerate(planted)}
    with path.open("wb") as out:
        for identity in order:
            tokens = texts[identity] if identity < originals else planted[identity - originals][1]
            out.write(orjson.dumps({"id": identity, "input": " ".join(tokens)}) + b"\n")
    return truth


def read(path: Path) -> Iterator[Row]:
    with path.open("rb") as source:
        for line in source:
            yield orjson.loads(line)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.jsonl"
        started = time.perf_counter()
        truth = generate(args, path)
        print(f"generated {args.rows:,} rows ({args.pairs:,} planted pairs, {args.changes} words changed "
              f"of {args.words}) in {time.perf_counter() - started:.1f} s")  # fmt: skip
        recipe = Recipe.parse(
            [
                {
                    "dedup_near": {
                        "fields": ["input"],
                        "threshold": args.threshold,
                        "shingle": args.shingle,
                        "num_perm": args.num_perm,
                    }
                }
            ]
        )
        pipeline = CleaningPipeline(recipe, StepRegistry(), StepContext(), workdir=Path(tmp))
        before = rss_mb()
        started = time.perf_counter()
        kept = {row["id"] for row in pipeline.run(read(path), total=args.rows)}
        elapsed = time.perf_counter() - started
        peak = rss_mb()
    report = pipeline.reports[0]
    removed = set(range(args.rows)) - kept
    found = sum(1 for pair in truth if len(pair & removed) == 1)
    recall = found / len(truth)
    precision = found / len(removed) if removed else 1.0  # each found pair accounts for one removed row
    details = report.details
    print(f"recipe: {recipe.to_dict()}")
    print(f"bands x rows: {details['bands']}, candidates {details['candidates']:,}", end="")
    print(f", accepted {details['pairs']:,}")
    print(f"elapsed {elapsed:.1f} s, peak RSS {peak:.0f} MB (before the run {before:.0f} MB)")
    print(f"removed {len(removed):,} rows in {details['cluster_count']:,} clusters")
    print(f"recall {recall:.2%} ({found:,} of {len(truth):,} planted pairs), precision {precision:.2%}")
    ok = elapsed < 60 and recall >= 0.95 and precision >= 0.95
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

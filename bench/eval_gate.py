"""The CI gate on synthetic evaluation runs: planted regressions, identical runs, null comparisons, power.

Scores are shaped like ROUGE-L over a few hundred questions: each item has a difficulty shared by every
run (a Beta(2, 3) base: most answers overlap the reference by 0.2-0.6), about 6% of items are answered
verbatim (1.0) by a good target, and scores are clipped to [0, 1]. A *deterministic* target gives the
same answer each time (its per-item noise is fixed by the target's seed); a *noisy* target (sampling at a
temperature) draws fresh noise on every run. Everything goes through ``llmops.evals.gate.gate`` exactly as
``llmops evals gate`` calls it, with the default resamples and sign flips, and prints:

1. planted regression: the candidate is the baseline's deterministic target, but on 15% of the items
   (30 of 200) it answers worse (its score cut to a random 0-50% of the baseline's): flagged in each of
   ``--comparisons`` seeded comparisons?
2. identical runs: two runs of one deterministic target: never flagged;
3. false positives: ``--comparisons`` null comparisons, two runs of a noisy target of the same quality,
   at ``--max-drop`` (0.02, as in the docs' CI snippet) and at max-drop 0, where the null sits exactly on
   the boundary of the test and the rate should be alpha; the target is at most 7% (5% + noise). At
   max-drop 0 a rate of exactly 5% exceeds 7 of 100 about 13% of the time by chance (binomial), so it
   is also measured over ``--calibration-comparisons`` (1,000) and the check applies to that;
4. power: the share of comparisons flagged for planted regressions on 5-20% of the items and for
   uniform drops of 0.01-0.05, both with a noisy target, at ``--max-drop`` and at 0;
5. what pairing buys: the spread of per-item differences and how much wider an unpaired interval is.

Exit status 1 when a target is missed. Pure Python, one core: about 2 minutes with the defaults.

    .venv/bin/python bench/eval_gate.py
    .venv/bin/python bench/eval_gate.py --comparisons 100 --power-comparisons 100 --items 200
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from llmops.evals.compare import MetricScores, RunScores, Verdict, compare_runs
from llmops.evals.gate import gate
from llmops.stats import bootstrap_mean_difference, paired_bootstrap

Scores = dict[int, float]


@dataclass(frozen=True)
class World:
    """A dataset: per-item difficulty and which items a good answer quotes verbatim."""

    base: tuple[float, ...]
    verbatim: frozenset[int]

    @classmethod
    def make(cls, items: int, seed: int) -> World:
        rng = random.Random(f"world-{seed}")
        base = tuple(rng.betavariate(2, 3) for _ in range(items))
        return cls(base, frozenset(i for i in range(items) if rng.random() < 0.06))

    def run(self, target_seed: int | str, quality: float = 0.0, noise: float = 0.08) -> Scores:
        """One run of a target: same ``target_seed``, same answers (a deterministic target)."""
        rng = random.Random(f"target-{target_seed}")
        scores = {}
        for i, base in enumerate(self.base):
            value = 1.0 if i in self.verbatim else base + rng.gauss(0.0, noise)
            scores[i] = min(1.0, max(0.0, value + quality))
        return scores


def regress(scores: Scores, share: float, seed: int | str) -> Scores:
    """The same answers, except ``share`` of the items answered worse (score cut to 0-50% of it)."""
    rng = random.Random(f"regress-{seed}")
    worse = set(rng.sample(sorted(scores), round(share * len(scores))))
    return {i: value * rng.uniform(0.0, 0.5) if i in worse else value for i, value in scores.items()}


def _runs(baseline: Scores, candidate: Scores) -> tuple[RunScores, RunScores]:
    def run(run_id: str, scores: Scores) -> RunScores:
        return RunScores(run_id, None, "bench@1", {"rouge_l": MetricScores("rouge_l", dict(scores))})

    return run("baseline", baseline), run("candidate", candidate)


def flagged(baseline: Scores, candidate: Scores, max_drop: float, alpha: float) -> bool:
    base, cand = _runs(baseline, candidate)
    return gate(base, cand, [("rouge_l", max_drop)], alpha).exit_code == 1


Pair = Callable[[World, int], tuple[Scores, Scores]]


def rate(pair: Pair, comparisons: int, args: argparse.Namespace, max_drop: float) -> tuple[int, float]:
    """How many of ``comparisons`` seeded comparisons fail the gate, and the seconds per comparison."""
    started = time.perf_counter()
    hits = 0
    for seed in range(args.seed, args.seed + comparisons):
        world = World.make(args.items, seed)
        hits += flagged(*pair(world, seed), max_drop, args.alpha)
    return hits, (time.perf_counter() - started) / comparisons


def planted(share: float, noisy: bool) -> Pair:
    def pair(world: World, seed: int) -> tuple[Scores, Scores]:
        baseline = world.run(f"{seed}-a")
        answers = world.run(f"{seed}-b") if noisy else baseline
        return baseline, regress(answers, share, seed)

    return pair


def shifted(drop: float) -> Pair:
    def pair(world: World, seed: int) -> tuple[Scores, Scores]:
        return world.run(f"{seed}-a"), world.run(f"{seed}-b", quality=-drop)

    return pair


def identical(world: World, seed: int) -> tuple[Scores, Scores]:
    return world.run(f"{seed}-a"), world.run(f"{seed}-a")


def _line(label: str, hits: int, comparisons: int, seconds: float | None = None) -> str:
    timing = "" if seconds is None else f"   ({seconds:.2f} s each)"
    return f"  {label:<58} {hits:>4} / {comparisons:<4} = {100 * hits / comparisons:5.1f}%{timing}"


def _example(args: argparse.Namespace) -> None:
    world = World.make(args.items, args.seed)
    baseline = world.run("example-a")
    base, cand = _runs(baseline, regress(baseline, 0.15, args.seed))
    result = gate(base, cand, [("rouge_l", args.max_drop)], args.alpha)
    print(f"example (seed {args.seed}): exit {result.exit_code}")
    print("  " + result.messages[0])
    verdict = compare_runs(base, [cand]).comparisons[0].metrics[0].verdict
    print(f"  compare verdict: {verdict.value}")


def _null_compare_rate(args: argparse.Namespace) -> int:
    """Two-sided `compare` verdicts other than 'no significant difference' over the null comparisons."""
    hits = 0
    for seed in range(args.seed, args.seed + args.comparisons):
        base, cand = _runs(*shifted(0.0)(World.make(args.items, seed), seed))
        found = compare_runs(base, [cand], resamples=200).comparisons[0].metrics[0]
        hits += found.verdict is not Verdict.NO_DIFFERENCE
    return hits


def _pairing(args: argparse.Namespace, comparisons: int = 20) -> None:
    """What pairing buys on this data: the spread of per-item differences, and how much wider the
    unpaired interval of the difference in means is than the paired one."""
    spreads, ratios = [], []
    for seed in range(args.seed, args.seed + comparisons):
        baseline, candidate = shifted(0.0)(World.make(args.items, seed), seed)
        a, b = [baseline[i] for i in sorted(baseline)], [candidate[i] for i in sorted(baseline)]
        spreads.append(statistics.stdev(y - x for x, y in zip(a, b, strict=True)))
        paired = paired_bootstrap(a, b, seed=seed).interval
        unpaired = bootstrap_mean_difference(a, b, seed=seed).interval
        ratios.append((unpaired.high - unpaired.low) / (paired.high - paired.low))
    ratio = statistics.median(ratios)
    needed = round(args.items * ratio**2)
    print(
        f"pairing ({comparisons} null pairs of a noisy target): sd of per-item differences "
        f"{statistics.median(spreads):.3f} (median); unpaired 95% interval {ratio:.1f}x as wide as "
        f"the paired one, so an unpaired test needs ~{ratio**2:.0f}x the items ({needed:,})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--comparisons", type=int, default=100, help="seeded comparisons per target")
    parser.add_argument(
        "--power-comparisons", type=int, default=100, help="seeded comparisons per power point"
    )
    parser.add_argument(
        "--calibration-comparisons",
        type=int,
        default=1000,
        help="null comparisons at max drop 0, where the rate should be alpha (100 resolve it to +-4 points)",
    )
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--max-drop", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    args = parser.parse_args(argv)
    n, power_n = args.comparisons, args.power_comparisons
    print(f"gate: {args.items} items, alpha {args.alpha}, max drop {args.max_drop}, seeds {args.seed}..")
    _example(args)
    _pairing(args)

    print("targets")
    checks: list[tuple[str, bool]] = []
    hits, each = rate(planted(0.15, noisy=False), n, args, args.max_drop)
    print(_line("planted regression, 15% of items, deterministic target", hits, n, each))
    checks.append(("planted regression flagged in every comparison", hits == n))
    hits, each = rate(identical, n, args, 0.0)
    print(_line("identical deterministic runs (max drop 0)", hits, n, each))
    checks.append(("identical runs never flagged", hits == 0))
    hits, each = rate(shifted(0.0), n, args, args.max_drop)
    print(_line(f"null: two runs of a noisy target, max drop {args.max_drop}", hits, n, each))
    checks.append((f"false-positive rate <= 7% at max drop {args.max_drop}", hits <= 0.07 * n))
    hits, each = rate(shifted(0.0), n, args, 0.0)
    print(_line("null: the same at max drop 0 (on the boundary)", hits, n, each))
    many = args.calibration_comparisons
    if many:
        hits, each = rate(shifted(0.0), many, args, 0.0)
        print(_line("  the same, more seeds (the first ones included)", hits, many, each))
        checks.append(
            (f"false-positive rate <= 7% at max drop 0 over {many} comparisons", hits <= 0.07 * many)
        )
    hits = _null_compare_rate(args)
    print(_line("null: `compare` says better or worse (two-sided)", hits, n))

    print(f"power (noisy target, max drop {args.max_drop} and 0)")
    for label, pair in [
        *(
            (f"planted regression on {share:.0%} of items", planted(share, noisy=True))
            for share in (0.05, 0.10, 0.15, 0.20)
        ),
        *((f"uniform drop of {drop}", shifted(drop)) for drop in (0.01, 0.02, 0.03, 0.04, 0.05)),
    ]:
        for max_drop in (args.max_drop, 0.0):
            hits, each = rate(pair, power_n, args, max_drop)
            print(_line(f"{label}, max drop {max_drop}", hits, power_n, each))

    for name, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    passed = all(ok for _, ok in checks)
    print(f"eval_gate_result {'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

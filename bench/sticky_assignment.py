"""Sticky weighted assignment: 10,000 simulated users asking several times, per experiment.

Experiments are created through the real service (a temporary SQLite database), and every request
is assigned by ``llmops.prompts.experiments.assign`` with the experiment's stored id and variants,
exactly as the gateway's request path calls it (``RunningExperiment.pick``). For each experiment it
prints each variant's share of users and of requests against its planned share (weight / total),
and checks that every user always got the same variant and that every share is within
``--tolerance`` points of its weight. The same is repeated over ``--experiments`` experiments (each
id shuffles users anew) to report the largest deviation seen. Exit status 1 if a check fails.

    .venv/bin/python bench/sticky_assignment.py
    .venv/bin/python bench/sticky_assignment.py --users 10000 --requests-per-user 5 --experiments 20
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from llmops.prompts.experiments import Experiment, assign
from llmops.prompts.spec import PromptContent
from llmops.services import Store, open_store
from llmops.settings import load_settings

# (title, variants as name -> weight): uneven weights, 2 and 3 variants
LAYOUTS = [
    ("2 variants, 1:3", {"a": 1.0, "b": 3.0}),
    ("2 variants, 90/10", {"control": 9.0, "treatment": 1.0}),
    ("3 variants, 1:2:5", {"a": 1.0, "b": 2.0, "c": 5.0}),
]


@dataclass
class Outcome:
    switched: int  # users who saw more than one variant
    by_user: Counter[str]  # users per variant (of those who kept one)
    by_request: Counter[str]
    requests: int
    us_per_call: float


def _store(folder: Path, versions: int) -> Store:
    store = open_store(load_settings(database_url=f"sqlite:///{folder / 'bench.db'}", home=folder))
    for number in range(versions):
        store.prompts.create_version("greeting", PromptContent(kind="text", template=f"Hello {number}!"))
    return store


def _create(store: Store, name: str, weights: dict[str, float]) -> Experiment:
    variants = [(variant, number + 1, weight) for number, (variant, weight) in enumerate(weights.items())]
    return store.experiments.create(name, "greeting", variants, label=name)


def _simulate(experiment: Experiment, users: int, requests_per_user: int, rng: random.Random) -> Outcome:
    """Users ask in a shuffled order, each ``requests_per_user`` times; returns counts and timing."""
    subjects = [f"user-{number:05d}" for number in range(users)]
    asks = [subject for subject in subjects for _ in range(requests_per_user)]
    rng.shuffle(asks)
    seen: dict[str, set[str]] = {}
    by_request: Counter[str] = Counter()
    started = time.perf_counter()
    for subject in asks:
        variant = assign(experiment.id, subject, experiment.variants, rng)
        seen.setdefault(subject, set()).add(variant.name)
        by_request[variant.name] += 1
    elapsed = time.perf_counter() - started
    return Outcome(
        switched=sum(1 for names in seen.values() if len(names) > 1),
        by_user=Counter(next(iter(names)) for names in seen.values() if len(names) == 1),
        by_request=by_request,
        requests=len(asks),
        us_per_call=elapsed / len(asks) * 1e6,
    )


def _report(experiment: Experiment, outcome: Outcome, users: int, tolerance: float) -> bool:
    total_weight = sum(variant.weight for variant in experiment.variants)
    by_user, by_request, requests = outcome.by_user, outcome.by_request, outcome.requests
    ok = outcome.switched == 0
    header = ("variant", "weight", "planned", "users", "share", "diff", "requests", "share")
    print("  {:<10} {:>6} {:>8} {:>7} {:>7} {:>7} {:>9} {:>7}".format(*header))
    for variant in experiment.variants:
        planned = variant.weight / total_weight
        user_share = by_user[variant.name] / users
        request_share = by_request[variant.name] / requests
        deviation = (user_share - planned) * 100
        ok = ok and abs(deviation) <= tolerance and abs(request_share - planned) * 100 <= tolerance
        print(
            f"  {variant.name:<10} {variant.weight:>6g} {planned:>8.2%} {by_user[variant.name]:>7,} "
            f"{user_share:>7.2%} {deviation:>+6.2f}p {by_request[variant.name]:>9,} {request_share:>7.2%}"
        )
    print(
        f"  users who saw more than one variant: {outcome.switched} of {users:,}; "
        f"assign(): {outcome.us_per_call:.2f} us per call"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--requests-per-user", type=int, default=5)
    parser.add_argument(
        "--experiments", type=int, default=20, help="experiment ids per layout for the worst case"
    )
    parser.add_argument("--tolerance", type=float, default=2.0, help="allowed deviation in percentage points")
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    all_ok = True
    with tempfile.TemporaryDirectory() as folder:
        store = _store(Path(folder), versions=3)
        try:
            for index, (title, weights) in enumerate(LAYOUTS):
                experiment = _create(store, f"layout-{index}", weights)
                print(f"{title}: {experiment.id}, {args.users:,} users x {args.requests_per_user} requests")
                outcome = _simulate(experiment, args.users, args.requests_per_user, rng)
                all_ok = _report(experiment, outcome, args.users, args.tolerance) and all_ok
                worst, switched = 0.0, 0
                for number in range(args.experiments):
                    other = _create(store, f"layout-{index}-{number}", weights)
                    more = _simulate(other, args.users, 1, rng)
                    switched += more.switched
                    total = sum(weights.values())
                    for name, weight in weights.items():
                        worst = max(worst, abs(more.by_user[name] / args.users - weight / total) * 100)
                all_ok = all_ok and worst <= args.tolerance and switched == 0
                print(
                    f"  over {args.experiments} more experiment ids: largest deviation {worst:.2f} points\n"
                )
        finally:
            store.close()
    print("PASS: every user kept one variant; every share within " if all_ok else "FAIL: ", end="")
    print(f"{args.tolerance:g} points of its weight" if all_ok else "see above")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Comparing evaluation runs: per-run aggregates with intervals, and paired tests of a baseline against
each candidate.

Pure functions over plain data (:class:`RunScores`): the caller loads runs from the store; nothing
here reads a database or calls a model.

Why paired: every run of a comparison scored the same dataset version, so each item yields one score
per run. Items differ far more from each other (an easy question, a hard one) than two versions of a
prompt differ on one item, and an unpaired test counts all of that spread as noise. Working on the
per-item differences removes it, which is why a paired test detects with 200 items what an unpaired
one would need thousands for. The methods, all seeded so that a report can be reproduced:

- each mean: a percentile bootstrap interval (:func:`llmops.stats.bootstrap_mean_interval`), which
  stays inside the possible scores where a t interval of lumpy 0/1 scores may not;
- the difference: the mean of the per-item differences on the items both runs scored, with a paired
  percentile bootstrap interval (:func:`llmops.stats.paired_bootstrap`, items resampled with their pair);
- its p-value: the paired permutation test (:func:`llmops.stats.sign_flip_test`), two-sided: if the
  two runs were interchangeable, each item's difference would be as likely positive as negative.
  It assumes no distribution and is exact for symmetric differences, so its false-positive rate is
  alpha, which the CI gate depends on;
- the verdict: ``better`` or ``worse`` when p < alpha, in the direction of the difference, else
  ``no significant difference`` (which is not evidence that the runs are equal: see the docs).

Differences are sign-adjusted: positive always means the candidate is better, also for metrics where
lower is better (latency, cost, length), whose raw difference is negated.

Errors: :class:`~llmops.errors.UserError` for comparisons that cannot be made (runs on different
dataset versions, a metric missing from a run, a metric that is higher-is-better in one run and not
in another).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from llmops.errors import UserError
from llmops.stats import Interval, bootstrap_mean_interval, paired_bootstrap, sign_flip_test, wilson_interval

__all__ = [
    "ChangedItem",
    "Comparison",
    "MetricAggregate",
    "MetricComparison",
    "MetricScores",
    "RunComparison",
    "RunScores",
    "Verdict",
    "aggregate_metric",
    "aggregate_run",
    "check_same_dataset",
    "compare_runs",
    "pair_metric",
    "paired_values",
]

# Bootstrap: 2,000 resamples put a 95% bound within ~6% of a standard error of where infinitely many
# would; they take ~0.02 s for 200 items, ~1 s for 10,000 (pure Python).
DEFAULT_RESAMPLES = 2000
# Sign flips: p-values resolved to ~0.002 near 0.05; ~0.01 s for 200 items, ~1 s for 10,000.
DEFAULT_PERMUTATIONS = 10_000


class Verdict(StrEnum):
    BETTER = "better"
    WORSE = "worse"
    NO_DIFFERENCE = "no significant difference"
    NO_ITEMS = "no paired items"


# --- input ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricScores:
    """One metric's scores in one run: item position -> value (None: the item had no score)."""

    name: str
    values: Mapping[int, float | None]
    higher_is_better: bool = True
    threshold: float | None = None  # an item passes at >= threshold (<= when lower is better)

    def scored(self) -> list[float]:
        return [float(value) for value in self.values.values() if value is not None]


@dataclass(frozen=True)
class RunScores:
    """What a comparison needs of a run: its identity, dataset version, scores and outputs."""

    id: str
    name: str | None
    dataset_version: str  # the version ref ("qa@3" or its id): runs compared must share it
    metrics: Mapping[str, MetricScores]
    outputs: Mapping[int, str | None] = field(default_factory=dict)  # position -> output text
    inputs: Mapping[int, str | None] = field(default_factory=dict)  # position -> input text, if known

    @property
    def label(self) -> str:
        """How reports name the run: its name when it has one, else its id."""
        return self.name or self.id


# --- output -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricAggregate:
    """One metric of one run. ``mean_ci`` is a bootstrap interval; ``pass_ci`` the Wilson interval of
    the pass rate. Statistics are None when no item was scored."""

    metric: str
    higher_is_better: bool
    n: int
    missing: int  # items with no score (None)
    mean: float | None
    mean_ci: Interval | None
    median: float | None
    stdev: float | None
    min: float | None
    max: float | None
    threshold: float | None
    pass_rate: float | None
    pass_ci: Interval | None


@dataclass(frozen=True)
class ChangedItem:
    """An item whose score moved: scores in both runs, the sign-adjusted difference, both outputs."""

    position: int
    baseline: float
    candidate: float
    difference: float  # positive: the candidate did better on this item
    baseline_output: str | None
    candidate_output: str | None
    input: str | None


@dataclass(frozen=True)
class MetricComparison:
    """Baseline against one candidate on one metric, over the items both scored.

    ``difference`` is mean(candidate) - mean(baseline) on those items, negated when lower is better,
    so positive means better; ``differences`` holds the per-item values (same sign convention) in
    position order, for plots. Means and intervals are None when no item was scored by both.
    """

    metric: str
    higher_is_better: bool
    n_paired: int
    only_baseline: int  # items scored by the baseline alone
    only_candidate: int
    baseline_mean: float | None
    baseline_ci: Interval | None
    candidate_mean: float | None
    candidate_ci: Interval | None
    difference: float | None
    difference_ci: Interval | None
    p_value: float | None
    verdict: Verdict
    differences: tuple[float, ...]
    top_changed: tuple[ChangedItem, ...]


@dataclass(frozen=True)
class RunComparison:
    baseline: str  # run ids
    candidate: str
    metrics: tuple[MetricComparison, ...]


@dataclass(frozen=True)
class Comparison:
    """A whole comparison: the runs, their aggregates, and the baseline against each candidate."""

    dataset_version: str
    alpha: float
    confidence: float  # of every interval: 1 - alpha
    resamples: int
    permutations: int
    seed: int
    runs: tuple[RunScores, ...]  # the baseline first
    aggregates: Mapping[str, tuple[MetricAggregate, ...]]  # run id -> per metric
    comparisons: tuple[RunComparison, ...]
    metrics: tuple[str, ...]

    @property
    def baseline(self) -> RunScores:
        return self.runs[0]

    def run(self, run_id: str) -> RunScores:
        return next(run for run in self.runs if run.id == run_id)


# --- aggregates -------------------------------------------------------------------------------------


def aggregate_metric(
    scores: MetricScores, *, confidence: float = 0.95, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> MetricAggregate:
    """n, mean (with a bootstrap interval), median, stdev, min, max and the pass rate (with its Wilson
    interval) of one metric of one run."""
    values = scores.scored()
    missing = len(scores.values) - len(values)
    pass_rate = pass_ci = None
    if scores.threshold is not None and values:
        passed = sum(1 for value in values if _passes(value, scores))
        pass_rate, pass_ci = passed / len(values), wilson_interval(passed, len(values), confidence)
    if not values:
        return MetricAggregate(
            scores.name, scores.higher_is_better, 0, missing, None, None, None, None, None, None,
            scores.threshold, None, None,
        )  # fmt: skip
    return MetricAggregate(
        metric=scores.name,
        higher_is_better=scores.higher_is_better,
        n=len(values),
        missing=missing,
        mean=statistics.fmean(values),
        mean_ci=bootstrap_mean_interval(values, resamples=resamples, confidence=confidence, seed=seed),
        median=statistics.median(values),
        stdev=statistics.stdev(values) if len(values) > 1 else 0.0,
        min=min(values),
        max=max(values),
        threshold=scores.threshold,
        pass_rate=pass_rate,
        pass_ci=pass_ci,
    )


def _passes(value: float, scores: MetricScores) -> bool:
    assert scores.threshold is not None
    return value >= scores.threshold if scores.higher_is_better else value <= scores.threshold


def aggregate_run(
    run: RunScores,
    metrics: Sequence[str] | None = None,
    *,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> tuple[MetricAggregate, ...]:
    """:func:`aggregate_metric` for each of ``metrics`` (default: all the run's metrics, by name)."""
    names = sorted(run.metrics) if metrics is None else metrics
    return tuple(
        aggregate_metric(_metric(run, name), confidence=confidence, resamples=resamples, seed=seed)
        for name in names
    )


# --- pairing ----------------------------------------------------------------------------------------


def check_same_dataset(runs: Sequence[RunScores]) -> None:
    """Runs are only comparable item by item on the same dataset version."""
    versions = {run.dataset_version for run in runs}
    if len(versions) > 1:
        listed = ", ".join(f"{run.label} on {run.dataset_version}" for run in runs)
        raise UserError(f"runs to compare must share one dataset version: {listed}", param="dataset")


def _metric(run: RunScores, name: str) -> MetricScores:
    scores = run.metrics.get(name)
    if scores is None:
        known = ", ".join(sorted(run.metrics)) or "none"
        raise UserError(f"run {run.label} has no metric {name!r} (its metrics: {known})", param="metric")
    return scores


def paired_values(
    baseline: MetricScores, candidate: MetricScores
) -> tuple[list[int], list[float], list[float]]:
    """The positions both runs scored, in order, with the baseline's and the candidate's values."""
    positions: list[int] = []
    base: list[float] = []
    cand: list[float] = []
    for position in sorted(baseline.values):
        x, y = baseline.values[position], candidate.values.get(position)
        if x is not None and y is not None:
            positions.append(position)
            base.append(float(x))
            cand.append(float(y))
    return positions, base, cand


def pair_metric(baseline: RunScores, candidate: RunScores, name: str) -> tuple[MetricScores, MetricScores]:
    """The metric in both runs, which must agree on its direction."""
    base, cand = _metric(baseline, name), _metric(candidate, name)
    if base.higher_is_better != cand.higher_is_better:
        raise UserError(
            f"metric {name!r} is higher-is-better in one run and lower-is-better in the other "
            f"({baseline.label}, {candidate.label}): the runs do not measure the same thing",
            param="metric",
        )
    return base, cand


# --- comparisons ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Settings:
    alpha: float
    resamples: int
    permutations: int
    seed: int
    top: int

    @property
    def confidence(self) -> float:
        return 1.0 - self.alpha


def compare_runs(
    baseline: RunScores,
    candidates: Sequence[RunScores],
    metrics: Sequence[str] | None = None,
    *,
    alpha: float = 0.05,
    resamples: int = DEFAULT_RESAMPLES,
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
    top: int = 5,
) -> Comparison:
    """Compare ``baseline`` with each of ``candidates`` on ``metrics`` (default: every metric all the
    runs have), at level ``alpha``; intervals are at confidence 1 - alpha. ``top`` items that
    changed most are kept per metric."""
    if not candidates:
        raise UserError("compare needs a baseline and at least one other run")
    if not 0.0 < alpha < 0.5:
        raise UserError(f"alpha must be between 0 and 0.5, got {alpha}", param="alpha")
    if resamples < 100 or permutations < 100:
        raise UserError("use at least 100 resamples and permutations", param="resamples")
    runs = (baseline, *candidates)
    check_same_dataset(runs)
    names = _metric_names(runs, metrics)
    settings = _Settings(alpha, resamples, permutations, seed, max(0, top))
    aggregates = {
        run.id: aggregate_run(run, names, confidence=settings.confidence, resamples=resamples, seed=seed)
        for run in runs
    }
    comparisons = tuple(
        RunComparison(
            baseline.id,
            candidate.id,
            tuple(_compare_metric(baseline, candidate, name, settings, aggregates) for name in names),
        )
        for candidate in candidates
    )
    return Comparison(
        dataset_version=baseline.dataset_version,
        alpha=alpha,
        confidence=settings.confidence,
        resamples=resamples,
        permutations=permutations,
        seed=seed,
        runs=runs,
        aggregates=aggregates,
        comparisons=comparisons,
        metrics=tuple(names),
    )


def _metric_names(runs: Sequence[RunScores], metrics: Sequence[str] | None) -> list[str]:
    if metrics:
        for run in runs:
            for name in metrics:
                _metric(run, name)
        return list(dict.fromkeys(metrics))
    shared = set(runs[0].metrics).intersection(*(run.metrics for run in runs[1:]))
    if not shared:
        raise UserError("the runs have no metric in common to compare", param="metric")
    return sorted(shared)


def _compare_metric(
    baseline: RunScores,
    candidate: RunScores,
    name: str,
    settings: _Settings,
    aggregates: Mapping[str, tuple[MetricAggregate, ...]],
) -> MetricComparison:
    base_scores, cand_scores = pair_metric(baseline, candidate, name)
    positions, base, cand = paired_values(base_scores, cand_scores)
    only_baseline = len(base_scores.scored()) - len(positions)
    only_candidate = len(cand_scores.scored()) - len(positions)
    sign = 1.0 if base_scores.higher_is_better else -1.0
    if not positions:
        return MetricComparison(
            name, base_scores.higher_is_better, 0, only_baseline, only_candidate,
            None, None, None, None, None, None, None, Verdict.NO_ITEMS, (), (),
        )  # fmt: skip
    differences = [sign * (y - x) for x, y in zip(base, cand, strict=True)]
    confidence = settings.confidence
    boot = paired_bootstrap(
        base, cand, resamples=settings.resamples, confidence=confidence, seed=settings.seed
    )
    difference_ci = boot.interval if sign > 0 else Interval(-boot.interval.high, -boot.interval.low)
    p_value = sign_flip_test(differences, resamples=settings.permutations, seed=settings.seed)
    difference = math.fsum(differences) / len(differences)
    return MetricComparison(
        metric=name,
        higher_is_better=base_scores.higher_is_better,
        n_paired=len(positions),
        only_baseline=only_baseline,
        only_candidate=only_candidate,
        baseline_mean=statistics.fmean(base),
        baseline_ci=_mean_ci(base, settings, aggregates[baseline.id], name, only_baseline),
        candidate_mean=statistics.fmean(cand),
        candidate_ci=_mean_ci(cand, settings, aggregates[candidate.id], name, only_candidate),
        difference=difference,
        difference_ci=difference_ci,
        p_value=p_value,
        verdict=_verdict(difference, p_value, settings.alpha),
        differences=tuple(differences),
        top_changed=_top_changed(baseline, candidate, positions, (base, cand, differences), settings.top),
    )


def _mean_ci(
    values: Sequence[float], settings: _Settings, run: Sequence[MetricAggregate], name: str, unpaired: int
) -> Interval | None:
    """The interval of a mean on the paired items: the run's own when every scored item is paired
    (so that both tables of a report agree), else computed on the paired items."""
    if unpaired == 0:
        return next(aggregate.mean_ci for aggregate in run if aggregate.metric == name)
    return bootstrap_mean_interval(
        values, resamples=settings.resamples, confidence=settings.confidence, seed=settings.seed
    )


def _verdict(difference: float, p_value: float, alpha: float) -> Verdict:
    if p_value >= alpha or difference == 0:
        return Verdict.NO_DIFFERENCE
    return Verdict.BETTER if difference > 0 else Verdict.WORSE


def _top_changed(
    baseline: RunScores,
    candidate: RunScores,
    positions: Sequence[int],
    columns: tuple[Sequence[float], Sequence[float], Sequence[float]],
    top: int,
) -> tuple[ChangedItem, ...]:
    """The ``top`` items with the largest absolute differences (ties: lower position first); items
    whose score did not move are never listed."""
    base, cand, differences = columns
    order = sorted(
        (index for index, value in enumerate(differences) if value != 0),
        key=lambda index: (-abs(differences[index]), positions[index]),
    )
    return tuple(
        ChangedItem(
            position=positions[index],
            baseline=base[index],
            candidate=cand[index],
            difference=differences[index],
            baseline_output=baseline.outputs.get(positions[index]),
            candidate_output=candidate.outputs.get(positions[index]),
            input=baseline.inputs.get(positions[index]) or candidate.inputs.get(positions[index]),
        )
        for index in order[:top]
    )

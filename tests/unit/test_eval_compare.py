"""Comparing evaluation runs: aggregates, pairing, sign conventions, verdicts, changed items, usage errors."""

from __future__ import annotations

import random
import statistics
from collections.abc import Mapping

import pytest

from llmops.errors import UserError
from llmops.evals.compare import (
    MetricScores,
    RunScores,
    Verdict,
    aggregate_metric,
    compare_runs,
    paired_values,
)
from llmops.stats import Interval, wilson_interval

FAST = {"resamples": 500, "permutations": 2000}


def make_run(
    run_id: str,
    scores: Mapping[int, float | None],
    *,
    metric: str = "rouge_l",
    higher_is_better: bool = True,
    dataset: str = "qa@1",
    outputs: dict[int, str | None] | None = None,
) -> RunScores:
    return RunScores(
        id=run_id,
        name=f"{run_id}-name",
        dataset_version=dataset,
        metrics={metric: MetricScores(metric, scores, higher_is_better)},
        outputs=outputs
        if outputs is not None
        else {position: f"{run_id} answer {position}" for position in scores},
    )


def rouge_like(n: int, seed: int, shift: float = 0.0) -> dict[int, float]:
    """Scores in [0, 1] with a per-item difficulty that every run shares (seed 0) plus the run's own noise."""
    difficulty = random.Random(0)
    noise = random.Random(seed)
    return {
        position: min(1.0, max(0.0, difficulty.betavariate(2, 2) + shift + noise.gauss(0, 0.08)))
        for position in range(n)
    }


def test_aggregate_worked_example() -> None:
    scores = MetricScores("rouge_l", {0: 0.2, 1: 0.4, 2: None, 3: 0.9, 4: 0.5}, threshold=0.45)
    aggregate = aggregate_metric(scores, resamples=1000)
    assert (aggregate.n, aggregate.missing) == (4, 1)
    assert aggregate.mean == pytest.approx(0.5)
    assert aggregate.median == pytest.approx(0.45)
    assert aggregate.stdev == pytest.approx(statistics.stdev([0.2, 0.4, 0.9, 0.5]))
    assert (aggregate.min, aggregate.max) == (0.2, 0.9)
    assert aggregate.pass_rate == 0.5  # 0.9 and 0.5 reach 0.45
    assert aggregate.pass_ci == wilson_interval(2, 4)
    assert aggregate.mean_ci is not None
    assert 0.2 <= aggregate.mean_ci.low < 0.5 < aggregate.mean_ci.high <= 0.9
    latency = aggregate_metric(MetricScores("latency", {0: 100.0, 1: 300.0}, False, threshold=200.0))
    assert latency.pass_rate == 0.5  # lower is better: 100 passes, 300 does not
    empty = aggregate_metric(MetricScores("judge", {0: None, 1: None}))
    assert (empty.n, empty.missing, empty.mean, empty.mean_ci, empty.pass_rate) == (0, 2, None, None, None)


def test_pairs_only_items_both_runs_scored() -> None:
    base = MetricScores("m", {0: 1.0, 1: None, 2: 0.5, 3: 0.25})
    cand = MetricScores("m", {0: 0.0, 1: 1.0, 2: None, 3: 0.75, 9: 1.0})
    assert paired_values(base, cand) == ([0, 3], [1.0, 0.25], [0.0, 0.75])
    found = compare_runs(make_run("a", dict(base.values)), [make_run("b", dict(cand.values))], **FAST)
    metric = found.comparisons[0].metrics[0]
    assert (metric.n_paired, metric.only_baseline, metric.only_candidate) == (2, 1, 2)
    # intervals on the paired items only: the candidate's 0.0 and 0.75, not its two other 1.0s
    assert metric.candidate_ci == Interval(0.0, 0.75)
    whole_run = found.aggregates["b"][0].mean_ci
    assert whole_run is not None
    assert whole_run.high == 1.0
    assert metric.baseline_mean == pytest.approx(0.625)
    assert metric.candidate_mean == pytest.approx(0.375)
    assert metric.differences == (-1.0, 0.5)


def test_identical_runs_show_no_difference() -> None:
    scores = rouge_like(200, seed=1)
    found = compare_runs(make_run("a", scores), [make_run("b", scores)], **FAST)
    metric = found.comparisons[0].metrics[0]
    assert metric.difference == 0
    assert metric.difference_ci == Interval(0.0, 0.0)
    assert metric.p_value == 1.0
    assert metric.verdict is Verdict.NO_DIFFERENCE
    assert metric.top_changed == ()  # nothing moved, so nothing is listed


def test_planted_changes_get_the_right_verdict() -> None:
    base = rouge_like(200, seed=1)
    worse = {position: value - 0.3 if position % 7 == 0 else value for position, value in base.items()}
    better = {position: value + 0.05 for position, value in rouge_like(200, seed=2).items()}
    found = compare_runs(make_run("a", base), [make_run("worse", worse), make_run("better", better)], **FAST)
    by_candidate = {item.candidate: item.metrics[0] for item in found.comparisons}
    regressed = by_candidate["worse"]
    assert regressed.verdict is Verdict.WORSE
    assert regressed.p_value is not None
    assert regressed.p_value < 0.001
    assert regressed.difference_ci is not None
    assert regressed.difference_ci.high < 0
    assert regressed.difference == pytest.approx(-0.3 * 29 / 200)  # 29 of 200 positions are multiples of 7
    assert by_candidate["better"].verdict is Verdict.BETTER
    # noise alone (other runs of the same quality) is called a difference about alpha = 5% of the time:
    # 1 of 20 expected; more than 4 has a chance under 2% (binomial)
    noise = [make_run(f"n{seed}", rouge_like(200, seed)) for seed in range(3, 23)]
    same = compare_runs(make_run("a", base), noise, **FAST)
    flagged = [
        item.candidate for item in same.comparisons if item.metrics[0].verdict is not Verdict.NO_DIFFERENCE
    ]
    assert len(flagged) <= 4


def test_lower_is_better_metrics_are_sign_adjusted() -> None:
    base = {position: 100.0 + position % 10 for position in range(50)}
    faster = {position: value - 20.0 + position % 3 for position, value in base.items()}
    found = compare_runs(
        make_run("a", dict(base), metric="latency", higher_is_better=False),
        [make_run("b", dict(faster), metric="latency", higher_is_better=False)],
        **FAST,
    )
    metric = found.comparisons[0].metrics[0]
    raw = statistics.fmean(faster.values()) - statistics.fmean(base.values())
    assert metric.difference == pytest.approx(-raw)  # lower latency is an improvement: positive
    assert metric.verdict is Verdict.BETTER
    assert metric.difference_ci is not None
    assert 0 < metric.difference_ci.low <= metric.difference <= metric.difference_ci.high
    assert all(value > 0 for value in metric.differences)


def test_changed_items_are_the_largest_moves_with_both_outputs() -> None:
    base = {position: 0.5 for position in range(20)}
    cand = dict(base) | {3: 0.9, 7: 0.1, 11: 0.4, 12: 0.6}
    outputs = {3: "longer answer", 7: None}
    found = compare_runs(
        make_run("a", base), [make_run("b", cand, outputs=outputs)], metrics=["rouge_l"], top=3, **FAST
    )
    changed = found.comparisons[0].metrics[0].top_changed
    assert [item.position for item in changed] == [3, 7, 11]  # |0.4|, |0.4| (lower position first), |0.1|
    assert [round(item.difference, 6) for item in changed] == [0.4, -0.4, -0.1]
    assert changed[0].baseline_output == "a answer 3"
    assert changed[0].candidate_output == "longer answer"
    assert changed[1].candidate_output is None
    assert (changed[0].baseline, changed[0].candidate) == (0.5, 0.9)


def test_comparisons_are_seeded_and_cover_every_candidate() -> None:
    base, one, two = (make_run(name, rouge_like(120, seed)) for name, seed in (("a", 1), ("b", 2), ("c", 3)))
    first = compare_runs(base, [one, two], seed=4, **FAST)
    assert first == compare_runs(base, [one, two], seed=4, **FAST)
    assert first != compare_runs(base, [one, two], seed=5, **FAST)
    assert [item.candidate for item in first.comparisons] == ["b", "c"]
    assert set(first.aggregates) == {"a", "b", "c"}
    assert first.metrics == ("rouge_l",)
    assert first.confidence == pytest.approx(0.95)
    assert first.run("b").label == "b-name"
    # every item paired: the comparison's mean intervals are the runs' own, so a report's tables agree
    metric = first.comparisons[0].metrics[0]
    assert metric.baseline_ci == first.aggregates["a"][0].mean_ci
    assert metric.candidate_ci == first.aggregates["b"][0].mean_ci


def test_no_paired_items() -> None:
    found = compare_runs(make_run("a", {0: 1.0, 1: None}), [make_run("b", {0: None, 1: 1.0})], **FAST)
    metric = found.comparisons[0].metrics[0]
    assert metric.verdict is Verdict.NO_ITEMS
    assert (metric.n_paired, metric.difference, metric.p_value, metric.differences) == (0, None, None, ())


def test_usage_errors() -> None:
    a = make_run("a", {0: 1.0})
    with pytest.raises(UserError, match="one dataset version"):
        compare_runs(a, [make_run("b", {0: 1.0}, dataset="qa@2")])
    with pytest.raises(UserError, match="no metric 'bleu'"):
        compare_runs(a, [make_run("b", {0: 1.0})], metrics=["bleu"])
    with pytest.raises(UserError, match="no metric in common"):
        compare_runs(a, [make_run("b", {0: 1.0}, metric="bleu")])
    with pytest.raises(UserError, match="lower-is-better"):
        compare_runs(a, [make_run("b", {0: 1.0}, higher_is_better=False)])
    with pytest.raises(UserError, match="at least one other run"):
        compare_runs(a, [])
    with pytest.raises(UserError, match="alpha"):
        compare_runs(a, [a], alpha=0.7)

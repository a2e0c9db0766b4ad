"""The CI gate: planted regressions fail it, identical and noise-only runs pass, the max-drop margin and
alpha mean what the docs say, and usage errors are UserErrors."""

from __future__ import annotations

import random

import pytest

from llmops.errors import UserError
from llmops.evals.compare import MetricScores, RunScores
from llmops.evals.gate import gate

ITEMS = 200


def scores_run(
    run_id: str, values: dict[int, float], *, metric: str = "rouge_l", lower: bool = False
) -> RunScores:
    return RunScores(run_id, None, "qa@3", {metric: MetricScores(metric, values, not lower)})


def noisy_target(seed: int, *, n: int = ITEMS, shift: float = 0.0) -> dict[int, float]:
    """A ROUGE-like score per item: a difficulty shared by every run (seed 0), plus this run's noise."""
    difficulty, noise = random.Random(0), random.Random(seed)
    return {
        i: min(1.0, max(0.0, difficulty.betavariate(2, 3) + shift + noise.gauss(0, 0.1))) for i in range(n)
    }


def regressed(values: dict[int, float], share: float, seed: int) -> dict[int, float]:
    """The same answers, except on ``share`` of the items, answered worse (score cut to a third)."""
    rng = random.Random(seed)
    worse = set(rng.sample(sorted(values), round(share * len(values))))
    return {i: value / 3 if i in worse else value for i, value in values.items()}


def test_planted_regression_on_15_percent_of_items_fails_the_gate() -> None:
    baseline = noisy_target(seed=1)
    candidate = regressed(baseline, 0.15, seed=2)  # a deterministic target: only the planted items differ
    result = gate(scores_run("base", baseline), scores_run("cand", candidate), [("rouge_l", 0.02)], 0.05)
    assert result.exit_code == 1
    assert not result.passed
    check = result.checks[0]
    assert check.failed
    assert check.drop > 0.02
    assert check.p_value < 0.05
    assert check.drop_ci.low > 0
    assert check.n_paired == ITEMS
    assert check.message.startswith("rouge_l: FAIL")
    assert f"{check.drop:.4g}" in check.message
    assert "CI of the drop" in check.message
    assert "p = " in check.message
    assert "rouge_l" in result.summary
    # with noise on top (a sampled target), still flagged
    noisy = regressed(noisy_target(seed=3), 0.15, seed=2)
    assert gate(scores_run("base", baseline), scores_run("cand", noisy), [("rouge_l", 0.02)]).exit_code == 1


def test_identical_runs_pass() -> None:
    values = noisy_target(seed=1)
    for max_drop in (0.0, 0.02):
        result = gate(scores_run("a", values), scores_run("b", dict(values)), [("rouge_l", max_drop)])
        assert result.exit_code == 0
        check = result.checks[0]
        assert (check.drop, check.p_value) == (0.0, 1.0)
        assert "pass" in check.message
        assert "no change" in check.message


def test_runs_differing_only_by_noise_pass() -> None:
    baseline = scores_run("a", noisy_target(seed=1))
    codes = [
        gate(baseline, scores_run("b", noisy_target(seed)), [("rouge_l", 0.02)]).exit_code
        for seed in range(2, 12)
    ]
    assert codes == [0] * 10


def test_max_drop_is_a_margin_and_the_test_decides() -> None:
    baseline = noisy_target(seed=1)
    slightly = {i: value - 0.01 for i, value in baseline.items()}  # certainly worse, by 0.01 on every item
    metrics = [("rouge_l", 0.02)]
    assert gate(scores_run("a", baseline), scores_run("b", slightly), metrics).exit_code == 0
    strict = gate(scores_run("a", baseline), scores_run("b", slightly), [("rouge_l", 0.0)])
    assert strict.exit_code == 1
    assert strict.checks[0].drop == pytest.approx(0.01)
    improved = {i: value + 0.05 for i, value in baseline.items()}
    result = gate(scores_run("a", baseline), scores_run("b", improved), [("rouge_l", 0.0)])
    assert result.exit_code == 0
    assert "candidate better by 0.05" in result.checks[0].message


def test_lower_is_better_metrics_regress_upwards() -> None:
    base = {i: 200.0 + (i % 17) * 10 for i in range(ITEMS)}
    slower = {i: value + (40.0 if i % 5 == 0 else 0.0) for i, value in base.items()}
    result = gate(
        scores_run("a", base, metric="latency", lower=True),
        scores_run("b", slower, metric="latency", lower=True),
        [("latency", 2.0)],
    )
    assert result.exit_code == 1
    assert result.checks[0].drop == pytest.approx(8.0)  # 40 ms on a fifth of the items
    faster = {i: value - 40.0 for i, value in base.items()}
    assert gate(
        scores_run("a", base, metric="latency", lower=True),
        scores_run("b", faster, metric="latency", lower=True),
        [("latency", 0.0)],
    ).passed


def test_several_metrics_fail_on_any() -> None:
    base = RunScores(
        "a",
        None,
        "qa@3",
        {"rouge_l": MetricScores("rouge_l", noisy_target(1)), "bleu": MetricScores("bleu", noisy_target(5))},
    )
    cand = RunScores(
        "b",
        None,
        "qa@3",
        {
            "rouge_l": MetricScores("rouge_l", noisy_target(1)),
            "bleu": MetricScores("bleu", regressed(noisy_target(5), 0.3, seed=1)),
        },
    )
    result = gate(base, cand, [("rouge_l", 0.02), ("bleu", 0.02)])
    assert [check.failed for check in result.checks] == [False, True]
    assert [check.metric for check in result.failures] == ["bleu"]
    assert len(result.messages) == 2
    assert result.exit_code == 1


def _false_positives(drop: float, max_drop: float, comparisons: int) -> int:
    """How many of ``comparisons`` null pairs (true mean drop ``drop`` <= ``max_drop``) fail the gate."""
    fails = 0
    for seed in range(comparisons):
        base = noisy_target(2 * seed + 1, n=60)
        cand = noisy_target(2 * seed + 2, n=60, shift=-drop)
        result = gate(
            scores_run("a", base),
            scores_run("b", cand),
            [("rouge_l", max_drop)],
            0.05,
            resamples=200,
            permutations=1000,
        )
        fails += result.exit_code
    return fails


def test_false_positive_rate_is_at_most_alpha() -> None:
    # 100 null comparisons each: at the boundary (true drop = max drop) the gate fails about alpha = 5% of
    # them (more than 11 has a chance under 0.5%); with a margin, hardly ever
    assert _false_positives(drop=0.0, max_drop=0.0, comparisons=100) <= 11
    assert _false_positives(drop=0.02, max_drop=0.02, comparisons=100) <= 11
    assert _false_positives(drop=0.0, max_drop=0.02, comparisons=100) <= 2


def test_usage_errors() -> None:
    a = scores_run("a", {0: 1.0, 1: 0.5})
    with pytest.raises(UserError, match="no metric 'bleu'"):
        gate(a, a, [("bleu", 0.02)])
    with pytest.raises(UserError, match="dataset version"):
        gate(a, RunScores("b", None, "qa@4", a.metrics), [("rouge_l", 0.02)])
    with pytest.raises(UserError, match=">= 0"):
        gate(a, a, [("rouge_l", -0.1)])
    with pytest.raises(UserError, match="at least one"):
        gate(a, a, [])
    with pytest.raises(UserError, match="alpha"):
        gate(a, a, [("rouge_l", 0.0)], alpha=0.0)
    with pytest.raises(UserError, match="no item was scored"):
        gate(a, scores_run("b", {5: 1.0}), [("rouge_l", 0.0)])

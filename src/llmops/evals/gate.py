"""The CI gate: does a candidate run score significantly worse than a baseline, by more than allowed?

The rule, per metric, on the items both runs scored. Let d_i be the drop on item i: baseline minus
candidate (candidate minus baseline for metrics where lower is better), so a positive drop is a
regression, in the metric's units. The gate fails on a metric when the one-sided paired permutation
test rejects "mean drop <= max_drop" in favour of "mean drop > max_drop" at level ``alpha``: the
sign-flip test of the d_i - max_drop (:func:`llmops.stats.sign_flip_test`, ``alternative="greater"``).

Why this rule: it fails only on evidence. A candidate that is worse by less than ``max_drop``, or
whose drop cannot be told from noise, passes; the chance of failing a candidate whose true drop is
``max_drop`` or less is at most ``alpha`` (exactly alpha at the boundary, for symmetric differences),
so a pipeline gated at alpha = 0.05 fails a harmless change about once in twenty at worst with
``max_drop`` 0, and much more rarely with a margin. The test assumes no distribution of scores. The
95% interval of the drop (a paired bootstrap) and the baseline and candidate means are reported to
show how large the drop is; the decision is the test's p-value.

Usage errors (a metric missing from a run, runs on different dataset versions, a negative max-drop,
no item scored by both runs) raise :class:`~llmops.errors.UserError`; the CLI exits 2 on them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from llmops.errors import UserError
from llmops.evals.compare import (
    DEFAULT_PERMUTATIONS,
    DEFAULT_RESAMPLES,
    RunScores,
    check_same_dataset,
    pair_metric,
    paired_values,
)
from llmops.stats import Interval, paired_bootstrap, sign_flip_test

__all__ = ["GateCheck", "GateResult", "gate"]


@dataclass(frozen=True)
class GateCheck:
    """One metric's verdict. ``drop`` is the mean drop (positive: the candidate is worse), ``drop_ci``
    its two-sided 1 - alpha paired bootstrap interval, ``p_value`` the one-sided test of drop > max_drop."""

    metric: str
    max_drop: float
    higher_is_better: bool
    n_paired: int
    baseline_mean: float
    candidate_mean: float
    drop: float
    drop_ci: Interval
    p_value: float
    alpha: float

    @property
    def failed(self) -> bool:
        return self.p_value < self.alpha

    @property
    def message(self) -> str:
        change = (
            f"candidate worse by {_number(self.drop)}"
            if self.drop > 0
            else f"candidate better by {_number(-self.drop)}"
            if self.drop < 0
            else "no change"
        )
        low, high = _number(self.drop_ci.low), _number(self.drop_ci.high)
        ci = f"{_percent(1 - self.alpha)} CI of the drop {low} to {high}"
        means = f"{_number(self.baseline_mean)} -> {_number(self.candidate_mean)}"
        if self.failed:
            verdict = f"FAIL: significantly more than the allowed {_number(self.max_drop)}"
            test = f"p = {_p(self.p_value)} < {self.alpha}"
        else:
            verdict = f"pass: not significantly more than the allowed drop of {_number(self.max_drop)}"
            test = f"p = {_p(self.p_value)}"
        return f"{self.metric}: {verdict}; {change} ({means}, {ci}, {test}, {self.n_paired} paired items)"


@dataclass(frozen=True)
class GateResult:
    baseline: str  # run ids
    candidate: str
    alpha: float
    checks: tuple[GateCheck, ...]

    @property
    def passed(self) -> bool:
        return not any(check.failed for check in self.checks)

    @property
    def exit_code(self) -> int:
        """0 when no metric regressed significantly beyond its max drop, 1 otherwise."""
        return 0 if self.passed else 1

    @property
    def failures(self) -> tuple[GateCheck, ...]:
        return tuple(check for check in self.checks if check.failed)

    @property
    def messages(self) -> list[str]:
        return [check.message for check in self.checks]

    @property
    def summary(self) -> str:
        if self.passed:
            return f"gate passed: {self.candidate} is not significantly worse than {self.baseline}"
        names = ", ".join(check.metric for check in self.failures)
        return f"gate failed: {self.candidate} regressed against {self.baseline} on {names}"


def gate(
    baseline: RunScores,
    candidate: RunScores,
    metrics: Sequence[tuple[str, float]],
    alpha: float = 0.05,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
) -> GateResult:
    """Check ``candidate`` against ``baseline`` on each ``(metric, max_drop)`` (see the module's rule)."""
    if not metrics:
        raise UserError("the gate needs at least one --metric", param="metric")
    if not 0.0 < alpha < 0.5:
        raise UserError(f"alpha must be between 0 and 0.5, got {alpha}", param="alpha")
    if resamples < 100 or permutations < 100:
        raise UserError("use at least 100 resamples and permutations", param="resamples")
    check_same_dataset((baseline, candidate))
    checks = tuple(
        _check(baseline, candidate, name, max_drop, alpha, (resamples, permutations, seed))
        for name, max_drop in metrics
    )
    return GateResult(baseline.id, candidate.id, alpha, checks)


def _check(
    baseline: RunScores,
    candidate: RunScores,
    name: str,
    max_drop: float,
    alpha: float,
    sampling: tuple[int, int, int],
) -> GateCheck:
    if not (math.isfinite(max_drop) and max_drop >= 0):
        raise UserError(f"max drop for {name!r} must be a number >= 0, got {max_drop}", param="max_drop")
    base_scores, cand_scores = pair_metric(baseline, candidate, name)
    _, base, cand = paired_values(base_scores, cand_scores)
    if not base:
        raise UserError(
            f"no item was scored on {name!r} by both {baseline.label} and {candidate.label}", param="metric"
        )
    resamples, permutations, seed = sampling
    if base_scores.higher_is_better:  # the drop is baseline - candidate: resample (cand, base) pairs
        boot = paired_bootstrap(cand, base, resamples=resamples, confidence=1 - alpha, seed=seed)
        drops = [x - y for x, y in zip(base, cand, strict=True)]
    else:
        boot = paired_bootstrap(base, cand, resamples=resamples, confidence=1 - alpha, seed=seed)
        drops = [y - x for x, y in zip(base, cand, strict=True)]
    p_value = sign_flip_test(drops, null=max_drop, alternative="greater", resamples=permutations, seed=seed)
    return GateCheck(
        metric=name,
        max_drop=max_drop,
        higher_is_better=base_scores.higher_is_better,
        n_paired=len(drops),
        baseline_mean=statistics.fmean(base),
        candidate_mean=statistics.fmean(cand),
        drop=math.fsum(drops) / len(drops),
        drop_ci=boot.interval,
        p_value=p_value,
        alpha=alpha,
    )


def _number(value: float) -> str:
    return f"{value:.4g}"


def _p(value: float) -> str:
    return f"{value:.2g}" if value >= 0.001 else f"{value:.1e}"


def _percent(share: float) -> str:
    return f"{share * 100:g}%"

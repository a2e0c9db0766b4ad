"""Small, exact statistics for comparing variants: intervals, tests and sample sizes, in pure Python.

Used by experiment results (:mod:`llmops.prompts.experiment_results`) and meant for evaluations.
Only :mod:`math` and :class:`statistics.NormalDist`; Student's t distribution is computed here from
the regularised incomplete beta function (a continued fraction evaluated with the modified Lentz
method), so there is no scipy in the base install. The tests check every function against
published values (t tables, R's output for Welch's test on the ``sleep`` data, Newcombe's
interval examples, G*Power sample sizes) and examples worked by hand.

What is used for what, and why:

- a rate (thumbs-up, errors): :func:`wilson_interval`, the Wilson score interval. Unlike the
  textbook ``p ± z·√(p(1-p)/n)`` it stays inside [0, 1] and keeps close to its stated coverage with
  small counts and rates near 0 or 1, which is where experiments on errors live.
- a mean (scores, latency): :func:`mean_interval`, ``mean ± t·s/√n`` with Student's t at n-1
  degrees of freedom, which is exact for normal data and robust enough for means otherwise.
- two rates: :func:`two_proportion_z_test`, the pooled two-proportion z-test (equivalent to the
  chi-squared test of a 2×2 table without continuity correction). Its normal approximation wants
  about 5 expected successes and failures per group (:func:`z_test_is_valid`).
- two means: :func:`welch_t_test`, Welch's t-test with Welch–Satterthwaite degrees of freedom; it
  does not assume equal variances (variants rarely have them), and costs nothing when they are.
- two small or skewed samples with raw values at hand: :func:`bootstrap_mean_difference`, a seeded
  percentile bootstrap of the difference in means, which assumes no distribution at all.
- two runs that scored the same items (evaluations): :func:`paired_bootstrap` for the interval of the
  mean per-item difference and :func:`sign_flip_test` for its p-value. Pairing removes what the items
  share (some questions are hard for every model), which is most of the variance of such scores, so
  a paired test detects differences an unpaired one would call noise. :func:`bootstrap_mean_interval`
  is the interval of one mean without assuming a distribution.
- how much data a test needs: :func:`sample_size_proportions` and :func:`sample_size_means` give
  the samples per group that detect a given difference with probability ``power`` at level
  ``alpha``; :func:`more_needed` turns that into how many more, given the current counts.

Errors: :class:`ValueError` for arguments outside a function's domain (a probability outside (0, 1),
negative counts, fewer successes than trials, ...).
"""

from __future__ import annotations

import itertools
import math
import operator
import random
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

__all__ = [
    "BootstrapResult",
    "Interval",
    "Sample",
    "Significance",
    "bootstrap_mean_difference",
    "bootstrap_mean_interval",
    "incomplete_beta",
    "mean_interval",
    "more_needed",
    "newcombe_interval",
    "normal_quantile",
    "paired_bootstrap",
    "sample_size_means",
    "sample_size_proportions",
    "sign_flip_test",
    "t_cdf",
    "t_quantile",
    "two_proportion_z_test",
    "welch_t_test",
    "wilson_interval",
    "z_test_is_valid",
]

_NORMAL = NormalDist()
_EPSILON = 1e-15  # relative precision of the continued fraction
_TINY = 1e-300  # keeps Lentz's method away from a division by zero
_MAX_TERMS = 100_000
_SQRT2 = math.sqrt(2.0)
MIN_EXPECTED = 5.0  # expected successes and failures per group for the z-test's approximation


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True, slots=True)
class Sample:
    """What a mean's interval and Welch's test need of a sample: its size, mean and variance.

    ``variance`` is the unbiased sample variance (divided by n-1); 0 when n < 2.
    """

    n: int
    mean: float
    variance: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Sample:
        n = len(values)
        if n == 0:
            return cls(0, math.nan, 0.0)
        mean = math.fsum(values) / n
        variance = math.fsum((value - mean) ** 2 for value in values) / (n - 1) if n > 1 else 0.0
        return cls(n, mean, variance)

    @classmethod
    def from_sums(cls, n: int, total: float, total_of_squares: float) -> Sample:
        """From n, Σx and Σx², as SQL aggregates give them (precise enough unless the spread is
        below about 1e-7 of the mean; a negative rounding residue is taken as 0)."""
        if n <= 0:
            return cls(0, math.nan, 0.0)
        mean = total / n
        variance = max(0.0, (total_of_squares - total * mean) / (n - 1)) if n > 1 else 0.0
        return cls(n, mean, variance)

    @property
    def std_error(self) -> float:
        return math.sqrt(self.variance / self.n) if self.n > 0 else math.nan


@dataclass(frozen=True, slots=True)
class Significance:
    """The outcome of a test of ``b`` against ``a``.

    ``difference`` is b - a (of rates or means), ``statistic`` the z or t value (positive when b is
    higher), ``df`` the degrees of freedom of a t-test (None for z), ``p_value`` two-sided, and
    ``interval`` a confidence interval for the difference, when one was asked for.
    """

    test: str
    difference: float
    statistic: float
    p_value: float
    df: float | None = None
    interval: Interval | None = None


@dataclass(frozen=True, slots=True)
class BootstrapResult:
    difference: float  # mean(b) - mean(a)
    interval: Interval  # percentile interval
    p_value: float  # two-sided, from how often the resampled difference crosses 0
    resamples: int


# --- distributions ----------------------------------------------------------------------------------


def normal_quantile(p: float) -> float:
    """The standard normal's p-quantile (1.959964 at 0.975)."""
    _check_probability(p)
    return _NORMAL.inv_cdf(p)


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), for a, b > 0 and 0 ≤ x ≤ 1.

    The power series of the integrand is summed as a continued fraction, which converges quickly
    for x < (a + 1) / (a + b + 2); beyond that point the symmetry I_x(a, b) = 1 - I_{1-x}(b, a)
    brings x back into that region.
    """
    if not (a > 0 and b > 0):
        raise ValueError(f"incomplete_beta: a and b must be positive, got a={a}, b={b}")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"incomplete_beta: x must be in [0, 1], got {x}")
    return _incomplete_beta(a, b, x, 1.0 - x)


def _incomplete_beta(a: float, b: float, x: float, y: float) -> float:
    """I_x(a, b) given both x and y = 1 - x: a caller that knows y more precisely than 1 - x (t
    with many degrees of freedom puts x within 1e-6 of 1) keeps its digits."""
    if x <= 0.0 or y >= 1.0:
        return 0.0
    if y <= 0.0 or x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - _incomplete_beta(b, a, y, x)
    log_x = math.log1p(-y) if y < 0.5 else math.log(x)
    log_y = math.log1p(-x) if x < 0.5 else math.log(y)
    log_front = a * log_x + b * log_y - _log_beta(a, b) - math.log(a)
    return math.exp(log_front) * _beta_fraction(a, b, x)


def _log_beta(a: float, b: float) -> float:
    small, big = min(a, b), max(a, b)
    if big < 100.0:
        return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)

    # lgamma(big) - lgamma(big + small) from Stirling's series, term by term: subtracting the two
    # lgammas (each near big·log(big)) would lose the digits that matter when big is 1e6 or more.
    def series(z: float) -> float:
        return 1 / (12 * z) - 1 / (360 * z**3) + 1 / (1260 * z**5) - 1 / (1680 * z**7)

    ratio = (
        -(big - 0.5) * math.log1p(small / big)
        - small * math.log(big + small)
        + small
        + series(big)
        - series(big + small)
    )
    return math.lgamma(small) + ratio


def _beta_fraction(a: float, b: float, x: float) -> float:
    """1 / (1 + d1 / (1 + d2 / (1 + ...))), the continued fraction of I_x(a, b), by modified Lentz.

    The coefficients alternate: d(2m) = m(b-m)x / ((a+2m-1)(a+2m)) and
    d(2m+1) = -(a+m)(a+b+m)x / ((a+2m)(a+2m+1)), starting with d1 = -(a+b)x / (a+1).
    """

    def guarded(value: float) -> float:
        return value if abs(value) > _TINY else _TINY

    numerator = 1.0  # Lentz's C
    denominator = 1.0 / guarded(1.0 - (a + b) * x / (a + 1.0))  # Lentz's D
    result = denominator
    for m in range(1, _MAX_TERMS):
        even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        for coefficient in (even, odd):
            denominator = 1.0 / guarded(1.0 + coefficient * denominator)
            numerator = guarded(1.0 + coefficient / numerator)
            step = numerator * denominator
            result *= step
        if abs(step - 1.0) < _EPSILON:
            return result
    raise ArithmeticError(f"incomplete beta fraction did not converge for a={a}, b={b}, x={x}")


def t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for Student's t with ``df`` degrees of freedom (df may be fractional, as Welch's is).

    Uses P(|T| > |t|) = I_{df/(df+t²)}(df/2, 1/2); ``df = inf`` is the standard normal.
    """
    if not df > 0:
        raise ValueError(f"t_cdf: degrees of freedom must be positive, got {df}")
    if math.isnan(t):
        return math.nan
    tail = _t_tail(abs(t), df)  # P(T > |t|)
    return 1.0 - tail if t > 0 else tail


def _t_tail(t: float, df: float) -> float:
    """P(T > t) for t ≥ 0.

    With very many degrees of freedom the continued fraction runs for thousands of terms and keeps
    only about 10 digits; there, while t⁴/df is small, Fisher's expansion around the normal
    distribution is exact to rounding: P(T > t) = Φ(-t) + φ(t)·(g1(t)/df + g2(t)/df²), with
    g1 = (t³ + t)/4 and g2 = (3t⁷ - 7t⁵ - 5t³ - 3t)/96 (the next term is below 1e-13 of the tail
    where it is used; checked against 50-digit arithmetic).
    """
    if math.isinf(t):
        return 0.0
    if math.isinf(df):
        return 0.5 * math.erfc(t / _SQRT2)
    if df >= 1e5 and t**4 <= 3e-4 * df:
        g1 = (t**3 + t) / 4.0
        g2 = (3 * t**7 - 7 * t**5 - 5 * t**3 - 3 * t) / 96.0
        density = math.exp(-t * t / 2.0) / math.sqrt(2.0 * math.pi)
        return 0.5 * math.erfc(t / _SQRT2) + density * (g1 / df + g2 / (df * df))
    square = t * t
    return 0.5 * _incomplete_beta(df / 2.0, 0.5, df / (df + square), square / (df + square))


def _t_density(t: float, df: float) -> float:
    log_density = (
        math.lgamma((df + 1) / 2)
        - math.lgamma(df / 2)
        - 0.5 * math.log(df * math.pi)
        - (df + 1) / 2 * math.log1p(t * t / df)
    )
    return math.exp(log_density)


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with ``df`` degrees of freedom (2.228 for p=0.975, df=10).

    Newton's method on :func:`t_cdf` from the normal quantile: for p > 1/2 the CDF is concave beyond
    0 and the normal quantile lies below the root, so every step stays below it and converges.
    """
    _check_probability(p)
    if not df > 0:
        raise ValueError(f"t_quantile: degrees of freedom must be positive, got {df}")
    if math.isinf(df):
        return _NORMAL.inv_cdf(p)
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    if p == 0.5:
        return 0.0
    t = _NORMAL.inv_cdf(p)
    last_step = math.inf
    for _ in range(1000):
        step = (p - t_cdf(t, df)) / _t_density(t, df)
        if abs(step) >= last_step and abs(step) < 1e-9 * max(1.0, abs(t)):
            return t  # steps stopped shrinking at the CDF's rounding noise: t is as good as it gets
        t += step
        if abs(step) <= 1e-14 * max(1.0, abs(t)):
            return t
        last_step = abs(step)
    raise ArithmeticError(f"t quantile did not converge for p={p}, df={df}")


# --- intervals --------------------------------------------------------------------------------------


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """The Wilson score interval of a proportion ``successes / n``; [0, 1] when n = 0.

    The bounds are where the score test of p would just be significant:
    (p̂ + z²/2n ± z·√(p̂(1-p̂)/n + z²/4n²)) / (1 + z²/n).
    """
    _check_counts(successes, n)
    if n == 0:
        return Interval(0.0, 1.0)
    z = normal_quantile(0.5 + confidence / 2.0)
    rate = successes / n
    z2 = z * z
    centre = rate + z2 / (2 * n)
    spread = z * math.sqrt(rate * (1.0 - rate) / n + z2 / (4.0 * n * n))
    scale = 1.0 + z2 / n
    low = 0.0 if successes == 0 else (centre - spread) / scale
    high = 1.0 if successes == n else (centre + spread) / scale
    return Interval(max(0.0, low), min(1.0, high))


def newcombe_interval(
    successes_a: int, n_a: int, successes_b: int, n_b: int, confidence: float = 0.95
) -> Interval:
    """An interval for the difference of two proportions p_b - p_a, from their Wilson intervals.

    Newcombe's hybrid score method (his "method 10"): it inherits the Wilson interval's good
    behaviour with small counts and extreme rates, where the Wald interval of a difference fails.
    """
    rate_a, rate_b = successes_a / n_a, successes_b / n_b
    a = wilson_interval(successes_a, n_a, confidence)
    b = wilson_interval(successes_b, n_b, confidence)
    difference = rate_b - rate_a
    low = difference - math.sqrt((rate_b - b.low) ** 2 + (a.high - rate_a) ** 2)
    high = difference + math.sqrt((b.high - rate_b) ** 2 + (rate_a - a.low) ** 2)
    return Interval(low, high)


def mean_interval(sample: Sample, confidence: float = 0.95) -> Interval | None:
    """mean ± t(1-α/2, n-1)·s/√n, the t interval of a mean; None with fewer than two values."""
    if sample.n < 2:
        return None
    half = t_quantile(0.5 + confidence / 2.0, sample.n - 1) * sample.std_error
    return Interval(sample.mean - half, sample.mean + half)


# --- tests ------------------------------------------------------------------------------------------


def two_proportion_z_test(
    successes_a: int, n_a: int, successes_b: int, n_b: int, *, confidence: float | None = None
) -> Significance:
    """The pooled two-proportion z-test of p_b = p_a, two-sided.

    z = (p̂_b - p̂_a) / √(p̄(1-p̄)(1/n_a + 1/n_b)), with p̄ the pooled rate: under the null hypothesis
    both groups share one rate, and the pooled estimate of it gives the test its right size. When
    both groups are all successes or all failures there is no evidence of a difference (p = 1).
    With ``confidence``, the result carries Newcombe's interval of the difference.
    """
    _check_counts(successes_a, n_a)
    _check_counts(successes_b, n_b)
    if n_a == 0 or n_b == 0:
        raise ValueError("two_proportion_z_test: each group needs at least one trial")
    rate_a, rate_b = successes_a / n_a, successes_b / n_b
    pooled = (successes_a + successes_b) / (n_a + n_b)
    std_error = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b))
    if std_error == 0.0:
        z, p_value = 0.0, 1.0
    else:
        z = (rate_b - rate_a) / std_error
        p_value = min(1.0, math.erfc(abs(z) / _SQRT2))  # 2·Φ(-|z|), without losing the far tail
    interval = (
        newcombe_interval(successes_a, n_a, successes_b, n_b, confidence) if confidence is not None else None
    )
    return Significance("two-proportion z-test", rate_b - rate_a, z, p_value, None, interval)


def z_test_is_valid(successes_a: int, n_a: int, successes_b: int, n_b: int) -> bool:
    """Whether each group expects at least 5 successes and 5 failures under the pooled rate, the usual
    condition for the z-test's normal approximation to hold."""
    if n_a == 0 or n_b == 0:
        return False
    pooled = (successes_a + successes_b) / (n_a + n_b)
    return all(min(n * pooled, n * (1.0 - pooled)) >= MIN_EXPECTED for n in (n_a, n_b))


def welch_t_test(a: Sample, b: Sample, *, confidence: float | None = None) -> Significance:
    """Welch's t-test of mean_b = mean_a, two-sided, without assuming equal variances.

    t = (m_b - m_a) / √(s_a²/n_a + s_b²/n_b), with the Welch–Satterthwaite degrees of freedom
    (s_a²/n_a + s_b²/n_b)² / ((s_a²/n_a)²/(n_a-1) + (s_b²/n_b)²/(n_b-1)). Each sample needs two
    values. When both variances are 0 the means are certain: p is 1 if they are equal, else 0.
    """
    if a.n < 2 or b.n < 2:
        raise ValueError("welch_t_test: each sample needs at least two values")
    share_a, share_b = a.variance / a.n, b.variance / b.n
    difference = b.mean - a.mean
    std_error = math.sqrt(share_a + share_b)
    if std_error == 0.0:
        p_value = 1.0 if difference == 0 else 0.0
        statistic = 0.0 if difference == 0 else math.copysign(math.inf, difference)
        interval = Interval(difference, difference) if confidence is not None else None
        return Significance("Welch's t-test", difference, statistic, p_value, None, interval)
    df = (share_a + share_b) ** 2 / (share_a**2 / (a.n - 1) + share_b**2 / (b.n - 1))
    t = difference / std_error
    p_value = min(1.0, 2.0 * t_cdf(-abs(t), df))
    interval = None
    if confidence is not None:
        half = t_quantile(0.5 + confidence / 2.0, df) * std_error
        interval = Interval(difference - half, difference + half)
    return Significance("Welch's t-test", difference, t, p_value, df, interval)


def bootstrap_mean_difference(
    a: Sequence[float],
    b: Sequence[float],
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """A percentile bootstrap of mean(b) - mean(a): resample each group with replacement
    ``resamples`` times; the interval holds the middle ``confidence`` of the resampled differences.

    It assumes no distribution, which suits small or skewed samples (scores from a judge, latency
    with a long tail). The p-value is twice the share of resampled differences on the far side of
    0 (at least 1/resamples): an approximation, coarse below 1/resamples. Seeded, so a report can
    be reproduced.
    """
    if not a or not b:
        raise ValueError("bootstrap_mean_difference: each sample needs at least one value")
    if resamples < 100:
        raise ValueError("bootstrap_mean_difference: use at least 100 resamples")
    rng = random.Random(seed)
    observed = math.fsum(b) / len(b) - math.fsum(a) / len(a)
    differences = sorted(
        math.fsum(rng.choices(b, k=len(b))) / len(b) - math.fsum(rng.choices(a, k=len(a))) / len(a)
        for _ in range(resamples)
    )
    return BootstrapResult(
        observed, _percentile_interval(differences, confidence), _crossing_p_value(differences), resamples
    )


def _percentile_interval(ordered: Sequence[float], confidence: float) -> Interval:
    """The middle ``confidence`` of sorted resampled statistics."""
    tail = (1.0 - confidence) / 2.0
    last = len(ordered) - 1
    return Interval(ordered[int(math.floor(tail * last))], ordered[int(math.ceil((1.0 - tail) * last))])


def _crossing_p_value(ordered: Sequence[float]) -> float:
    """Twice the share of resampled differences on the far side of 0, at least 1/resamples."""
    at_or_below = sum(1 for value in ordered if value <= 0)
    at_or_above = sum(1 for value in ordered if value >= 0)
    return min(1.0, max(2.0 * min(at_or_below, at_or_above) / len(ordered), 1.0 / len(ordered)))


def _resampled_means(values: Sequence[float], resamples: int, seed: int, who: str) -> list[float]:
    """Sorted means of ``resamples`` seeded resamples of ``values`` with replacement."""
    if not values:
        raise ValueError(f"{who}: needs at least one value")
    if resamples < 100:
        raise ValueError(f"{who}: use at least 100 resamples")
    rng = random.Random(seed)
    n = len(values)
    return sorted(sum(rng.choices(values, k=n)) / n for _ in range(resamples))


def bootstrap_mean_interval(
    values: Sequence[float], *, resamples: int = 5000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """A seeded percentile bootstrap interval of a mean: the middle ``confidence`` of the means of
    ``resamples`` resamples with replacement.

    Scores are bounded and often lumpy (many 0s and 1s, a judge's five levels), where a t interval
    can reach outside the possible values; a percentile interval cannot. With few values it is a
    little too narrow (the resampled spread divides by n, not n-1).
    """
    return _percentile_interval(
        _resampled_means(values, resamples, seed, "bootstrap_mean_interval"), confidence
    )


def paired_bootstrap(
    a: Sequence[float],
    b: Sequence[float],
    *,
    resamples: int = 5000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """A seeded percentile bootstrap of the mean paired difference mean(b_i - a_i).

    ``a[i]`` and ``b[i]`` are two measurements of the same item, so the items are resampled, each
    keeping its pair: the interval then reflects only how the difference varies between items, not
    how hard the items are. The p-value is the bootstrap's coarse crossing estimate (as in
    :func:`bootstrap_mean_difference`); :func:`sign_flip_test` gives an exact one.
    """
    if len(a) != len(b):
        raise ValueError(f"paired_bootstrap: the samples are paired, got {len(a)} and {len(b)} values")
    differences = [y - x for x, y in zip(a, b, strict=True)]
    ordered = _resampled_means(differences, resamples, seed, "paired_bootstrap")
    observed = math.fsum(differences) / len(differences)
    return BootstrapResult(
        observed, _percentile_interval(ordered, confidence), _crossing_p_value(ordered), resamples
    )


def sign_flip_test(
    differences: Sequence[float],
    *,
    null: float = 0.0,
    alternative: Literal["two-sided", "greater", "less"] = "two-sided",
    resamples: int = 10_000,
    seed: int = 0,
) -> float:
    """The p-value of the paired permutation (sign-flip) test that the mean of ``differences`` is ``null``.

    If the two measurements of an item were exchangeable, each difference (less ``null``) would
    be as likely positive as negative; the test compares the observed sum with the sums under
    random sign flips. It is exact for any distribution symmetric about ``null``, needs no normal
    approximation, and for skewed differences errs on the safe side (flipping spreads the sums by
    Σd², at least their true variance). With 2^n ≤ ``resamples`` every pattern is enumerated
    (Fisher's own example, Darwin's 15 pairs of plants, gives 1726/32768 two-sided); otherwise
    ``resamples`` seeded random patterns, with p = (hits + 1) / (resamples + 1), which counts the
    observed pattern and so never reports 0. ``greater`` tests mean > null, ``less`` mean < null.
    """
    if not differences:
        raise ValueError("sign_flip_test: needs at least one difference")
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"sign_flip_test: unknown alternative {alternative!r}")
    centred = [value - null for value in differences]
    observed = sum(centred)
    tolerance = 1e-10 * math.fsum(abs(value) for value in centred)  # sums equal but for rounding

    def extreme(total: float) -> bool:
        if alternative == "greater":
            return total >= observed - tolerance
        if alternative == "less":
            return total <= observed + tolerance
        return abs(total) >= abs(observed) - tolerance

    n = len(centred)
    if n < 63 and 1 << n <= resamples:
        patterns = itertools.product((1.0, -1.0), repeat=n)
        hits = sum(1 for signs in patterns if extreme(sum(map(operator.mul, centred, signs))))
        return hits / (1 << n)
    rng = random.Random(seed)
    tables = _byte_subset_sums(centred)
    width = len(tables)
    hits = 0
    for _ in range(resamples):
        # one random bit per value says whether its sign flips; flipping the set S turns the sum into
        # observed - 2·sum(S), and sum(S) is read byte by byte from the tables
        flips = rng.getrandbits(8 * width).to_bytes(width, "little")
        hits += extreme(observed - 2.0 * sum(map(operator.getitem, tables, flips)))
    return (hits + 1) / (resamples + 1)


def _byte_subset_sums(values: Sequence[float]) -> list[list[float]]:
    """For each run of 8 values (the last padded with zeros), the sums of all 256 subsets, indexed by
    the subset's bit mask: a random sign pattern of n values then costs n/8 look-ups, not n products."""
    tables = []
    for start in range(0, len(values), 8):
        chunk = [*values[start : start + 8], *[0.0] * max(0, start + 8 - len(values))]
        table = [0.0] * 256
        for mask in range(1, 256):
            lowest = mask & -mask
            table[mask] = table[mask ^ lowest] + chunk[lowest.bit_length() - 1]
        tables.append(table)
    return tables


# --- sample sizes -----------------------------------------------------------------------------------


def sample_size_proportions(
    rate_a: float, rate_b: float, alpha: float = 0.05, power: float = 0.8
) -> int | None:
    """Trials per group for the two-sided pooled z-test to detect ``rate_a`` vs ``rate_b``.

    n = (z(1-α/2)·√(2p̄(1-p̄)) + z(power)·√(p_a(1-p_a) + p_b(1-p_b)))² / (p_a - p_b)², rounded up,
    with p̄ their mean (Fleiss, without continuity correction). None when the rates are equal: no
    number of samples detects a difference that is not there.
    """
    _check_probability(alpha)
    _check_probability(power)
    for rate in (rate_a, rate_b):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"sample_size_proportions: rates must be in [0, 1], got {rate}")
    delta = abs(rate_a - rate_b)
    if delta == 0:
        return None
    mean = (rate_a + rate_b) / 2.0
    z_alpha, z_power = normal_quantile(1.0 - alpha / 2.0), normal_quantile(power)
    root = z_alpha * math.sqrt(2.0 * mean * (1.0 - mean)) + z_power * math.sqrt(
        rate_a * (1.0 - rate_a) + rate_b * (1.0 - rate_b)
    )
    return max(2, math.ceil(root * root / (delta * delta) - 1e-9))


def sample_size_means(
    delta: float, variance_a: float, variance_b: float, alpha: float = 0.05, power: float = 0.8
) -> int | None:
    """Values per group for a two-sided t-test to detect a difference ``delta`` between two means.

    n = (t(1-α/2, ν) + t(power, ν))² · (σ_a² + σ_b²) / δ², with ν = 2(n-1) degrees of freedom,
    solved by iterating from the normal-quantile answer. With σ_a = σ_b this gives the classic
    power-analysis figures (64 per group for a standardised difference of 0.5, 26 for 0.8, 394
    for 0.2). None when ``delta`` is 0; 2 when the variances are 0 (any difference is then certain).
    """
    _check_probability(alpha)
    _check_probability(power)
    if variance_a < 0 or variance_b < 0:
        raise ValueError("sample_size_means: variances cannot be negative")
    if delta == 0:
        return None
    spread = (variance_a + variance_b) / (delta * delta)
    if spread == 0:
        return 2
    z = normal_quantile(1.0 - alpha / 2.0) + normal_quantile(power)
    n = max(2, math.ceil(z * z * spread - 1e-9))
    for _ in range(50):
        df = 2.0 * (n - 1)
        t = t_quantile(1.0 - alpha / 2.0, df) + t_quantile(power, df)
        next_n = max(2, math.ceil(t * t * spread - 1e-9))
        if next_n == n:
            break
        n = next_n
    return n


def more_needed(required: int | None, *counts: int) -> int | None:
    """How many more samples the group furthest from ``required`` still needs (0 when all have enough;
    None when ``required`` is None)."""
    if required is None:
        return None
    return max(0, *(required - count for count in counts))


# --- checks -----------------------------------------------------------------------------------------


def _check_probability(p: float) -> None:
    if not 0.0 < p < 1.0:
        raise ValueError(f"expected a probability strictly between 0 and 1, got {p}")


def _check_counts(successes: int, n: int) -> None:
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"expected 0 <= successes <= n, got {successes} of {n}")

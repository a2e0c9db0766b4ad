"""llmops.stats against published values: t tables, R's Welch test, Newcombe's intervals, power tables."""

from __future__ import annotations

import math
import random

import pytest

from llmops.stats import (
    Interval,
    Sample,
    bootstrap_mean_difference,
    bootstrap_mean_interval,
    incomplete_beta,
    mean_interval,
    more_needed,
    newcombe_interval,
    paired_bootstrap,
    sample_size_means,
    sample_size_proportions,
    sign_flip_test,
    t_cdf,
    t_quantile,
    two_proportion_z_test,
    welch_t_test,
    wilson_interval,
    z_test_is_valid,
)

# R's `sleep` data set (extra hours of sleep under two drugs), the example of R's t.test help page.
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


# --- the incomplete beta function and Student's t ----------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "x", "expected"),
    [
        (1.0, 1.0, 0.3, 0.3),  # I_x(1, 1) = x
        (3.0, 1.0, 0.4, 0.4**3),  # I_x(a, 1) = x^a
        (1.0, 4.0, 0.2, 1 - 0.8**4),  # I_x(1, b) = 1 - (1-x)^b
        (7.5, 7.5, 0.5, 0.5),  # symmetry
        (2.0, 3.0, 0.4, 0.5248),  # a binomial tail: P(Bin(4, 0.4) >= 2) = 1 - 0.6^4 - 4·0.4·0.6^3
        (0.5, 0.5, 0.25, 1 / 3),  # arcsine law: (2/π)·asin(√x)
    ],
)
def test_incomplete_beta_closed_forms(a: float, b: float, x: float, expected: float) -> None:
    assert incomplete_beta(a, b, x) == pytest.approx(expected, rel=1e-13)


def test_incomplete_beta_domain() -> None:
    assert incomplete_beta(2, 3, 0.0) == 0.0
    assert incomplete_beta(2, 3, 1.0) == 1.0
    with pytest.raises(ValueError, match="positive"):
        incomplete_beta(0, 1, 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        incomplete_beta(1, 1, 1.5)


@pytest.mark.parametrize(
    ("p", "df", "table"),
    [  # two-sided critical values as printed in t tables (3 decimals)
        (0.975, 1, 12.706),
        (0.975, 2, 4.303),
        (0.975, 5, 2.571),
        (0.975, 10, 2.228),
        (0.975, 30, 2.042),
        (0.975, 120, 1.980),
        (0.95, 5, 2.015),
        (0.95, 20, 1.725),
        (0.995, 20, 2.845),
        (0.995, 3, 5.841),
        (0.9995, 10, 4.587),
        (0.90, 15, 1.341),
    ],
)
def test_t_quantiles_match_the_tables(p: float, df: float, table: float) -> None:
    quantile = t_quantile(p, df)
    assert round(quantile, 3) == table
    assert t_cdf(quantile, df) == pytest.approx(p, abs=1e-13)
    assert t_quantile(1 - p, df) == pytest.approx(-quantile, rel=1e-13)


def test_t_quantiles_to_more_digits() -> None:
    # the same quantiles from 30-digit arithmetic (mpmath's betainc and findroot)
    assert t_quantile(0.975, 10) == pytest.approx(2.228138851986274, rel=1e-13)
    assert t_quantile(0.975, 1) == pytest.approx(12.70620473617469, rel=1e-13)
    assert t_quantile(0.95, 5) == pytest.approx(2.015048373333024, rel=1e-13)


def test_t_cdf_closed_forms() -> None:
    for t in (-30.0, -2.0, -0.5, 0.0, 0.7, 3.0, 100.0):
        cauchy = 0.5 + math.atan(t) / math.pi  # df = 1
        two = 0.5 + t / (2 * math.sqrt(2 + t * t))  # df = 2
        assert t_cdf(t, 1) == pytest.approx(cauchy, rel=1e-13, abs=1e-300)
        assert t_cdf(t, 2) == pytest.approx(two, rel=1e-13, abs=1e-300)
    assert t_cdf(0.0, 7.3) == 0.5
    assert t_cdf(math.inf, 3) == 1.0
    assert t_cdf(-math.inf, 3) == 0.0


def test_t_approaches_the_normal_distribution_with_many_degrees_of_freedom() -> None:
    z = 1.959963984540054
    for df in (1e5, 1e6, 1e8, 1e12):
        # the quantile's expansion in 1/df (Cornish-Fisher): exact to rounding at these df
        expected = z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        assert t_quantile(0.975, df) == pytest.approx(expected, rel=1e-12)
    assert t_quantile(0.975, math.inf) == pytest.approx(z, rel=1e-15)
    assert t_cdf(-40.0, math.inf) == pytest.approx(0.5 * math.erfc(40 / math.sqrt(2)), rel=1e-14)


# --- intervals --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [  # Newcombe (1998), Statistics in Medicine 17:857-872, table I, the Wilson score method
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_newcombe(successes: int, n: int, low: float, high: float) -> None:
    interval = wilson_interval(successes, n)
    assert (round(interval.low, 4), round(interval.high, 4)) == (low, high)


def test_wilson_interval_by_hand_and_edges() -> None:
    # 0 of 20: the upper bound is z²/(n + z²) exactly
    z2 = 1.959963984540054**2
    assert wilson_interval(0, 20).high == pytest.approx(z2 / (20 + z2), rel=1e-14)
    assert wilson_interval(20, 20).low == pytest.approx(20 / (20 + z2), rel=1e-14)
    assert wilson_interval(0, 0) == Interval(0.0, 1.0)
    half = wilson_interval(50, 100)
    assert half.low + half.high == pytest.approx(1.0)
    assert wilson_interval(50, 100, confidence=0.99).low < half.low
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(5, 4)


def test_newcombe_difference_interval() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873-890: 56/70 vs 48/80, method 10: 0.0524 to 0.3339
    interval = newcombe_interval(48, 80, 56, 70)
    assert (round(interval.low, 4), round(interval.high, 4)) == (0.0524, 0.3339)


def test_mean_interval_is_the_t_interval() -> None:
    sample = Sample.of([2.0, 4.0, 4.0, 5.0, 7.0, 8.0])  # mean 5, variance 4.8
    assert (sample.n, sample.mean, sample.variance) == (6, 5.0, pytest.approx(4.8))
    interval = mean_interval(sample)
    assert interval is not None
    half = 2.5705818366147395 * math.sqrt(4.8 / 6)  # qt(0.975, 5)
    assert (interval.low, interval.high) == (pytest.approx(5 - half), pytest.approx(5 + half))
    assert mean_interval(Sample.of([3.0])) is None


def test_sample_from_sums_equals_sample_of_values() -> None:
    values = [random.Random(4).gauss(1000, 3) for _ in range(500)]
    direct = Sample.of(values)
    summed = Sample.from_sums(len(values), sum(values), sum(v * v for v in values))
    assert summed.mean == pytest.approx(direct.mean, rel=1e-14)
    assert summed.variance == pytest.approx(direct.variance, rel=1e-6)
    assert Sample.from_sums(1, 5.0, 25.0).variance == 0.0
    assert Sample.from_sums(0, 0.0, 0.0).n == 0


# --- tests ------------------------------------------------------------------------------------------


def test_two_proportion_z_test_worked_by_hand() -> None:
    # 45/100 vs 60/100: pooled rate 105/200 = 0.525, standard error √(0.525·0.475·(1/100 + 1/100))
    # = √0.0049875 = 0.0706222, z = 0.15 / 0.0706222 = 2.12398, p = 2·(1 - Φ(2.12398)) = 0.03367
    result = two_proportion_z_test(45, 100, 60, 100)
    assert result.difference == pytest.approx(0.15)
    assert result.statistic == pytest.approx(0.15 / math.sqrt(0.525 * 0.475 * 0.02), rel=1e-12)
    assert result.statistic == pytest.approx(2.12398, abs=1e-5)
    assert result.p_value == pytest.approx(0.033672, abs=1e-6)
    assert result.df is None
    assert two_proportion_z_test(60, 100, 45, 100).statistic == pytest.approx(-result.statistic)


def test_two_proportion_z_test_equals_the_chi_squared_test() -> None:
    # the pooled z² is Pearson's chi-squared of the 2×2 table (no continuity correction), and its
    # p-value that of chi-squared with 1 degree of freedom: P(χ²₁ > x) = erfc(√(x/2))
    table = [[83, 3], [90, 3]]
    rows, columns, total = [sum(row) for row in table], [83 + 90, 3 + 3], 179
    chi_squared = sum(
        (table[i][j] - rows[i] * columns[j] / total) ** 2 / (rows[i] * columns[j] / total)
        for i in range(2)
        for j in range(2)
    )
    result = two_proportion_z_test(83, 86, 90, 93)
    assert result.statistic**2 == pytest.approx(chi_squared, rel=1e-12)
    assert result.p_value == pytest.approx(math.erfc(math.sqrt(chi_squared / 2)), rel=1e-12)


def test_two_proportion_z_test_edges() -> None:
    assert two_proportion_z_test(0, 10, 0, 30).p_value == 1.0  # no events at all: no evidence
    assert two_proportion_z_test(10, 10, 30, 30).p_value == 1.0
    far = two_proportion_z_test(0, 5000, 2500, 5000)
    assert 0 < far.p_value < 1e-300 or far.p_value == 0.0  # no loss of the far tail to 1 - Φ
    with pytest.raises(ValueError, match="at least one"):
        two_proportion_z_test(0, 0, 1, 2)
    interval = two_proportion_z_test(48, 80, 56, 70, confidence=0.95).interval
    assert interval is not None
    assert round(interval.low, 4) == 0.0524


def test_z_test_validity_needs_five_expected_of_each_outcome() -> None:
    assert z_test_is_valid(10, 100, 14, 100)  # pooled 12%: 12 expected events per group
    assert not z_test_is_valid(1, 100, 3, 100)  # pooled 2%: 2 expected
    assert not z_test_is_valid(0, 0, 3, 100)


def test_welch_t_test_matches_r_on_the_sleep_data() -> None:
    # R: t.test(extra ~ group, data = sleep)
    #   t = -1.8608, df = 17.776, p-value = 0.07939
    #   95 percent confidence interval: -3.3654832  0.2054832
    result = welch_t_test(Sample.of(SLEEP_2), Sample.of(SLEEP_1), confidence=0.95)
    assert result.difference == pytest.approx(0.75 - 2.33)
    assert result.statistic == pytest.approx(-1.8608, abs=5e-5)
    assert result.df == pytest.approx(17.776, abs=5e-4)
    assert result.p_value == pytest.approx(0.07939, abs=5e-6)
    assert result.interval is not None
    assert result.interval.low == pytest.approx(-3.3654832, abs=5e-8)
    assert result.interval.high == pytest.approx(0.2054832, abs=5e-8)


def test_welch_t_test_degrees_of_freedom_by_hand() -> None:
    # unequal sizes and spreads: s²/n = 4/5 = 0.8 and 1/20 = 0.05
    a, b = Sample(5, 10.0, 4.0), Sample(20, 12.0, 1.0)
    result = welch_t_test(a, b)
    assert result.df == pytest.approx(0.85**2 / (0.8**2 / 4 + 0.05**2 / 19))
    assert result.statistic == pytest.approx(2.0 / math.sqrt(0.85))
    assert result.p_value == pytest.approx(2 * t_cdf(-2.0 / math.sqrt(0.85), result.df or 0))
    assert welch_t_test(Sample(3, 1.0, 0.0), Sample(3, 1.0, 0.0)).p_value == 1.0
    with pytest.raises(ValueError, match="two values"):
        welch_t_test(Sample(1, 1.0, 0.0), b)


def test_bootstrap_is_seeded_and_agrees_with_welch() -> None:
    rng = random.Random(11)
    a = [rng.gauss(3.0, 1.0) for _ in range(200)]
    b = [rng.gauss(3.4, 1.0) for _ in range(200)]
    first = bootstrap_mean_difference(a, b, seed=7)
    assert first == bootstrap_mean_difference(a, b, seed=7)
    assert first != bootstrap_mean_difference(a, b, seed=8)
    welch = welch_t_test(Sample.of(a), Sample.of(b), confidence=0.95)
    assert welch.interval is not None
    assert first.difference == pytest.approx(welch.difference)
    assert first.interval.low == pytest.approx(welch.interval.low, abs=0.03)
    assert first.interval.high == pytest.approx(welch.interval.high, abs=0.03)
    assert first.p_value == pytest.approx(welch.p_value, abs=0.01)
    same = bootstrap_mean_difference(a, a, seed=1)
    assert same.interval.contains(0.0)
    assert same.p_value > 0.5
    with pytest.raises(ValueError, match="at least one value"):
        bootstrap_mean_difference([], b)


# --- sample sizes -----------------------------------------------------------------------------------


def test_sample_size_for_proportions() -> None:
    # by hand: 50% vs 60%, p̄ = 0.55: (1.95996·√(2·0.55·0.45) + 0.84162·√(0.25 + 0.24))² / 0.01
    #        = (1.37898 + 0.58913)² / 0.01 = 387.3, so 388 per group
    assert sample_size_proportions(0.5, 0.6) == 388
    assert sample_size_proportions(0.6, 0.5) == 388
    # 10% vs 15%: the textbook 686 per group (Fleiss, without continuity correction)
    assert sample_size_proportions(0.10, 0.15) == 686
    assert sample_size_proportions(0.3, 0.3) is None
    # a stricter level or more power needs more
    assert sample_size_proportions(0.5, 0.6, alpha=0.025) > 388  # type: ignore[operator]
    assert sample_size_proportions(0.5, 0.6, power=0.9) > 388  # type: ignore[operator]


@pytest.mark.parametrize(("effect", "per_group"), [(0.2, 394), (0.5, 64), (0.8, 26)])
def test_sample_size_for_means_matches_power_tables(effect: float, per_group: int) -> None:
    # G*Power, two-tailed t-test of two independent means, alpha 0.05, power 0.8: Cohen's d = 0.2,
    # 0.5, 0.8 need 394, 64 and 26 per group
    assert sample_size_means(effect, 1.0, 1.0) == per_group
    assert sample_size_means(effect * 3, 9.0, 9.0) == per_group  # only the standardised effect matters


def test_sample_size_for_means_edges_and_more_needed() -> None:
    assert sample_size_means(0.0, 1.0, 1.0) is None
    assert sample_size_means(1.0, 0.0, 0.0) == 2
    assert more_needed(388, 100, 250) == 288
    assert more_needed(388, 400, 500) == 0
    assert more_needed(None, 10, 10) is None
    with pytest.raises(ValueError, match="probability"):
        sample_size_means(1.0, 1.0, 1.0, alpha=0.0)


# --- paired comparisons -----------------------------------------------------------------------------

# Darwin's Zea mays data as Fisher used it (The Design of Experiments, 1935, section 21): height of the
# cross-fertilised minus the self-fertilised plant of each of 15 pairs, in eighths of an inch. Fisher
# counted 863 of the 2^15 sign patterns with a sum at least the observed 314: one-sided 863/32768, and
# two-sided twice that, 5.27%.
DARWIN = [49, -67, 8, 16, 6, 23, 28, 41, 14, 29, 56, 24, 75, 60, -48]


def test_sign_flip_test_reproduces_fisher_on_darwins_plants() -> None:
    exact = {"resamples": 2**15}
    assert sign_flip_test(DARWIN, alternative="greater", **exact) == 863 / 32768
    assert sign_flip_test(DARWIN, **exact) == 1726 / 32768
    assert sign_flip_test([-value for value in DARWIN], alternative="less", **exact) == 863 / 32768
    sampled = sign_flip_test(DARWIN, resamples=20_000, seed=3)  # fewer resamples than patterns: Monte Carlo
    assert sampled == sign_flip_test(DARWIN, resamples=20_000, seed=3)
    assert sampled == pytest.approx(1726 / 32768, abs=0.005)


def test_sign_flip_test_worked_by_hand() -> None:
    # [1, 2, 3]: the 8 signed sums are ±6, ±4, ±2, 0, 0; |sum| >= 6 twice, sum >= 6 once
    assert sign_flip_test([1.0, 2.0, 3.0]) == 2 / 8
    assert sign_flip_test([1.0, 2.0, 3.0], alternative="greater") == 1 / 8
    assert sign_flip_test([1.0, 2.0, 3.0], alternative="less") == 1.0
    # against a null of 2 the centred values are -1, 0, 1: their sum 0 is matched by every pattern
    assert sign_flip_test([1.0, 2.0, 3.0], null=2.0) == 1.0
    # centred on 0.2 the sums are ±0.2 and four near 0 (-2.8e-17 observed, in floating point): the
    # near-zero ones tie with the observed sum instead of falling on either side by rounding
    assert sign_flip_test([0.1, 0.2, 0.3], null=0.2) == 1.0
    assert sign_flip_test([0.1, 0.2, 0.3], null=0.2, alternative="greater") == 6 / 8
    assert sign_flip_test([0.0] * 40) == 1.0  # identical runs: never significant
    # 40 equal improvements: only the identity pattern reaches the sum; Monte Carlo floor 1/(R+1)
    assert sign_flip_test([0.5] * 40, resamples=999) == 1 / 1000
    with pytest.raises(ValueError, match="at least one"):
        sign_flip_test([])


def test_bootstrap_mean_interval_worked_by_hand() -> None:
    # resampled means of [0, 1] are 0, 0.5, 1 with chances 1/4, 1/2, 1/4: the 2.5% and 97.5% points
    # are 0 and 1
    assert bootstrap_mean_interval([0.0, 1.0], seed=5) == Interval(0.0, 1.0)
    constant = bootstrap_mean_interval([0.3] * 10)
    assert constant.low == constant.high == pytest.approx(0.3)
    with pytest.raises(ValueError, match="at least 100 resamples"):
        bootstrap_mean_interval([1.0], resamples=10)


def test_paired_bootstrap_is_narrower_than_unpaired_for_shared_difficulty() -> None:
    rng = random.Random(4)
    difficulty = [rng.random() for _ in range(300)]
    a = [d + rng.gauss(0, 0.05) for d in difficulty]
    b = [d + 0.02 + rng.gauss(0, 0.05) for d in difficulty]
    paired = paired_bootstrap(a, b, seed=1)
    unpaired = bootstrap_mean_difference(a, b, seed=1)
    assert paired == paired_bootstrap(a, b, seed=1)
    assert paired.difference == pytest.approx(unpaired.difference)
    assert paired.interval.high - paired.interval.low < (unpaired.interval.high - unpaired.interval.low) / 3
    assert paired.interval.low > 0
    assert unpaired.interval.low <= 0
    # the paired interval agrees with the t interval of the differences, which is right for this much data
    t = mean_interval(Sample.of([y - x for x, y in zip(a, b, strict=True)]))
    assert t is not None
    assert paired.interval.low == pytest.approx(t.low, abs=0.002)
    assert paired.interval.high == pytest.approx(t.high, abs=0.002)
    assert paired_bootstrap(a, a).interval == Interval(0.0, 0.0)
    with pytest.raises(ValueError, match="paired"):
        paired_bootstrap(a, b[:-1])

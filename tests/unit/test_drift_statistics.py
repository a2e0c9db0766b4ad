"""The statistics of drift checks against known values, brute force and hand-worked examples."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from llmops.drift.statistics import (
    chi_square_homogeneity,
    chi_square_sf,
    energy_test,
    fisher_exact,
    holm,
    kmeans,
    kolmogorov_sf,
    ks_2samp,
    permutation_p_value,
    psi,
    psi_of_shares,
    quantile,
    regularized_gamma_q,
)
from llmops.stats import two_proportion_z_test


def test_ks_exact_matches_r_for_separated_samples() -> None:
    # R: ks.test(1:3, 4:6)$p.value == 0.1; ks.test(1:4, 5:8)$p.value == 0.02857143
    assert ks_2samp([1, 2, 3], [4, 5, 6]).p_value == pytest.approx(0.1)
    assert ks_2samp([1, 2, 3, 4], [5, 6, 7, 8]).p_value == pytest.approx(2 / 70)
    assert ks_2samp([1, 2, 3, 4], [5, 6, 7, 8]).statistic == 1.0


def _brute_force_p(a: list[float], b: list[float]) -> float:
    """P(D >= observed) over every split of the pooled values (the permutation distribution)."""
    observed = ks_2samp(a, b).statistic
    pooled, hits, total = a + b, 0, 0
    for chosen in itertools.combinations(range(len(pooled)), len(a)):
        rest = set(chosen)
        first = [pooled[i] for i in chosen]
        second = [pooled[i] for i in range(len(pooled)) if i not in rest]
        total += 1
        hits += ks_2samp(first, second, method="asymptotic").statistic >= observed - 1e-12
    return hits / total


@pytest.mark.parametrize(("n", "m", "shift"), [(4, 5, 0.3), (5, 5, 0.0), (6, 4, 0.5), (7, 6, 0.8)])
def test_ks_exact_p_value_counts_every_split(n: int, m: int, shift: float) -> None:
    rng = random.Random(n * 10 + m)
    a = [rng.random() for _ in range(n)]
    b = [rng.random() + shift for _ in range(m)]
    result = ks_2samp(a, b)
    assert result.method == "exact"
    assert result.p_value == pytest.approx(_brute_force_p(a, b), abs=1e-12)


def test_kolmogorov_distribution_critical_values() -> None:
    # the classical table of the Kolmogorov distribution: P(K > 1.224) = 0.10, 1.358 -> 0.05, 1.628 -> 0.01
    assert kolmogorov_sf(1.2238) == pytest.approx(0.10, abs=2e-4)
    assert kolmogorov_sf(1.3581) == pytest.approx(0.05, abs=1e-4)
    assert kolmogorov_sf(1.6276) == pytest.approx(0.01, abs=1e-4)
    assert kolmogorov_sf(0.0) == 1.0
    assert kolmogorov_sf(0.3) == pytest.approx(1.0, abs=1e-4)
    # both series agree where they meet
    assert kolmogorov_sf(1.0 - 1e-9) == pytest.approx(kolmogorov_sf(1.0), abs=1e-8)


def test_ks_asymptotic_is_close_to_exact_for_moderate_samples() -> None:
    rng = random.Random(7)
    a = [rng.gauss(0, 1) for _ in range(80)]
    b = [rng.gauss(0.4, 1) for _ in range(130)]
    exact, asymptotic = ks_2samp(a, b, method="exact"), ks_2samp(a, b, method="asymptotic")
    assert exact.statistic == asymptotic.statistic
    assert asymptotic.p_value == pytest.approx(exact.p_value, rel=0.15)
    assert ks_2samp(a, b).method == "asymptotic"  # n·m = 10,400 > 10,000
    assert ks_2samp(a[:50], b[:50]).method == "exact"


def test_ks_of_one_sample_with_itself_is_no_evidence() -> None:
    values = [3.0, 1.0, 2.0, 2.0, 5.0]
    result = ks_2samp(values, list(values))
    assert result.statistic == 0.0
    assert result.p_value == 1.0
    with pytest.raises(ValueError, match="at least one value"):
        ks_2samp([], [1.0])


def test_quantile_interpolates() -> None:
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert quantile([10.0], 0.9) == 10.0


def test_psi_by_hand() -> None:
    # shares 0.5/0.5 -> 0.8/0.2: 0.3·ln(1.6) + 0.3·ln(2.5)
    assert psi_of_shares([0.5, 0.5], [0.8, 0.2]) == pytest.approx(0.3 * math.log(1.6) + 0.3 * math.log(2.5))
    same = psi([float(v) for v in range(100)], [float(v) for v in range(100)])
    assert same.value == 0.0
    assert len(same.edges) == 9  # deciles of the reference
    assert same.reference == pytest.approx([0.1] * 10)


def test_psi_bins_come_from_the_reference_and_empty_bins_stay_finite() -> None:
    result = psi([float(v) for v in range(100)], [float(v) for v in range(50, 150)])
    assert result.current[:5] == [0.0] * 5
    assert result.current[-1] == pytest.approx(0.6)
    assert math.isfinite(result.value)
    assert result.value > 0.25  # a large shift by the rule of thumb
    ties = psi([1.0] * 50 + [2.0] * 50, [1.0] * 50 + [2.0] * 50)
    assert len(ties.reference) == 2  # tied quantiles merge bins


def test_chi_square_distribution_known_values() -> None:
    assert chi_square_sf(3.841459, 1) == pytest.approx(0.05, abs=1e-6)
    assert chi_square_sf(5.991465, 2) == pytest.approx(0.05, abs=1e-6)
    assert chi_square_sf(23.209251, 10) == pytest.approx(0.01, abs=1e-6)
    assert chi_square_sf(4.0, 2) == pytest.approx(math.exp(-2.0))  # df 2: exp(-x/2)
    assert chi_square_sf(0.0, 3) == 1.0
    assert regularized_gamma_q(1.0, 3.0) == pytest.approx(math.exp(-3.0))
    assert regularized_gamma_q(2.5, 0.5) == pytest.approx(1 - 0.0374342268, abs=1e-8)


def test_chi_square_of_a_two_by_two_table_is_the_squared_z_test() -> None:
    result = chi_square_homogeneity({"a": 30, "b": 70}, {"a": 50, "b": 50})
    z = two_proportion_z_test(30, 100, 50, 100)
    assert result.df == 1
    assert result.statistic == pytest.approx(z.statistic**2)
    assert result.p_value == pytest.approx(z.p_value)


def test_chi_square_merges_rare_categories() -> None:
    result = chi_square_homogeneity({"en": 90, "de": 8, "fr": 2}, {"en": 60, "de": 35, "fr": 3, "it": 2})
    assert result.categories == ["en", "de", "other"]
    assert result.df == 2
    assert result.p_value < 1e-4
    alone = chi_square_homogeneity({"en": 90}, {"en": 60})
    assert (alone.df, alone.p_value) == (0, 1.0)


def test_fisher_exact_lady_tasting_tea() -> None:
    assert fisher_exact(3, 4, 1, 4) == pytest.approx(0.4857143, abs=1e-6)  # Fisher's table, two-sided
    assert fisher_exact(4, 4, 0, 4) == pytest.approx(2 / 70)
    assert fisher_exact(0, 10, 0, 10) == pytest.approx(1.0)


def test_holm_adjusts_step_down() -> None:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5]) == [0.5]
    assert holm([]) == []


def test_permutation_p_value_counts_ties_and_is_never_zero() -> None:
    assert permutation_p_value(5.0, [1.0, 2.0, 3.0]) == 0.25
    assert permutation_p_value(2.0, [1.0, 2.0, 3.0]) == 0.75
    assert permutation_p_value(0.0, [1.0, 2.0]) == 1.0


def test_energy_statistic_matches_the_definition() -> None:
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(12, 3)), rng.normal(0.5, 1, size=(9, 3))

    def mean_distance(a: object, b: object) -> float:
        return float(np.mean([[np.linalg.norm(p - q) for q in b] for p in a]))  # type: ignore[attr-defined]

    expected = 2 * mean_distance(x, y) - mean_distance(x, x) - mean_distance(y, y)
    result = energy_test(x, y, permutations=99, seed=3)
    assert result.statistic == pytest.approx(expected)
    assert result.coefficient == pytest.approx(expected / (2 * mean_distance(x, y)))
    assert energy_test(x, y, permutations=99, seed=3) == result  # seeded


def test_energy_permutation_p_value_bounds() -> None:
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(2)
    apart = energy_test(rng.normal(size=(30, 4)), rng.normal(5, 1, size=(30, 4)), permutations=199)
    assert apart.p_value == 1 / 200  # the smallest a permutation test can give
    p_values = [
        energy_test(rng.normal(size=(25, 4)), rng.normal(size=(25, 4)), permutations=99, seed=s).p_value
        for s in range(30)
    ]
    assert all(1 / 100 <= p <= 1.0 for p in p_values)
    assert sum(p < 0.05 for p in p_values) <= 5  # about 5% expected under the null
    assert 0.25 < sum(p_values) / len(p_values) < 0.75  # roughly uniform


def test_kmeans_finds_separated_groups() -> None:
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(4)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = np.vstack([centre + rng.normal(scale=0.3, size=(20, 2)) for centre in centres])
    labels, centroids = kmeans(points, 3, seed=0)
    groups = [set(labels[i * 20 : (i + 1) * 20].tolist()) for i in range(3)]
    assert all(len(group) == 1 for group in groups)
    assert len(set.union(*groups)) == 3
    assert sorted(np.round(centroids).tolist()) == sorted(centres.tolist())

"""The statistics of drift checks: two-sample tests written out, no scipy.

Pure Python (``math`` only) for what works on numbers and counts, so that length, language and rate
checks run on a base install; numpy, imported inside the functions that need it, for what works on
embeddings (an energy-distance permutation test, k-means).

- :func:`ks_2samp`: the two-sample Kolmogorov–Smirnov test. The statistic is the largest gap between
  the two empirical CDFs. Its p-value is exact for small samples (``n·m <= 10,000``: lattice paths
  counted with the recurrence of Hodges, 1958) and otherwise from the asymptotic Kolmogorov
  distribution with Stephens' small-sample correction, ``λ = (√nₑ + 0.12 + 0.11/√nₑ)·D``, where
  ``nₑ = n·m/(n+m)``. Both assume continuous data: with ties (lengths are integers) the test is
  conservative, its p-values too large rather than too small.
- :func:`psi`: the population stability index over fixed quantile bins of the reference,
  ``Σ (c - r)·ln(c/r)``; empty bins get a floor share so that it stays finite. A rule of thumb reads
  below 0.1 as stable, 0.1 to 0.25 as a moderate shift and above 0.25 as a large one. No p-value.
- :func:`chi_square_homogeneity`: the chi-square test that two samples share category shares, with
  rare categories merged so that every expected count is at least 5; its p-value from the
  regularised upper incomplete gamma function (:func:`chi_square_sf`).
- :func:`energy_test`: the energy distance between two samples of vectors (Székely and Rizzo) with a
  seeded permutation-test p-value, ``(1 + #{permuted >= observed}) / (1 + permutations)``, which is
  never below ``1/(1 + permutations)``.
- :func:`kmeans`: Lloyd's algorithm with k-means++ seeding, seeded.
- :func:`holm`: Holm's step-down adjustment of several p-values (family-wise error at most alpha).

Errors: :class:`ValueError` for arguments outside a function's domain (an empty sample, fewer than
one bin).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "ChiSquareResult",
    "EnergyResult",
    "KSResult",
    "PSIResult",
    "chi_square_homogeneity",
    "chi_square_sf",
    "energy_test",
    "fisher_exact",
    "holm",
    "kmeans",
    "kolmogorov_sf",
    "ks_2samp",
    "ks_exact_sf",
    "permutation_p_value",
    "psi",
    "quantile",
    "regularized_gamma_q",
]

EXACT_KS_MAX_PRODUCT = 10_000  # n·m up to which the KS p-value is exact
PSI_FLOOR = 1e-4  # the share an empty bin counts as
MIN_EXPECTED = 5.0  # chi-square: the smallest expected count a category may have...
MIN_EXPECTED_OTHER = 1.0  # ...and the rare ones merged into "other" (Cochran: every cell at least 1)


# --- Kolmogorov–Smirnov -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KSResult:
    statistic: float  # D, the largest gap between the two empirical CDFs
    p_value: float
    location: float  # a value where the gap is largest
    method: str  # "exact" or "asymptotic"


def ks_2samp(a: Sequence[float], b: Sequence[float], *, method: str = "auto") -> KSResult:
    """Two-sided two-sample Kolmogorov–Smirnov test of "a and b come from one distribution".

    ``method``: ``exact``, ``asymptotic`` or ``auto`` (exact when ``len(a)·len(b) <= 10,000``).
    """
    if not a or not b:
        raise ValueError("ks_2samp: both samples need at least one value")
    if method not in ("auto", "exact", "asymptotic"):
        raise ValueError(f"ks_2samp: method must be auto, exact or asymptotic, not {method!r}")
    first, second = sorted(a), sorted(b)
    n, m = len(first), len(second)
    gap, location = 0, first[0]
    for value in sorted({*first, *second}):
        # |F_a - F_b|·n·m as an integer, so that equal gaps compare equal
        here = abs(bisect_right(first, value) * m - bisect_right(second, value) * n)
        if here > gap:
            gap, location = here, value
    statistic = gap / (n * m)
    exact = method == "exact" or (method == "auto" and n * m <= EXACT_KS_MAX_PRODUCT)
    if exact:
        p_value = ks_exact_sf(gap, n, m)
    else:
        effective = n * m / (n + m)
        root = math.sqrt(effective)
        p_value = kolmogorov_sf((root + 0.12 + 0.11 / root) * statistic)
    return KSResult(statistic, min(1.0, max(0.0, p_value)), location, "exact" if exact else "asymptotic")


def ks_exact_sf(gap: int, n: int, m: int) -> float:
    """P(D·n·m >= ``gap``) for samples of sizes n and m from one continuous distribution.

    Counts the monotone lattice paths from (0, 0) to (n, m) that stay strictly inside
    ``|i·m - j·n| < gap``, as a share of all paths: ``u(i, j) = u(i-1, j)·i/(i+j) + u(i, j-1)·j/(i+j)``
    keeps each count divided by ``C(i+j, i)``, so nothing overflows.
    """
    if gap <= 0:
        return 1.0
    row = [0.0] * (m + 1)
    for j in range(m + 1):  # i = 0
        row[j] = 1.0 if j * n < gap and (j == 0 or row[j - 1] > 0.0) else 0.0
    for i in range(1, n + 1):
        im = i * m
        row[0] = row[0] if im < gap else 0.0
        for j in range(1, m + 1):
            if abs(im - j * n) >= gap:
                row[j] = 0.0
            else:
                row[j] = (row[j] * i + row[j - 1] * j) / (i + j)
    return 1.0 - row[m]


def kolmogorov_sf(x: float) -> float:
    """P(K > x) for Kolmogorov's distribution (the limit of √n·D)."""
    if x <= 0.0:
        return 1.0
    if x < 1.0:  # the theta-function form converges fast for small x
        total = sum(math.exp(-((2 * j - 1) ** 2) * math.pi**2 / (8.0 * x * x)) for j in range(1, 8))
        return 1.0 - math.sqrt(2.0 * math.pi) / x * total
    total = 0.0
    for j in range(1, 101):
        term = math.exp(-2.0 * j * j * x * x)
        total += term if j % 2 else -term
        if term < 1e-17:
            break
    return max(0.0, 2.0 * total)


# --- quantiles and PSI --------------------------------------------------------------------------------


def quantile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile of sorted values, interpolating linearly between order statistics."""
    if not ordered:
        raise ValueError("quantile: no values")
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class PSIResult:
    value: float
    edges: list[float]  # inner bin edges; bin k holds values v with edges[k-1] < v <= edges[k]
    reference: list[float]  # share of each bin
    current: list[float]


def psi(reference: Sequence[float], current: Sequence[float], *, bins: int = 10) -> PSIResult:
    """Population stability index of ``current`` against ``reference`` over the reference's quantile
    bins (deciles by default; tied quantiles merge bins)."""
    if bins < 1:
        raise ValueError("psi: bins must be at least 1")
    if not reference or not current:
        raise ValueError("psi: both samples need at least one value")
    ordered = sorted(reference)
    # order statistics, not interpolations: with tied values (lengths) no bin falls between two of them
    edges = sorted({ordered[max(0, math.ceil(k / bins * len(ordered)) - 1)] for k in range(1, bins)})
    edges = [edge for edge in edges if edge < ordered[-1]]
    ref_shares, cur_shares = _bin_shares(ordered, edges), _bin_shares(sorted(current), edges)
    return PSIResult(psi_of_shares(ref_shares, cur_shares), edges, ref_shares, cur_shares)


def _bin_shares(ordered: Sequence[float], edges: Sequence[float]) -> list[float]:
    cuts = [0, *(bisect_right(ordered, edge) for edge in edges), len(ordered)]
    return [(cuts[k + 1] - cuts[k]) / len(ordered) for k in range(len(cuts) - 1)]


def psi_of_shares(reference: Sequence[float], current: Sequence[float], floor: float = PSI_FLOOR) -> float:
    """``Σ (c - r)·ln(c/r)`` over bins, each share at least ``floor``."""
    total = 0.0
    for ref, cur in zip(reference, current, strict=True):
        ref, cur = max(ref, floor), max(cur, floor)
        total += (cur - ref) * math.log(cur / ref)
    return total


# --- chi-square ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChiSquareResult:
    statistic: float
    df: int
    p_value: float
    categories: list[str]  # the categories tested, after merging rare ones into "other"


def chi_square_homogeneity(
    reference: Mapping[str, int], current: Mapping[str, int], *, other: str = "other"
) -> ChiSquareResult:
    """Chi-square test (2 × k table) that both samples have the same category shares.

    Categories whose smallest expected count is under 5 are merged into ``other``, rarest first,
    until every one left expects 5 or more and ``other`` at least 1 (Cochran's rule), or two are left.
    One category left: nothing to test (p = 1).
    """
    n_ref, n_cur = sum(reference.values()), sum(current.values())
    if n_ref <= 0 or n_cur <= 0:
        raise ValueError("chi_square_homogeneity: both samples need at least one count")
    pooled = {name: reference.get(name, 0) + current.get(name, 0) for name in {*reference, *current}}
    smaller, total = min(n_ref, n_cur), n_ref + n_cur
    group = {name: name for name in pooled}
    kept = {name: count for name, count in pooled.items() if count > 0}
    while len(kept) > 2:
        rarest = min((name for name in kept if name != other), key=lambda name: (kept[name], name))
        if smaller * kept[rarest] / total >= MIN_EXPECTED:
            if other not in kept or smaller * kept[other] / total >= MIN_EXPECTED_OTHER:
                break
            # "other" expects less than 1: it takes the rarest category left
        kept[other] = kept.get(other, 0) + kept.pop(rarest)
        for name, target in group.items():
            if target == rarest:
                group[name] = other
    if len(kept) < 2:
        return ChiSquareResult(0.0, 0, 1.0, list(kept))
    statistic = 0.0
    for sample, size in ((reference, n_ref), (current, n_cur)):
        observed = dict.fromkeys(kept, 0)
        for name, count in sample.items():
            if count > 0:
                observed[group[name]] += count
        for name, pooled_count in kept.items():
            expected = size * pooled_count / total
            statistic += (observed[name] - expected) ** 2 / expected
    df = len(kept) - 1
    return ChiSquareResult(statistic, df, chi_square_sf(statistic, df), sorted(kept, key=lambda n: -kept[n]))


def chi_square_sf(x: float, df: int) -> float:
    """P(X > x) for the chi-square distribution with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError("chi_square_sf: df must be at least 1")
    if x <= 0.0:
        return 1.0
    return regularized_gamma_q(df / 2.0, x / 2.0)


def regularized_gamma_q(a: float, x: float) -> float:
    """Q(a, x) = Γ(a, x)/Γ(a): a power series below ``x = a + 1``, a continued fraction (modified Lentz)
    above it."""
    if a <= 0.0 or x < 0.0:
        raise ValueError("regularized_gamma_q: needs a > 0 and x >= 0")
    if x == 0.0:
        return 1.0
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        denominator = a
        for _ in range(1000):
            denominator += 1.0
            term *= x / denominator
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300
    b = x + 1.0 - a
    c, d = 1.0 / tiny, 1.0 / b
    fraction = d
    for k in range(1, 1000):
        an = -k * (k - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        step = d * c
        fraction *= step
        if abs(step - 1.0) < 1e-15:
            break
    return min(1.0, math.exp(log_front) * fraction)


# --- two rates -----------------------------------------------------------------------------------------


def fisher_exact(successes_a: int, n_a: int, successes_b: int, n_b: int) -> float:
    """Two-sided p-value of Fisher's exact test of a 2 × 2 table: the probability, with the margins
    fixed, of a table at most as likely as the one observed (for counts too small for a z-test)."""
    if not (0 <= successes_a <= n_a and 0 <= successes_b <= n_b):
        raise ValueError("fisher_exact: successes must be between 0 and the number of trials")
    successes, total = successes_a + successes_b, n_a + n_b
    low, high = max(0, successes - n_b), min(successes, n_a)

    def log_pmf(k: int) -> float:  # hypergeometric: k of the successes fall in group a
        return _log_choose(n_a, k) + _log_choose(n_b, successes - k) - _log_choose(total, successes)

    observed = log_pmf(successes_a)
    p_value = sum(
        math.exp(value) for value in (log_pmf(k) for k in range(low, high + 1)) if value <= observed + 1e-7
    )
    return min(1.0, p_value)


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


# --- multiple testing ---------------------------------------------------------------------------------


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given: reject those below alpha and the
    chance of any false alarm among them stays at most alpha."""
    order = sorted(range(len(p_values)), key=lambda index: p_values[index])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


# --- vectors: energy distance and k-means -------------------------------------------------------------


@dataclass(frozen=True)
class EnergyResult:
    statistic: float  # the energy distance 2·E|X-Y| - E|X-X'| - E|Y-Y'|
    coefficient: float  # statistic / (2·E|X-Y|), between 0 (same) and 1
    p_value: float
    permutations: int


def permutation_p_value(observed: float, permuted: Sequence[float]) -> float:
    """``(1 + #{permuted >= observed}) / (1 + len(permuted))``: a valid p-value, never 0."""
    tolerance = 1e-12 * max(1.0, abs(observed))
    exceeding = sum(1 for value in permuted if value >= observed - tolerance)
    return (1 + exceeding) / (1 + len(permuted))


def pairwise_distances(points: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Euclidean distances between the rows of ``points`` (float64)."""
    import numpy as np

    points = np.asarray(points, dtype=np.float64)
    squares = (points * points).sum(axis=1)
    squared = squares[:, None] + squares[None, :] - 2.0 * points @ points.T
    distances: npt.NDArray[Any] = np.sqrt(np.clip(squared, 0.0, None))
    return distances


def energy_test(
    x: npt.NDArray[Any], y: npt.NDArray[Any], *, permutations: int = 1000, seed: int = 0
) -> EnergyResult:
    """Energy distance between the rows of ``x`` and of ``y``, with a permutation p-value.

    Each permutation relabels the pooled rows at random (seeded); the statistic of a labelling ``z``
    comes from one product with the distance matrix, permutations in blocks.
    """
    import numpy as np

    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError("energy_test: each sample needs at least two vectors")
    distances = pairwise_distances(np.vstack([x, y]))
    total = float(distances.sum())
    labels = np.zeros(n + m)
    labels[:n] = 1.0
    statistic, cross = _energy(distances, labels[:, None], total, n, m)
    observed = float(statistic[0])
    rng = np.random.default_rng(seed)
    permuted: list[float] = []
    block = 200
    for start in range(0, permutations, block):
        count = min(block, permutations - start)
        columns = rng.permuted(np.tile(labels, (count, 1)), axis=1).T
        permuted.extend(float(value) for value in _energy(distances, columns, total, n, m)[0])
    mean_cross = float(cross[0])
    coefficient = observed / (2.0 * mean_cross) if mean_cross > 0 else 0.0
    return EnergyResult(
        observed, max(0.0, coefficient), permutation_p_value(observed, permuted), permutations
    )


def _energy(
    distances: npt.NDArray[Any], labels: npt.NDArray[Any], total: float, n: int, m: int
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Energy statistics (V-statistics) and mean cross distances of the labellings in the columns."""
    spread = distances @ labels  # row i: sum of distances from i to the first group
    within_x = (labels * spread).sum(axis=0)
    cross = spread.sum(axis=0) - within_x
    within_y = total - within_x - 2.0 * cross
    mean_cross = cross / (n * m)
    return 2.0 * mean_cross - within_x / (n * n) - within_y / (m * m), mean_cross


def kmeans(
    points: npt.NDArray[Any], k: int, *, seed: int = 0, iterations: int = 100
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Cluster the rows of ``points`` into ``k`` groups: (labels, centroids). k-means++ seeding (each
    new centre drawn with probability proportional to its squared distance from the nearest chosen
    one), then Lloyd's iterations until no label changes."""
    import numpy as np

    data = np.asarray(points, dtype=np.float64)
    if len(data) == 0:
        raise ValueError("kmeans: no points")
    k = max(1, min(k, len(data)))
    rng = np.random.default_rng(seed)
    centres = [data[rng.integers(len(data))]]
    nearest = ((data - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        weights = nearest / nearest.sum() if nearest.sum() > 0 else None
        choice = data[rng.choice(len(data), p=weights)]
        centres.append(choice)
        nearest = np.minimum(nearest, ((data - choice) ** 2).sum(axis=1))
    centroids = np.array(centres)
    labels = np.full(len(data), -1)
    for _ in range(iterations):
        squared = (data * data).sum(axis=1)[:, None] - 2.0 * data @ centroids.T
        squared += (centroids * centroids).sum(axis=1)[None, :]
        updated = squared.argmin(axis=1)
        if np.array_equal(updated, labels):
            break
        labels = updated
        for cluster in range(k):
            members = data[labels == cluster]
            if len(members):
                centroids[cluster] = members.mean(axis=0)
    return labels, centroids

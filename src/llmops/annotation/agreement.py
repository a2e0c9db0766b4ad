"""Inter-annotator agreement: how far annotators agree beyond what chance alone would give.

Pure functions over plain Python values (no numpy: queues are small and this stays importable anywhere).

- :func:`cohen_kappa`: two annotators who labelled the same items (Cohen, 1960).
- :func:`fleiss_kappa`: any number of annotators, the same number of labels on every item (Fleiss, 1971).
- :func:`krippendorff_alpha`: any number of answers per item, missing answers allowed; ``nominal`` for
  labels, ``interval`` for scores (Krippendorff, 2011, "Computing Krippendorff's Alpha-Reliability").

All three read the same way: 1.0 is perfect agreement, 0.0 what chance gives, below 0 systematic
disagreement. Each returns None when the data cannot say (no item with two answers). When every answer
is the same value the chance term is degenerate (0/0); that is reported as 1.0, since nobody disagrees.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, Literal

Metric = Literal["nominal", "interval"]


def cohen_kappa(pairs: Iterable[tuple[Hashable, Hashable]]) -> float | None:
    """Cohen's kappa from ``(first annotator's label, second annotator's label)``, one pair per item.

    kappa = (p_o - p_e) / (1 - p_e): p_o the share of items labelled alike, p_e the chance of a match
    given each annotator's own label frequencies.
    """
    listed = list(pairs)
    if not listed:
        return None
    total = len(listed)
    observed = sum(1 for first, second in listed if first == second) / total
    firsts = Counter(first for first, _ in listed)
    seconds = Counter(second for _, second in listed)
    expected = sum(firsts[label] * seconds[label] for label in firsts) / (total * total)
    return _kappa(observed, expected)


def fleiss_kappa(counts: Sequence[Mapping[Any, int]]) -> float | None:
    """Fleiss' kappa from each item's label counts (``{"good": 2, "bad": 1}``), n labels on every item.

    P_i = (sum_j n_ij^2 - n) / (n (n - 1)) is the agreement on item i, P-bar their mean; p_j the share of
    all labels in category j and P_e = sum_j p_j^2; kappa = (P-bar - P_e) / (1 - P_e).
    """
    if not counts:
        return None
    sizes = {sum(item.values()) for item in counts}
    if len(sizes) != 1:
        raise ValueError(f"every item needs the same number of labels, got {sorted(sizes)}")
    n = sizes.pop()
    if n < 2:
        return None
    items = len(counts)
    mean_agreement = (
        sum((sum(value * value for value in item.values()) - n) / (n * (n - 1)) for item in counts) / items
    )
    totals: Counter[Hashable] = Counter()
    for item in counts:
        totals.update(item)
    expected = sum((value / (items * n)) ** 2 for value in totals.values())
    return _kappa(mean_agreement, expected)


def _kappa(observed: float, expected: float) -> float:
    if expected >= 1.0:  # one category only: everyone agrees, chance cannot be separated from it
        return 1.0
    return (observed - expected) / (1.0 - expected)


def krippendorff_alpha(units: Iterable[Sequence[Hashable]], metric: Metric = "nominal") -> float | None:
    """Krippendorff's alpha from each unit's values (any number per unit; units with one are unpairable).

    alpha = 1 - D_o / D_e: D_o the disagreement within units, each unit's ordered pairs weighted by
    1 / (m_u - 1); D_e the disagreement among all pairable values taken together. ``nominal``: two
    values differ by 1 or 0; ``interval``: by their squared difference (the values must be numbers).
    """
    pairable = [list(values) for values in units if len(values) >= 2]
    total = sum(len(values) for values in pairable)
    if total < 2:
        return None
    difference = _pair_differences_nominal if metric == "nominal" else _pair_differences_interval
    within = sum(difference(values) / (len(values) - 1) for values in pairable) / total
    everything = [value for values in pairable for value in values]
    expected = difference(everything) / (total * (total - 1))
    if expected == 0.0:  # every value the same
        return 1.0
    return 1.0 - within / expected


def _pair_differences_nominal(values: Sequence[Hashable]) -> float:
    """Sum over ordered pairs (i != j) of [v_i != v_j]: m^2 - sum of squared category counts."""
    size = len(values)
    return float(size * size - sum(count * count for count in Counter(values).values()))


def _pair_differences_interval(values: Sequence[Hashable]) -> float:
    """Sum over ordered pairs (i != j) of (v_i - v_j)^2 = 2 (m sum v^2 - (sum v)^2), in one pass."""
    numbers = [float(value) for value in values]  # type: ignore[arg-type]
    mean = sum(numbers) / len(numbers)
    # centred first: the same sum, without cancelling two large terms against each other
    return 2.0 * len(numbers) * sum((number - mean) ** 2 for number in numbers)

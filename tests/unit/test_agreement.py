"""Agreement measures against published worked examples, and their edge cases."""

from __future__ import annotations

from collections import Counter

import pytest

from llmops.annotation.agreement import cohen_kappa, fleiss_kappa, krippendorff_alpha

# Fleiss, J. L. (1971). Measuring nominal scale agreement among many raters. Psychological Bulletin 76(5),
# 378-382, Table 1: 30 patients, 6 psychiatrists each, 5 diagnoses (depression, personality disorder,
# schizophrenia, neurosis, other). Each row: how many of the 6 gave each diagnosis. The paper's kappa: 0.430.
FLEISS_1971 = [
    (0, 0, 0, 6, 0), (0, 3, 0, 0, 3), (0, 1, 4, 0, 1), (0, 0, 0, 0, 6), (0, 3, 0, 3, 0),
    (2, 0, 4, 0, 0), (0, 0, 4, 0, 2), (2, 0, 3, 1, 0), (2, 0, 0, 4, 0), (0, 0, 0, 0, 6),
    (1, 0, 0, 5, 0), (1, 1, 0, 4, 0), (0, 3, 3, 0, 0), (1, 0, 0, 5, 0), (0, 2, 0, 3, 1),
    (0, 0, 5, 0, 1), (3, 0, 0, 1, 2), (5, 1, 0, 0, 0), (0, 2, 0, 4, 0), (1, 0, 2, 0, 3),
    (0, 0, 0, 0, 6), (0, 1, 0, 5, 0), (0, 2, 0, 1, 3), (2, 0, 0, 4, 0), (1, 0, 0, 4, 1),
    (0, 5, 0, 1, 0), (4, 0, 0, 0, 2), (0, 2, 0, 4, 0), (1, 0, 5, 0, 0), (0, 0, 0, 0, 6),
]  # fmt: skip

# Krippendorff, K. (2011). Computing Krippendorff's Alpha-Reliability (Annenberg School for Communication,
# University of Pennsylvania), section C: 4 observers x 12 units, values 1..5, None = not coded.
# His results: nominal alpha 0.743, interval alpha 0.849.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


def _units(observers: list[list[int | None]]) -> list[list[int]]:
    return [[value for value in unit if value is not None] for unit in zip(*observers, strict=True)]


def _counts(row: tuple[int, ...]) -> dict[int, int]:
    return {category: count for category, count in enumerate(row) if count}


def test_fleiss_1971_table_1() -> None:
    assert fleiss_kappa([_counts(row) for row in FLEISS_1971]) == pytest.approx(0.430, abs=5e-4)


def test_krippendorff_2011_nominal_and_interval() -> None:
    units = _units(KRIPPENDORFF_2011)
    assert krippendorff_alpha(units, "nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(units, "interval") == pytest.approx(0.849, abs=5e-4)


def test_cohen_kappa_worked_example() -> None:
    # The worked example of Wikipedia's "Cohen's kappa" article: 50 applications read by two people,
    # yes/yes 20, yes/no 5, no/yes 10, no/no 15; p_o = 0.7, p_e = 0.5, kappa = 0.4.
    pairs = [("yes", "yes")] * 20 + [("yes", "no")] * 5 + [("no", "yes")] * 10 + [("no", "no")] * 15
    assert cohen_kappa(pairs) == pytest.approx(0.4)


def test_fleiss_with_two_raters_is_scotts_pi_not_cohens() -> None:
    # with two annotators per item Fleiss' kappa pools both annotators' label frequencies (Scott's pi)
    pairs = [("yes", "yes")] * 20 + [("yes", "no")] * 5 + [("no", "yes")] * 10 + [("no", "no")] * 15
    pooled = fleiss_kappa([Counter(pair) for pair in pairs])
    assert pooled is not None
    assert pooled == pytest.approx((0.7 - (0.55**2 + 0.45**2)) / (1 - 0.505))


def test_perfect_agreement_is_one_even_with_a_single_category() -> None:
    assert cohen_kappa([("a", "a"), ("b", "b")]) == 1.0
    assert cohen_kappa([("a", "a"), ("a", "a")]) == 1.0  # one category only: p_e = 1
    assert fleiss_kappa([{"a": 3}, {"a": 3}]) == 1.0
    assert krippendorff_alpha([["a", "a"], ["a", "a", "a"]]) == 1.0
    assert krippendorff_alpha([[4.0, 4.0], [4.0, 4.0]], "interval") == 1.0
    assert krippendorff_alpha([[1, 1], [5, 5]], "interval") == 1.0


def test_systematic_disagreement_is_negative() -> None:
    kappa = cohen_kappa([("a", "b"), ("b", "a")])
    assert kappa is not None
    assert kappa < 0
    alpha = krippendorff_alpha([["a", "b"], ["b", "a"]])
    assert alpha is not None
    assert alpha < 0


def test_too_little_data_is_undefined() -> None:
    assert cohen_kappa([]) is None
    assert fleiss_kappa([]) is None
    assert fleiss_kappa([{"a": 1}, {"b": 1}]) is None  # one label per item
    assert krippendorff_alpha([]) is None
    assert krippendorff_alpha([["a"], ["b"]]) is None  # no unit with two values


def test_fleiss_needs_the_same_number_of_labels_per_item() -> None:
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa([{"a": 2}, {"a": 3}])


def test_units_with_a_single_value_do_not_count() -> None:
    units = _units(KRIPPENDORFF_2011)
    assert krippendorff_alpha([*units, [7]], "interval") == krippendorff_alpha(units, "interval")

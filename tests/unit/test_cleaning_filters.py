"""Row filters: empty and non-text rows, length bounds, length outliers by z-score and IQR."""

from __future__ import annotations

import statistics
from typing import Any

import pytest

from llmops.datasets.cleaning.base import CleaningError, CleaningStep, StepContext, StepRegistry, StepReport


def make(name: str, params: dict[str, Any] | None = None) -> CleaningStep:
    return StepRegistry(load_plugins=False).create(name, params, StepContext())


def apply_all(step: CleaningStep, rows: list[dict[str, Any]]) -> tuple[list[int], StepReport]:
    """Positions kept, and the report (after scan when the step needs one, and finish)."""
    report = StepReport(step=step.name, params={})
    if step.needs_scan:
        step.scan(enumerate(rows))
    kept = [position for position, row in enumerate(rows) if step.apply(position, row, report) is not None]
    step.finish(report)
    return kept, report


def test_drop_empty_with_given_fields_requires_each_and_says_which_and_why() -> None:
    rows = [
        {"input": "ok", "expected": "fine"},
        {"input": "ok"},
        {"input": "", "expected": "x"},
        {"input": " \n\t", "expected": "x"},
        {"input": 42, "expected": "x"},
        {"input": {"nested": "x"}, "expected": "x"},
        {"input": "ok", "expected": None},
    ]
    kept, report = apply_all(make("drop_empty", {"fields": ["input", "expected"]}), rows)
    assert kept == [0]
    assert [example["reason"] for example in report.examples] == [
        "field 'expected' is missing",
        "field 'input' is empty",
        "field 'input' is whitespace-only",
        "field 'input' is a number, not text",
        "field 'input' is an object, not text",
    ]
    assert report.removed == 6
    assert report.reasons["field 'expected' is missing"] == 2  # None counts as missing


def test_drop_empty_default_keeps_rows_with_any_conventional_text() -> None:
    rows = [
        {"input": "question"},
        {"messages": [{"role": "user", "content": "hi"}]},
        {"messages": [{"role": "user", "content": "  "}]},
        {"messages": []},
        {"metadata": {"source": "x"}},
    ]
    kept, report = apply_all(make("drop_empty"), rows)
    assert kept == [0, 1]
    assert report.reasons == {"no text in any of input, messages, expected, completion, prompt": 3}


def test_drop_empty_require_any_over_given_fields() -> None:
    step = make("drop_empty", {"fields": ["input", "expected"], "require": "any"})
    kept, _ = apply_all(step, [{"input": "a"}, {"expected": "b"}, {"input": " ", "expected": ""}])
    assert kept == [0, 1]


def test_filter_length_bounds_in_chars_and_words() -> None:
    rows = [{"input": "one"}, {"input": "one two three"}, {"input": "one two three four five six"}]
    kept, report = apply_all(make("filter_length", {"unit": "words", "min": 2, "max": 4}), rows)
    assert kept == [1]
    assert [example["reason"] for example in report.examples] == [
        "length 1 below the minimum 2 (words)",
        "length 6 above the maximum 4 (words)",
    ]
    assert report.reasons == {
        "length below the minimum 2 (words)": 1,
        "length above the maximum 4 (words)": 1,
    }
    kept, _ = apply_all(make("filter_length", {"max": 3, "fields": ["input"]}), rows)
    assert kept == [0]


def test_filter_length_counts_tokens() -> None:
    kept, report = apply_all(make("filter_length", {"unit": "tokens", "max": 3}), [{"input": "hello world"}])
    assert kept == [0]
    kept, report = apply_all(make("filter_length", {"unit": "tokens", "max": 3}), [{"input": "a b c d e f"}])
    assert kept == []
    assert report.examples[0]["reason"] == "length 6 above the maximum 3 (tokens)"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "give min, max or both"),
        ({"min": 5, "max": 2}, r"min \(5\) is above max \(2\)"),
        ({"min": -1}, "min"),
    ],
)
def test_filter_length_refuses_bad_bounds(params: dict[str, Any], message: str) -> None:
    with pytest.raises(CleaningError, match=message):
        make("filter_length", params)


def lengths_rows(lengths: list[int]) -> list[dict[str, Any]]:
    return [{"input": "x" * length} for length in lengths]


def test_filter_outliers_iqr_bounds_match_numpy_style_quantiles() -> None:
    lengths = [10, 11, 12, 12, 13, 13, 14, 15, 16, 200, 1]
    kept, report = apply_all(make("filter_outliers", {"method": "iqr"}), lengths_rows(lengths))
    q1, _, q3 = statistics.quantiles(lengths, n=4, method="inclusive")
    spread = 1.5 * (q3 - q1)
    assert (report.details["q1"], report.details["q3"]) == (q1, q3) == (11.5, 14.5)
    assert report.details["lower"] == pytest.approx(q1 - spread, abs=0.01)
    assert report.details["upper"] == pytest.approx(q3 + spread, abs=0.01)
    assert [lengths[i] for i in kept] == [10, 11, 12, 12, 13, 13, 14, 15, 16]
    assert "length 200 above the upper bound 19 (iqr)" in [e["reason"] for e in report.examples]
    assert report.reasons["length below the lower bound 7 (iqr)"] == 1


def test_filter_outliers_zscore_is_the_default_and_records_mean_and_std() -> None:
    lengths = [50] * 30 + [52] * 30 + [400]
    kept, report = apply_all(make("filter_outliers"), lengths_rows(lengths))
    assert kept == list(range(60))
    assert report.details["method"] == "zscore"
    assert report.details["mean"] == pytest.approx(statistics.fmean(lengths), abs=0.001)
    assert report.details["std"] == pytest.approx(statistics.pstdev(lengths), abs=0.001)
    kept, _ = apply_all(make("filter_outliers", {"z": 10}), lengths_rows(lengths))
    assert len(kept) == 61


def test_filter_outliers_on_no_rows_and_on_equal_lengths() -> None:
    kept, report = apply_all(make("filter_outliers"), [])
    assert kept == []
    assert report.details["lower"] is None
    kept, report = apply_all(
        make("filter_outliers", {"method": "iqr", "unit": "words"}), lengths_rows([3] * 5)
    )
    assert kept == [0, 1, 2, 3, 4]
    assert report.details["lower"] == report.details["upper"] == 1  # "xxx" is one word


def test_filter_outliers_scan_keeps_a_histogram_not_the_rows() -> None:
    step = make("filter_outliers")
    step.scan((position, {"input": "x" * (position % 7)}) for position in range(10_000))
    histogram_sizes = [len(value) for value in vars(step).values() if isinstance(value, dict | list)]
    assert max(histogram_sizes, default=0) <= 7

"""Exact de-duplication: keys, normalisation, reports, and that only digests are kept."""

from __future__ import annotations

from typing import Any

import pytest

from llmops.datasets.cleaning.base import CleaningError, CleaningStep, StepContext, StepRegistry, StepReport


def make(params: dict[str, Any] | None = None) -> CleaningStep:
    return StepRegistry(load_plugins=False).create("dedup_exact", params, StepContext())


def dedup(step: CleaningStep, rows: list[dict[str, Any]]) -> tuple[list[int], StepReport]:
    report = StepReport(step="dedup_exact", params={})
    kept = [position for position, row in enumerate(rows) if step.apply(position, row, report) is not None]
    step.finish(report)
    return kept, report


def test_whole_row_by_default_with_key_order_ignored() -> None:
    rows = [
        {"input": "a", "expected": "b"},
        {"expected": "b", "input": "a"},
        {"input": "a", "expected": "c"},
        {"input": "a", "expected": "b", "metadata": {"source": "x"}},
        {"input": "a", "expected": "b"},
    ]
    kept, report = dedup(make(), rows)
    assert kept == [0, 2, 3]
    assert report.removed == 2
    assert report.reasons == {"duplicate": 2}
    assert [example["reason"] for example in report.examples] == ["duplicate of row 0", "duplicate of row 0"]
    assert report.examples[0]["row"] is rows[1]


def test_chosen_fields_only() -> None:
    rows = [
        {"input": "q", "expected": "a", "metadata": {"id": 1}},
        {"input": "q", "expected": "a", "metadata": {"id": 2}},
        {"input": "q", "expected": "other"},
        {"input": "q"},
        {"input": "q", "expected": None},
    ]
    kept, _ = dedup(make({"fields": ["input", "expected"]}), rows)
    assert kept == [0, 2, 3]  # a missing field and null are the same key
    kept, _ = dedup(make({"fields": "input"}), rows)
    assert kept == [0]


def test_normalise_ignores_case_and_whitespace_including_messages() -> None:
    rows = [
        {"input": "Hello   World"},
        {"input": " hello world\n"},
        {"input": "hello, world"},
        {"messages": [{"role": "user", "content": "Hi  THERE"}]},
        {"messages": [{"role": "user", "content": "hi there"}]},
    ]
    assert dedup(make(), rows)[0] == [0, 1, 2, 3, 4]
    kept, _ = dedup(make({"normalise": True}), rows)
    assert kept == [0, 2, 3]


def test_groups_and_largest_groups_in_details() -> None:
    rows = [{"input": str(i % 3)} for i in range(10)] + [{"input": "unique"}]
    kept, report = dedup(make({"fields": ["input"]}), rows)
    assert kept == [0, 1, 2, 10]
    assert report.details["groups"] == 3
    assert report.details["distinct"] == 4
    assert report.details["largest_groups"][0] == {"kept": 0, "removed": 3}
    assert sorted(group["kept"] for group in report.details["largest_groups"]) == [0, 1, 2]


def test_keeps_digests_not_rows() -> None:
    step = make()
    report = StepReport(step="dedup_exact", params={})
    for position in range(2000):
        step.apply(position, {"input": "x" * 1000 + str(position)}, report)
    digests = vars(step)["_first"]
    assert len(digests) == 2000
    assert {len(key) for key in digests} == {16}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"fields": ["*", "input"]}, "cannot be combined"),
        ({"keep": "last"}, "keep"),
        ({"normalize": True}, "normalize"),
    ],
)
def test_bad_parameters(params: dict[str, Any], message: str) -> None:
    with pytest.raises(CleaningError, match=message):
        make(params)

"""The `pii` cleaning step: redaction per field, drop rows, per-entity counts, masked report examples."""

from __future__ import annotations

from typing import Any

import pytest

from llmops.datasets.cleaning.base import CleaningError, StepContext, StepRegistry, StepReport
from llmops.datasets.rows import Row
from llmops.pii import PiiService

ROWS: list[Row] = [
    {"input": "Write to jane.roe@example.org", "expected": "ok", "metadata": {"id": 1}},
    {"input": "Nothing personal here", "expected": "fine"},
    {
        "messages": [
            {"role": "user", "content": "My card is 4111 1111 1111 1111"},
            {"role": "assistant", "content": "Noted, call +44 20 7946 0958"},
        ]
    },
    {"input": "Aiko Tanaka lives in Berlin", "expected": "jane.roe@example.org"},
]


def run(params: dict[str, Any], context: StepContext | None = None) -> tuple[list[Row], StepReport]:
    step = StepRegistry(load_plugins=False).create("pii", params, context or StepContext())
    report = StepReport(step="pii", params=params)
    results = [step.apply(position, row, report) for position, row in enumerate(ROWS)]
    kept = [row for row in results if row is not None]
    step.finish(report)
    return kept, report


def test_tag_by_default_in_every_text_field() -> None:
    kept, report = run({"entities": ["EMAIL_ADDRESS", "CREDIT_CARD", "PHONE_NUMBER"]})
    assert kept[0]["input"] == "Write to <EMAIL>"
    assert kept[1] is ROWS[1]
    assert kept[2]["messages"][0]["content"] == "My card is <CREDIT_CARD>"
    assert kept[2]["messages"][1]["content"] == "Noted, call <PHONE>"
    assert kept[3]["expected"] == "<EMAIL>"
    assert report.details["entities"] == {"CREDIT_CARD": 1, "EMAIL_ADDRESS": 2, "PHONE_NUMBER": 1}
    assert report.changed == 3
    assert report.reasons["redacted EMAIL_ADDRESS"] == 2
    assert report.reasons["redacted CREDIT_CARD, PHONE_NUMBER"] == 1
    assert ROWS[0]["input"] == "Write to jane.roe@example.org"  # the input rows are not mutated


def test_report_examples_never_show_the_original_values() -> None:
    _, report = run({"entities": ["EMAIL_ADDRESS"]})
    assert "jane.roe@example.org" not in repr(report.to_dict())
    assert report.examples[0]["before"]["input"] == "Write to ****.***@*******.***"


def test_fields_limit_what_is_touched() -> None:
    kept, report = run({"fields": ["expected"], "entities": ["EMAIL_ADDRESS"]})
    assert kept[0]["input"] == ROWS[0]["input"]
    assert kept[3]["expected"] == "<EMAIL>"
    assert report.details["entities"] == {"EMAIL_ADDRESS": 1}


def test_drop_strategy_for_people_with_the_shared_service() -> None:
    context = StepContext(pii=PiiService(salt="run-salt"))
    kept, report = run({"strategy": "mask", "strategies": {"PERSON": "drop"}}, context)
    assert len(kept) == 3
    assert report.removed == 1
    assert report.reasons["contains PERSON"] == 1
    assert kept[0]["input"] == "Write to ****.***@*******.***"
    assert report.details["nlp"] is True


def test_hash_uses_the_run_salt_or_its_own() -> None:
    shared = StepContext(pii=PiiService(salt="run-salt", use_nlp=False))
    first, _ = run({"strategy": "hash"}, shared)
    assert first[0]["input"].startswith("Write to <EMAIL_")
    assert first[0]["input"].removeprefix("Write to ") == first[3]["expected"]  # stable across rows
    own, _ = run({"strategy": "hash", "salt": "other"}, shared)
    assert own[0]["input"] != first[0]["input"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"strategy": "hash"}, "step 'pii': the hash strategy needs a salt"),
        ({"entities": ["SSN"]}, "step 'pii': unknown PII entity 'SSN'"),
        ({"strategies": {"SSN": "tag"}}, "step 'pii': strategies: unknown PII entity 'SSN'"),
        ({"strategy": "blur"}, "strategy"),
    ],
)
def test_bad_params_fail_before_any_row(params: dict[str, Any], message: str) -> None:
    with pytest.raises(CleaningError, match=message):
        StepRegistry(load_plugins=False).create("pii", params, StepContext(pii=PiiService(use_nlp=False)))

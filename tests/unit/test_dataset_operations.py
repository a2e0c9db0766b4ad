"""Operations over whole versions (SQLite and Postgres): cleaning into a version with lineage and
reports, reports without the personal data a recipe removes, diffs, exports and profiles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine

from llmops.datasets import operations
from llmops.datasets.cleaning.recipe import Recipe
from llmops.datasets.service import DatasetService
from llmops.pii import PiiService

ROWS = [
    {"input": "Mail  ann@example.com please", "expected": "ok", "metadata": {"id": 1}},
    {"input": "Mail  ann@example.com please", "expected": "ok", "metadata": {"id": 1}},
    {"input": "What is  2+2?", "expected": "4", "metadata": {"id": 2}},
    {"input": "Bye", "expected": "bye", "metadata": {"id": 3}},
]


@pytest.fixture
def datasets(db: Engine) -> DatasetService:
    service = DatasetService(db)
    service.create_version("qa", ROWS, operation="import")
    return service


def test_clean_writes_a_version_with_lineage_and_reports(datasets: DatasetService) -> None:
    recipe = Recipe.from_cli(["clean_whitespace", "dedup_exact"])
    result = operations.clean(datasets, "qa", recipe, author="ann", message="tidy")
    version = result.result.version
    assert version.ref == "qa@2"
    assert version.row_count == 3
    assert version.parents == ["qa@1"]
    assert version.operation == "clean"
    assert version.author == "ann"
    assert version.message == "tidy"
    assert version.params is not None
    assert version.params["source"] == "qa@1"
    assert [next(iter(step)) for step in version.params["steps"]] == ["clean_whitespace", "dedup_exact"]
    assert version.params["steps"][1]["dedup_exact"]["fields"] == ["*"]  # defaults spelled out
    stored = datasets.resolve("qa@2").report
    assert stored is not None
    assert [(item["step"], item["removed"], item["changed"]) for item in stored] == [
        ("clean_whitespace", 0, 3),
        ("dedup_exact", 1, 0),
    ]
    into = operations.clean(datasets, "qa@1", recipe, into="qa-clean")
    assert into.result.version.ref == "qa-clean@1"
    assert into.result.version.parents == ["qa@1"]


def test_reports_keep_no_personal_data_the_recipe_removes(datasets: DatasetService) -> None:
    recipe = Recipe.from_cli(["dedup_exact", "pii:strategy=tag"])
    result = operations.clean(datasets, "qa", recipe, pii=PiiService(use_nlp=False))
    stored = json.dumps(datasets.resolve(result.result.version.ref).report)
    assert "ann@example.com" not in stored
    assert "duplicate" in stored
    rows = list(datasets.rows(result.result.version))
    assert rows[0]["input"] == "Mail  <EMAIL> please"


def test_a_recipe_without_pii_keeps_its_examples(datasets: DatasetService) -> None:
    result = operations.clean(datasets, "qa", Recipe.from_cli(["dedup_exact"]), pii=PiiService(use_nlp=False))
    assert "ann@example.com" in json.dumps(datasets.resolve(result.result.version.ref).report)


def test_diff_pairs_rows_by_key_and_counts_duplicates(datasets: DatasetService) -> None:
    changed = [dict(ROWS[0], expected="fine"), ROWS[2], {"input": "New", "metadata": {"id": 9}}]
    datasets.create_version("qa", changed, operation="import")
    found = operations.diff(datasets, "qa@1", "qa@2", key="metadata.id")
    assert (found.added, found.removed, found.changed, found.unchanged) == (1, 2, 1, 1)
    assert found.examples["changed"][0]["after"]["expected"] == "fine"
    unkeyed = operations.diff(datasets, "qa@1", "qa@2", key="no.such.field")
    assert (unkeyed.added, unkeyed.removed, unkeyed.changed) == (2, 3, 0)
    same = operations.diff(datasets, "qa@2", "qa@2")
    assert (same.added, same.removed, same.changed, same.unchanged) == (0, 0, 0, 3)


def test_exports(datasets: DatasetService, tmp_path: Path) -> None:
    count = operations.export_rows(datasets, "qa", "jsonl", tmp_path / "qa.jsonl")
    assert count == 4
    assert [json.loads(line) for line in (tmp_path / "qa.jsonl").read_text().splitlines()] == ROWS
    written = operations.export_finetune(
        datasets, "qa", file_format="completion", out_dir=tmp_path / "ft", split=0.75, seed=2
    )
    assert written.counts == {"train": 3, "validation": 1}
    with pytest.raises(operations.InvalidDataset, match="unknown format 'xml'"):
        operations.export_rows(datasets, "qa", "xml", tmp_path / "x")


def test_profile_counts_rows_duplicates_and_pii(datasets: DatasetService) -> None:
    found = operations.profile(datasets, "qa", pii=PiiService(use_nlp=False), near_duplicates=False).to_dict()
    assert found["rows"] == 4
    assert json.dumps(found).count("EMAIL_ADDRESS") >= 1

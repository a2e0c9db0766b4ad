"""The cleaning pipeline: chaining, spooling for scanning steps, positions, reports, progress, cleanup."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from rich.console import Console

from llmops.datasets.cleaning.base import CleaningError, CleaningStep, StepContext, StepRegistry, StepReport
from llmops.datasets.cleaning.pipeline import PROGRESS_EVERY, CleaningPipeline
from llmops.datasets.cleaning.recipe import Recipe
from llmops.datasets.cleaning.report_view import render_reports
from llmops.datasets.rows import Row
from llmops.progress import Cancelled


class KeepAboveAverage(CleaningStep):
    """A scanning test step: keeps rows whose ``n`` is at least the mean ``n`` of its input, and
    records what it saw so the test can check positions and the spool."""

    name = "keep_above_average"
    needs_scan = True
    seen: ClassVar[dict[str, Any]] = {}

    def scan(self, rows: Iterable[tuple[int, Row]]) -> None:
        pairs = list(rows)
        self.positions = [position for position, _ in pairs]
        self.mean = sum(row["n"] for _, row in pairs) / max(len(pairs), 1)
        self.spool_files = sorted(path.name for path in self.context.workdir.rglob("*.jsonl"))  # type: ignore[attr-defined]
        self.applied: list[tuple[int, int]] = []

    def apply(self, position: int, row: Row, report: StepReport) -> Row | None:
        self.applied.append((position, row["n"]))
        if row["n"] < self.mean:
            report.record_removed(position, "below the mean", row)
            return None
        return row

    def finish(self, report: StepReport) -> None:
        report.details["mean"] = self.mean


class DropOdd(CleaningStep):
    """A streaming test step: removes rows with an odd ``n``, remembering the positions it was given."""

    name = "drop_odd"

    def __init__(self, params: Any, context: StepContext) -> None:
        super().__init__(params, context)
        self.positions: list[int] = []

    def apply(self, position: int, row: Row, report: StepReport) -> Row | None:
        self.positions.append(position)
        if row["n"] % 2:
            report.record_removed(position, "odd", row)
            return None
        return row


class WorkdirContext(StepContext):
    def __init__(self, workdir: Path) -> None:
        super().__init__()
        self.workdir = workdir


def fake_registry() -> StepRegistry:
    registry = StepRegistry(load_plugins=False)
    registry.register(KeepAboveAverage)
    registry.register(DropOdd)
    return registry


def test_a_scanning_step_in_the_middle_sees_positions_of_its_own_input(tmp_path: Path) -> None:
    recipe = Recipe.from_data(["drop_odd", "keep_above_average", "drop_odd"])
    pipeline = CleaningPipeline(recipe, fake_registry(), WorkdirContext(tmp_path), workdir=tmp_path)
    rows = [{"n": n} for n in [1, 2, 4, 3, 10, 12, 7, 8, 13, 6]]
    out = list(pipeline.run(rows, total=len(rows)))

    assert out == [{"n": 10}, {"n": 12}, {"n": 8}]
    first, scanner, last = pipeline.steps
    assert first.positions == list(range(10))  # type: ignore[attr-defined]
    assert scanner.positions == [0, 1, 2, 3, 4, 5]  # type: ignore[attr-defined]
    assert scanner.applied == [(0, 2), (1, 4), (2, 10), (3, 12), (4, 8), (5, 6)]  # type: ignore[attr-defined]
    assert scanner.spool_files == ["2-keep_above_average.jsonl"]  # type: ignore[attr-defined]
    assert last.positions == [0, 1, 2]  # type: ignore[attr-defined]
    assert [(r.step, r.rows_in, r.rows_out, r.removed) for r in pipeline.reports] == [
        ("drop_odd", 10, 6, 4),
        ("keep_above_average", 6, 3, 3),
        ("drop_odd", 3, 3, 0),
    ]
    assert pipeline.reports[1].details == {"mean": 7.0}
    assert list(tmp_path.iterdir()) == []  # the spool directory is gone


def test_real_steps_report_counts_and_examples_and_leave_input_rows_alone() -> None:
    rows: list[Row] = [{"input": f"<b>Question {i % 40}</b>  please", "expected": "Ｙes"} for i in range(100)]
    rows += [{"input": "word " * 500, "expected": "long"}, {"input": "   ", "expected": "empty"}]
    original = copy.deepcopy(rows)
    recipe = Recipe.from_data(
        [
            "normalize_unicode",
            "strip_html",
            "clean_whitespace",
            {"drop_empty": {"fields": ["input"]}},
            {"filter_outliers": {"unit": "words", "method": "iqr"}},
            {"dedup_exact": {"fields": ["input", "expected"]}},
        ]
    )
    pipeline = CleaningPipeline(recipe, StepRegistry(load_plugins=False), StepContext())
    out = list(pipeline.run(iter(rows)))

    assert rows == original
    assert out[0] == {"input": "Question 0 please", "expected": "Yes"}
    assert len(out) == 40
    by_step = {report.step: report for report in pipeline.reports}
    assert by_step["normalize_unicode"].changed == 100
    assert by_step["strip_html"].reasons == {"stripped HTML tags": 100}
    assert by_step["drop_empty"].examples[0]["reason"] == "field 'input' is empty"
    outliers = by_step["filter_outliers"]
    assert (outliers.rows_in, outliers.rows_out) == (101, 100)
    assert (
        outliers.examples[0]["reason"] == "length 501 above the upper bound 4 (iqr)"
    )  # input and expected words
    assert outliers.examples[0]["position"] == 100
    dedup = by_step["dedup_exact"]
    assert (dedup.rows_in, dedup.removed, dedup.rows_out) == (100, 60, 40)
    assert dedup.examples[0]["reason"] == "duplicate of row 0"
    assert dedup.details["groups"] == 40
    assert [report.params for report in pipeline.reports][3] == {"fields": ["input"], "require": "all"}


def test_a_bad_recipe_fails_before_any_row_is_read() -> None:
    def rows() -> Iterator[Row]:
        raise AssertionError("a row was read")
        yield {}

    recipe = Recipe.from_data(["drop_odd", {"keep_above_average": {"colour": "red"}}])
    with pytest.raises(
        CleaningError, match=r"^recipe step 2: step 'keep_above_average': colour: Extra inputs"
    ):
        CleaningPipeline(recipe, fake_registry(), StepContext()).run(rows())


def test_streaming_steps_read_input_lazily() -> None:
    read: list[int] = []

    def rows() -> Iterator[Row]:
        for n in range(0, 1000, 2):
            read.append(n)
            yield {"n": n}

    pipeline = CleaningPipeline(Recipe.from_data(["drop_odd", "drop_odd"]), fake_registry(), StepContext())
    stream = pipeline.run(rows())
    assert read == []
    assert next(stream) == {"n": 0}
    assert read == [0]


def test_progress_by_stage_with_counts(tmp_path: Path) -> None:
    calls: list[tuple[str, int, int | None]] = []
    rows = [{"n": n} for n in range(2 * PROGRESS_EVERY + 5)]
    recipe = Recipe.from_data(["drop_odd", "keep_above_average"])
    pipeline = CleaningPipeline(recipe, fake_registry(), WorkdirContext(tmp_path))
    out = list(pipeline.run(rows, total=len(rows), progress=lambda *call: calls.append(call)))
    assert len(out) == 502  # the evens at or above their mean, 1002
    stages = {stage for stage, _, _ in calls}
    assert stages == {"drop_odd", "keep_above_average: scan", "keep_above_average"}
    assert [c for c in calls if c[0] == "drop_odd"] == [
        ("drop_odd", 0, 2005),
        ("drop_odd", 1000, 2005),
        ("drop_odd", 2000, 2005),
        ("drop_odd", 2005, 2005),
    ]
    assert calls[-1] == ("keep_above_average", 1003, 1003)
    assert ("keep_above_average: scan", 1003, 1003) in calls


def test_cancelled_from_progress_stops_the_run_and_removes_the_spool(tmp_path: Path) -> None:
    def progress(stage: str, done: int, total: int | None) -> None:
        if stage.endswith(": scan"):
            raise Cancelled

    recipe = Recipe.from_data(["keep_above_average", "drop_odd"])
    pipeline = CleaningPipeline(recipe, fake_registry(), WorkdirContext(tmp_path), workdir=tmp_path)
    with pytest.raises(Cancelled):
        list(pipeline.run([{"n": n} for n in range(10)], progress=progress))
    assert list(tmp_path.iterdir()) == []


def test_an_abandoned_run_removes_its_spool(tmp_path: Path) -> None:
    recipe = Recipe.from_data(["keep_above_average"])
    pipeline = CleaningPipeline(recipe, fake_registry(), WorkdirContext(tmp_path), workdir=tmp_path)
    stream = pipeline.run([{"n": n} for n in range(10)])
    next(stream)
    assert len(list(tmp_path.rglob("*.jsonl"))) == 1
    stream.close()  # type: ignore[attr-defined]
    assert list(tmp_path.iterdir()) == []


def test_a_pipeline_runs_once_and_an_empty_input_gives_empty_reports(tmp_path: Path) -> None:
    pipeline = CleaningPipeline(
        Recipe.from_data(["drop_odd", "keep_above_average"]), fake_registry(), WorkdirContext(tmp_path)
    )
    assert list(pipeline.run([])) == []
    assert [(r.rows_in, r.rows_out) for r in pipeline.reports] == [(0, 0), (0, 0)]
    with pytest.raises(CleaningError, match="already run"):
        pipeline.run([])


def test_render_reports_from_live_and_stored_reports() -> None:
    live = StepReport(step="dedup_exact", params={}, rows_in=1200, rows_out=1000)
    for position in range(200):
        live.record_removed(position, f"duplicate of row {position}", {}, group="duplicate")
    stored = {
        "step": "strip_html",
        "rows_in": 5,
        "rows_out": 5,
        "changed": 2,
        "reasons": {"a": 1, "b": 3, "c": 2, "d": 1},
    }
    console = Console(record=True, width=140)
    console.print(render_reports([live, stored], title="cleaning"))
    text = console.export_text()
    assert "dedup_exact" in text
    assert "1,200" in text
    assert "duplicate (200)" in text
    assert "b (3)" in text
    assert "c (2)" in text
    assert "a (1)" in text
    assert "d (1)" not in text
    assert "... 1 more" in text

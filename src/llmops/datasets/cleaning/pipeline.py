"""Runs a cleaning recipe over a stream of rows without holding them in memory.

Steps without ``needs_scan`` are chained row by row: a row goes through all of them before the next
one is read. A step with ``needs_scan`` must see its input twice, so the rows reaching it are spooled to
a temporary JSONL file (orjson); the step's ``scan`` reads the spool, then its ``apply`` reads it again
and the rows it keeps flow on. Spools live in a temporary directory (under ``workdir`` when given) that
is removed when the run ends, is abandoned, or fails. Peak memory therefore does not grow with the
number of rows, apart from what a step keeps by design (de-duplication digests, MinHash signatures).

Progress is reported per stage: the step's name while it applies (and ``"<name>: scan"`` while it
scans), with the rows done in that stage and the stage's total when known, at a stage's first row,
every :data:`PROGRESS_EVERY` rows, and at its end (also when it saw no row).

Cancellation is the progress callback's business: to stop a run, make it raise
:class:`llmops.progress.Cancelled`. The exception leaves :meth:`CleaningPipeline.run`, the spools are
removed, and the caller discards the rows yielded so far.
"""

from __future__ import annotations

import tempfile
from collections.abc import Generator, Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path

import orjson

from llmops.datasets.cleaning.base import CleaningError, CleaningStep, StepContext, StepRegistry, StepReport
from llmops.datasets.cleaning.recipe import Recipe
from llmops.datasets.rows import Row
from llmops.progress import Progress, no_progress

PROGRESS_EVERY = 1000

Numbered = Generator[tuple[int, Row], None, None]
"""Rows with their position in a step's input (or output, renumbered for the next step)."""


class CleaningPipeline:
    """One run of a recipe: build it (which validates every step), iterate :meth:`run`, read
    :attr:`reports` (one per step, in recipe order, complete once ``run`` is exhausted)."""

    def __init__(
        self,
        recipe: Recipe,
        registry: StepRegistry,
        context: StepContext,
        *,
        workdir: Path | None = None,
    ) -> None:
        self.steps: list[CleaningStep] = recipe.build(registry, context)
        self.reports: list[StepReport] = [
            StepReport(step=step.name, params=step.params.model_dump(mode="json")) for step in self.steps
        ]
        self._workdir = workdir
        self._started = False

    def run(
        self, rows: Iterable[Row], *, total: int | None = None, progress: Progress = no_progress
    ) -> Iterator[Row]:
        """The cleaned rows, lazily. A pipeline runs once (its steps hold the run's state)."""
        if self._started:
            raise CleaningError("this cleaning pipeline has already run; build a new one per run")
        self._started = True
        return self._run(rows, total, progress)

    def _run(self, rows: Iterable[Row], total: int | None, progress: Progress) -> Iterator[Row]:
        with ExitStack() as cleanup:
            spool_dir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(dir=self._workdir)))
            stream: Numbered = _counted("read", rows, total, no_progress)
            stage_total = total
            for index, (step, report) in enumerate(zip(self.steps, self.reports, strict=True), start=1):
                if step.needs_scan:
                    spool = spool_dir / f"{index}-{step.name}.jsonl"
                    stream = self._scanned(step, report, stream, spool, progress)
                else:
                    stream = self._applied(step, report, stream, stage_total, progress)
                stage_total = None  # earlier steps may remove rows: later totals are unknown up front
            cleanup.callback(stream.close)  # runs first: stop the steps before their spools go
            for _, row in stream:
                yield row

    def _applied(
        self,
        step: CleaningStep,
        report: StepReport,
        rows: Iterable[tuple[int, Row]],
        total: int | None,
        progress: Progress,
    ) -> Numbered:
        """``step.apply`` over ``rows``, renumbering the kept rows as the next step's positions."""
        kept = 0
        position = -1
        for position, row in _counted(step.name, (row for _, row in rows), total, progress):
            result = step.apply(position, row, report)
            if result is not None:
                yield kept, result
                kept += 1
        report.rows_in, report.rows_out = position + 1, kept
        step.finish(report)
        progress(step.name, position + 1, position + 1)

    def _scanned(
        self,
        step: CleaningStep,
        report: StepReport,
        rows: Iterable[tuple[int, Row]],
        spool: Path,
        progress: Progress,
    ) -> Numbered:
        """Spool ``rows``, let ``step`` scan them, then apply it over the spool."""
        try:
            count = _write_spool(spool, rows)
            step.scan(_counted(f"{step.name}: scan", _read_spool(spool), count, progress))
            progress(f"{step.name}: scan", count, count)
            yield from self._applied(step, report, enumerate(_read_spool(spool)), count, progress)
        finally:
            spool.unlink(missing_ok=True)


def _counted(stage: str, rows: Iterable[Row], total: int | None, progress: Progress) -> Numbered:
    """``enumerate(rows)`` that reports progress at the first row and every :data:`PROGRESS_EVERY` rows."""
    for position, row in enumerate(rows):
        if position % PROGRESS_EVERY == 0:
            progress(stage, position, total)
        yield position, row


def _write_spool(path: Path, rows: Iterable[tuple[int, Row]]) -> int:
    count = 0
    with path.open("wb") as out:
        for position, row in rows:
            try:
                out.write(orjson.dumps(row))
            except orjson.JSONEncodeError as exc:
                raise CleaningError(f"row {position} cannot be written as JSON: {exc}") from exc
            out.write(b"\n")
            count += 1
    return count


def _read_spool(path: Path) -> Iterator[Row]:
    with path.open("rb") as spool:
        for line in spool:
            yield orjson.loads(line)

"""Work on a dataset version that reads all its rows: cleaning, diffs, exports and profiles.

Each function takes the :class:`DatasetService` and a reference, streams the rows, and reports
progress; the CLI shows it as a bar, the admin API runs it as a job. Cleaning writes one new version
whose lineage holds the normalised recipe and whose ``report`` holds each step's report.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from llmops.datasets.diff import DatasetDiff, diff_versions
from llmops.datasets.repository import WriteResult
from llmops.datasets.rows import Row
from llmops.datasets.service import DatasetService, InvalidDataset
from llmops.progress import Progress, no_progress

if TYPE_CHECKING:
    from llmops.datasets.cleaning.base import StepRegistry, StepReport
    from llmops.datasets.cleaning.recipe import Recipe
    from llmops.datasets.finetune import FinetuneExport
    from llmops.datasets.profile import DatasetProfile
    from llmops.pii import PiiService

FILE_FORMATS = ("jsonl", "csv", "parquet")
FINETUNE_FORMATS = ("chat", "completion")


@dataclass(frozen=True)
class CleanResult:
    source: str
    result: WriteResult
    reports: list[StepReport]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "version": self.result.version.to_dict(),
            "created": self.result.created,
            "reports": [report.to_dict() for report in self.reports],
        }


def clean(
    datasets: DatasetService,
    ref: str,
    recipe: Recipe,
    *,
    into: str | None = None,
    author: str | None = None,
    message: str | None = None,
    registry: StepRegistry | None = None,
    pii: PiiService | None = None,
    progress: Progress = no_progress,
) -> CleanResult:
    """Run ``recipe`` over version ``ref``; the result is the next version of its dataset (or of ``into``)."""
    from llmops.datasets.cleaning.base import StepContext, StepRegistry
    from llmops.datasets.cleaning.pipeline import CleaningPipeline

    source = datasets.resolve(ref)
    registry = registry or StepRegistry()
    context = StepContext(pii=pii)
    normalised = recipe.validated(registry, context)  # every step checked before a row is read
    pipeline = CleaningPipeline(normalised, registry, context)
    report: list[Any] = []

    def cleaned() -> Iterator[Row]:
        yield from pipeline.run(datasets.rows(source), total=source.row_count, progress=progress)
        reports = [step.to_dict() for step in pipeline.reports]
        redacting = next((step for step in pipeline.steps if step.name == "pii"), None)
        if redacting is not None:
            # the other steps' examples hold rows as they were: no personal data the recipe removes
            # may stay in the report stored with the version
            reports = [_masked_examples(item, getattr(redacting, "service", pii)) for item in reports]
        report.extend(reports)

    result = datasets.create_version(
        into or source.dataset,
        cleaned(),
        operation="clean",
        params={"source": source.ref, **normalised.to_dict()},
        parents=[source.ref],
        report=report,
        message=message,
        author=author,
    )
    return CleanResult(source.ref, result, pipeline.reports)


def _masked_examples(report: dict[str, Any], pii: PiiService | None) -> dict[str, Any]:
    if pii is None or report.get("step") == "pii":  # the pii step masks its own examples
        return report

    def masked(value: Any) -> Any:
        if isinstance(value, str):
            return pii.redact(value, "mask").text
        if isinstance(value, list):
            return [masked(item) for item in value]
        if isinstance(value, dict):
            return {key: masked(item) for key, item in value.items()}
        return value

    return {**report, "examples": masked(report.get("examples", []))}


def diff(
    datasets: DatasetService, base: str, other: str, *, key: str | None = None, examples: int = 5
) -> DatasetDiff:
    """Rows added, removed and changed from version ``base`` to version ``other``."""
    return diff_versions(
        datasets.repository, datasets.resolve(base), datasets.resolve(other), key=key, examples=examples
    )


def export_rows(
    datasets: DatasetService,
    ref: str,
    file_format: str,
    out: Path | IO[bytes],
    *,
    progress: Progress = no_progress,
) -> int:
    """Write version ``ref`` as JSONL, CSV or Parquet; returns the number of rows."""
    from llmops.datasets.writers import write_rows

    if file_format not in FILE_FORMATS:
        raise InvalidDataset(
            f"unknown format {file_format!r}; use one of {', '.join(FILE_FORMATS)}", param="format"
        )
    version = datasets.resolve(ref)
    return write_rows(_counted(datasets.rows(version), version.row_count, progress), out, file_format)


def export_finetune(
    datasets: DatasetService,
    ref: str,
    *,
    file_format: str,
    out_dir: Path,
    split: float | None = None,
    seed: int = 0,
    max_tokens: int | None = None,
    on_invalid: str = "fail",
    system: str | None = None,
    progress: Progress = no_progress,
) -> FinetuneExport:
    """Version ``ref`` as fine-tuning JSONL (``chat`` or ``completion``), split into train and validation."""
    from llmops.datasets.finetune import export_finetune as write_finetune

    if file_format not in FINETUNE_FORMATS:
        raise InvalidDataset(
            f"unknown fine-tuning format {file_format!r}; use one of {', '.join(FINETUNE_FORMATS)}",
            param="format",
        )
    version = datasets.resolve(ref)
    rows = ((position, row) for position, _, row in datasets.iter_rows(version))
    return write_finetune(
        rows,
        total=version.row_count,
        format=file_format,
        out_dir=out_dir,
        split=split,
        seed=seed,
        max_tokens=max_tokens,
        on_invalid=on_invalid,
        system=system,
        progress=progress,
    )


def profile(
    datasets: DatasetService,
    ref: str,
    *,
    pii: PiiService | None = None,
    near_duplicates: bool = True,
    sample: int | None = None,
    progress: Progress = no_progress,
) -> DatasetProfile:
    """Rows, field coverage, lengths, languages, duplicate and PII rates of version ``ref``."""
    from llmops.datasets.profile import profile_rows

    version = datasets.resolve(ref)
    return profile_rows(
        _counted(datasets.rows(version), version.row_count, progress),
        pii=pii,
        near_duplicates=near_duplicates,
        sample=sample,
        progress=progress,
    )


def _counted(rows: Iterable[Row], total: int, progress: Progress, stage: str = "reading") -> Iterator[Row]:
    done = 0
    for row in rows:
        yield row
        done += 1
        if done % 1000 == 0:
            progress(stage, done, total)
    progress(stage, done, total)

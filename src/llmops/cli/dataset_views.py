"""How `llmops datasets` prints its answers: Rich tables and short summaries, no logic."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from llmops.datasets.diff import DatasetDiff
    from llmops.datasets.finetune import FinetuneExport
    from llmops.datasets.operations import CleanResult
    from llmops.datasets.profile import DatasetProfile
    from llmops.datasets.repository import VersionInfo, WriteResult
    from llmops.datasets.rows import Row
    from llmops.datasets.service import ImportResult
    from llmops.datasets.traces_source import TraceCounts

CELL = 60


def _console() -> Console:
    from rich.console import Console

    return Console(highlight=False)


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "strftime") else str(value or "")


def _short(value: Any, width: int = CELL) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _written(result: WriteResult) -> str:
    version = result.version
    if not result.created:
        return f"unchanged: the rows equal {version.ref} ({version.row_count} rows); no new version"
    return f"{version.ref}: {version.row_count} rows ({version.content_hash[:12]})"


def print_datasets(found: list[dict[str, Any]]) -> None:
    from rich.table import Table

    if not found:
        _console().print("no datasets yet: `llmops datasets import NAME FILE`")
        return
    table = Table("name", "latest", "rows", "updated", "description")
    for item in found:
        table.add_row(
            item["name"],
            f"v{item['latest_version']}",
            str(item["row_count"]),
            _when(item["updated_at"]),
            item.get("description") or "",
        )
    _console().print(table)


def print_import(result: ImportResult) -> None:
    console = _console()
    console.print(_written(result.result))
    if result.report.skipped:
        console.print(f"skipped {result.report.skipped} bad rows:")
        for line in result.report.errors[:20]:
            console.print(f"  {line}", markup=False)


def print_from_traces(result: WriteResult, counts: TraceCounts) -> None:
    console = _console()
    console.print(_written(result))
    console.print(f"{counts.matched} traces matched; {counts.skipped_without_content} had no stored content")


def print_versions(name: str, versions: list[VersionInfo]) -> None:
    from rich.table import Table

    table = Table(
        "version", "rows", "hash", "operation", "parents", "author", "created", "message", title=name
    )
    for version in versions:
        table.add_row(
            f"v{version.number}",
            str(version.row_count),
            version.content_hash[:12],
            version.operation,
            ", ".join(version.parents),
            version.author or "",
            _when(version.created_at),
            version.message or "",
        )
    _console().print(table)


def print_version(version: VersionInfo, rows: list[tuple[int, str, Row]]) -> None:
    from rich.table import Table

    console = _console()
    console.print(f"[bold]{version.ref}[/bold]  {version.row_count} rows  hash {version.content_hash[:12]}")
    console.print(f"operation {version.operation}  parents {', '.join(version.parents) or '-'}", markup=False)
    if version.params:
        console.print(f"params {_short(version.params, 200)}", markup=False)
    console.print(f"by {version.author or '-'} at {_when(version.created_at)}", markup=False)
    if version.report:
        from llmops.datasets.cleaning.report_view import render_reports

        console.print(render_reports(version.report, title="cleaning report"))
    fields = sorted({key for _, _, row in rows for key in row})
    table = Table("#", *fields)
    for position, _, row in rows:
        table.add_row(str(position), *(_short(row[field]) if field in row else "" for field in fields))
    console.print(table)


def print_diff(found: DatasetDiff) -> None:
    console = _console()
    console.print(
        f"{found.base} → {found.other}: +{found.added} added, -{found.removed} removed, "
        f"~{found.changed} changed, {found.unchanged} unchanged (key: {found.key or 'none'})",
        markup=False,
    )
    for row in found.examples["added"]:
        console.print(f"[green]+ {_short(row, 150)}[/green]")
    for row in found.examples["removed"]:
        console.print(f"[red]- {_short(row, 150)}[/red]")
    for pair in found.examples["changed"]:
        console.print(f"[yellow]~ {_short(pair['before'], 150)}[/yellow]")
        console.print(f"[yellow]  → {_short(pair['after'], 150)}[/yellow]")


def print_finetune_export(result: FinetuneExport) -> None:
    console = _console()
    for split, path in result.files.items():
        console.print(f"{split}: {result.counts.get(split, 0)} examples → {path}", markup=False)
    if result.skipped:
        console.print(f"skipped {result.skipped} invalid rows:")
        for problem in result.problems[:20]:
            console.print(f"  {problem}", markup=False)


def print_clean(result: CleanResult) -> None:
    from llmops.datasets.cleaning.report_view import render_reports

    console = _console()
    console.print(render_reports(result.reports, title=f"cleaning {result.source}"))
    console.print(_written(result.result))


def print_profile(found: DatasetProfile) -> None:
    from llmops.cli.profile_view import render_profile

    console = _console()
    for part in render_profile(found):
        console.print(part)

"""Cleaning reports as a Rich table, for ``llmops datasets clean`` and for reports stored with a version."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

from llmops.datasets.cleaning.base import StepReport

TOP_REASONS = 3


def render_reports(reports: Sequence[StepReport | Mapping[str, Any]], *, title: str | None = None) -> Table:
    """One line per step: rows in and out, removed, changed, and its most frequent reasons with counts.

    Accepts live :class:`StepReport` objects or their stored ``to_dict()`` form.
    """
    table = Table(title=title)
    table.add_column("step")
    for column in ("in", "out", "removed", "changed"):
        table.add_column(column, justify="right")
    table.add_column("top reasons")
    for report in reports:
        data = report.to_dict() if isinstance(report, StepReport) else report
        reasons = sorted(dict(data.get("reasons") or {}).items(), key=lambda item: (-item[1], item[0]))
        shown = [f"{reason} ({count:,})" for reason, count in reasons[:TOP_REASONS]]
        if len(reasons) > TOP_REASONS:
            shown.append(f"... {len(reasons) - TOP_REASONS} more")
        table.add_row(
            str(data.get("step", "?")),
            *(f"{int(data.get(key) or 0):,}" for key in ("rows_in", "rows_out", "removed", "changed")),
            "\n".join(shown) or "-",
        )
    return table

"""Comparison reports: JSON for machines, Markdown for pull requests, one self-contained HTML file with
inline SVG plots for people, and Rich renderables for ``llmops evals compare``.

All four say the same things, from one :class:`~llmops.evals.compare.Comparison`: per run and metric
the aggregates with intervals; per candidate and metric the means, the paired difference with its
interval, the p-value and the verdict; the items that changed most. The HTML needs no server, no
script and no network: its plots are SVG written here (per metric the runs' score distributions as
histograms on one scale, and per candidate the histogram of paired differences with the mean and its
interval marked), and it parses as XML.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
from collections.abc import Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal

from llmops.errors import UserError
from llmops.evals.compare import (
    ChangedItem,
    Comparison,
    MetricAggregate,
    MetricComparison,
    RunComparison,
    Verdict,
)
from llmops.evals.plots import difference_plot, distribution_plot
from llmops.stats import Interval

if TYPE_CHECKING:
    from rich.console import RenderableType

__all__ = [
    "FORMATS",
    "comparison_to_dict",
    "render_comparison",
    "render_html",
    "render_json",
    "render_markdown",
    "render_report",
]

ReportFormat = Literal["markdown", "json", "html"]
FORMATS: tuple[ReportFormat, ...] = ("markdown", "json", "html")
OUTPUT_CHARS = 300  # outputs are cut to this many characters in tables
_VERDICT_STYLE = {
    Verdict.BETTER: "green",
    Verdict.WORSE: "red",
    Verdict.NO_DIFFERENCE: "yellow",
    Verdict.NO_ITEMS: "dim",
}
METHODS = (
    "Means: percentile bootstrap intervals. Differences: mean of per-item differences on the items both "
    "runs scored, with a paired percentile bootstrap interval; p-value from the two-sided paired "
    "permutation (sign-flip) test. Positive differences mean the candidate is better (for metrics where "
    "lower is better the sign is reversed)."
)


def render_report(comparison: Comparison, format: str) -> str:
    """The report in ``format`` (one of :data:`FORMATS`)."""
    renderers = {"markdown": render_markdown, "json": render_json, "html": render_html}
    renderer = renderers.get(format)
    if renderer is None:
        raise UserError(f"unknown report format {format!r}; use one of {', '.join(FORMATS)}", param="format")
    return renderer(comparison)


# --- numbers ----------------------------------------------------------------------------------------


def _num(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{value:.4g}"


def _signed(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:+.4g}"


def _ci(interval: Interval | None, fmt: Any = _num) -> str:
    return "" if interval is None else f"[{fmt(interval.low)}, {fmt(interval.high)}]"


def _with_ci(value: float | None, interval: Interval | None, fmt: Any = _num) -> str:
    return f"{fmt(value)} {_ci(interval, fmt)}".strip()


def _p(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2g}" if value >= 0.001 else f"{value:.1e}"


def _pass_rate(aggregate: MetricAggregate) -> str:
    if aggregate.pass_rate is None:
        return "–"
    op = ">=" if aggregate.higher_is_better else "<="
    return f"{_with_ci(aggregate.pass_rate, aggregate.pass_ci)} at {op} {_num(aggregate.threshold)}"


def _direction(higher_is_better: bool) -> str:
    return "higher is better" if higher_is_better else "lower is better"


def _cut(text: str | None) -> str:
    if text is None:
        return ""
    return text if len(text) <= OUTPUT_CHARS else text[: OUTPUT_CHARS - 1] + "…"


def _percent(share: float) -> str:
    return f"{share * 100:g}%"


# --- JSON -------------------------------------------------------------------------------------------


def _clean(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


_LEFT_OUT = frozenset({"metric", "differences"})  # the key of its mapping already; per-item data


def _plain(value: Any) -> Any:
    """Dataclasses as dicts, intervals as ``[low, high]``, verdicts as text, NaN as None."""
    if isinstance(value, Interval):
        return [_clean(value.low), _clean(value.high)]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float):
        return _clean(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return {item.name: _plain(getattr(value, item.name)) for item in fields if item.name not in _LEFT_OUT}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value


def comparison_to_dict(comparison: Comparison) -> dict[str, Any]:
    """The comparison as JSON-ready data (intervals as ``[low, high]``, no NaN: missing is None)."""
    return {
        "dataset_version": comparison.dataset_version,
        "alpha": comparison.alpha,
        "confidence": comparison.confidence,
        "resamples": comparison.resamples,
        "permutations": comparison.permutations,
        "seed": comparison.seed,
        "metrics": list(comparison.metrics),
        "methods": METHODS,
        "runs": [
            {
                "id": run.id,
                "name": run.name,
                "role": "baseline" if index == 0 else "candidate",
                "aggregates": {
                    aggregate.metric: _plain(aggregate) for aggregate in comparison.aggregates[run.id]
                },
            }
            for index, run in enumerate(comparison.runs)
        ],
        "comparisons": [
            {
                "baseline": found.baseline,
                "candidate": found.candidate,
                "metrics": {metric.metric: _plain(metric) for metric in found.metrics},
            }
            for found in comparison.comparisons
        ],
    }


def render_json(comparison: Comparison) -> str:
    return json.dumps(comparison_to_dict(comparison), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


# --- tables shared by Markdown and HTML ---------------------------------------------------------------

Table = tuple[list[str], list[list[str]]]


def _runs_table(comparison: Comparison) -> Table:
    head = ["run", "metric", "n", "missing", "mean [CI]", "median", "stdev", "min", "max", "pass rate [CI]"]
    rows = [
        [
            comparison.run(run_id).label,
            aggregate.metric,
            str(aggregate.n),
            str(aggregate.missing),
            _with_ci(aggregate.mean, aggregate.mean_ci),
            _num(aggregate.median),
            _num(aggregate.stdev),
            _num(aggregate.min),
            _num(aggregate.max),
            _pass_rate(aggregate),
        ]
        for run_id, aggregates in comparison.aggregates.items()
        for aggregate in aggregates
    ]
    return head, rows


def _comparison_table(comparison: Comparison, found: RunComparison) -> Table:
    head = ["metric", "paired items", "baseline mean [CI]", "candidate mean [CI]", "difference [CI]", "p"]
    head.append("verdict")
    rows = [
        [
            f"{metric.metric} ({_direction(metric.higher_is_better)})",
            _paired(metric),
            _with_ci(metric.baseline_mean, metric.baseline_ci),
            _with_ci(metric.candidate_mean, metric.candidate_ci),
            _with_ci(metric.difference, metric.difference_ci, _signed),
            _p(metric.p_value),
            metric.verdict.value,
        ]
        for metric in found.metrics
    ]
    return head, rows


def _paired(metric: MetricComparison) -> str:
    extra = []
    if metric.only_baseline:
        extra.append(f"{metric.only_baseline} baseline only")
    if metric.only_candidate:
        extra.append(f"{metric.only_candidate} candidate only")
    return f"{metric.n_paired}" + (f" ({', '.join(extra)})" if extra else "")


def _changed_table(items: Sequence[ChangedItem], with_input: bool) -> Table:
    head = ["item", "baseline", "candidate", "difference", "baseline output", "candidate output"]
    if with_input:
        head.insert(1, "input")
    rows = []
    for item in items:
        row = [
            str(item.position),
            _num(item.baseline),
            _num(item.candidate),
            _signed(item.difference),
            _cut(item.baseline_output),
            _cut(item.candidate_output),
        ]
        if with_input:
            row.insert(1, _cut(item.input))
        rows.append(row)
    return head, rows


def _settings_line(comparison: Comparison) -> str:
    return (
        f"alpha {comparison.alpha}, {_percent(comparison.confidence)} intervals, "
        f"{comparison.resamples:,} bootstrap resamples, {comparison.permutations:,} sign flips, "
        f"seed {comparison.seed}."
    )


def _title(comparison: Comparison) -> str:
    return f"Comparison of {len(comparison.runs)} runs on {comparison.dataset_version}"


def _vs(comparison: Comparison, found: RunComparison) -> str:
    return f"{comparison.run(found.candidate).label} vs {comparison.run(found.baseline).label} (baseline)"


# --- Markdown ---------------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    """One line of literal text: pipes and backslashes escaped, HTML tags shown rather than rendered."""
    escaped = text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(escaped.splitlines())


def _md_table(table: Table) -> list[str]:
    head, rows = table
    lines = ["| " + " | ".join(_md_cell(cell) for cell in head) + " |", "|" + " --- |" * len(head)]
    lines.extend("| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in rows)
    return lines


def render_markdown(comparison: Comparison) -> str:
    lines = [f"# {_title(comparison)}", "", _settings_line(comparison), "", METHODS, "", "## Runs", ""]
    lines += _md_table(_runs_table(comparison))
    for found in comparison.comparisons:
        lines += ["", f"## {_vs(comparison, found)}", ""]
        lines += _md_table(_comparison_table(comparison, found))
        for metric in found.metrics:
            if metric.top_changed:
                lines += ["", f"### Items that changed most: {metric.metric}", ""]
                lines += _md_table(_changed_table(metric.top_changed, _has_inputs(metric)))
    return "\n".join(lines) + "\n"


def _has_inputs(metric: MetricComparison) -> bool:
    return any(item.input for item in metric.top_changed)


# --- HTML -------------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 78rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.text { white-space: pre-wrap; max-width: 28rem; font-family: ui-monospace, monospace; font-size: 0.8rem; }
.better { color: #1a7f37; font-weight: bold; }
.worse { color: #cf222e; font-weight: bold; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; }
figcaption { font-size: 0.85rem; color: #555; }
"""

_TEXT_COLUMNS = {"input", "baseline output", "candidate output"}


def _html_table(table: Table, verdict_column: bool = False) -> str:
    head, rows = table
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(cell)}</th>" for cell in head) + "</tr>"]
    for row in rows:
        cells = []
        for name, cell in zip(head, row, strict=True):
            css = ""
            if name in _TEXT_COLUMNS:
                css = ' class="text"'
            elif verdict_column and name == "verdict" and cell in ("better", "worse"):
                css = f' class="{cell}"'
            cells.append(f"<td{css}>{html.escape(cell)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _html_plots(comparison: Comparison, metric: str) -> str:
    series = []
    for run in comparison.runs:
        aggregate = _aggregate(comparison, run.id, metric)
        series.append((run.label, run.metrics[metric].scored(), aggregate.mean, aggregate.mean_ci))
    figures = [_figure(distribution_plot(metric, series), f"{metric}: scores per run, mean and interval")]
    for found in comparison.comparisons:
        item = _metric_of(found, metric)
        if item.n_paired:
            label = comparison.run(found.candidate).label
            svg = difference_plot(metric, label, item.differences, item.difference, item.difference_ci)
            figures.append(
                _figure(svg, f"{metric}: paired differences, {label} vs baseline (positive: better)")
            )
    return '<div class="plots">' + "\n".join(figures) + "</div>"


def render_html(comparison: Comparison) -> str:
    """One self-contained page (well-formed XML, so any HTML or XML parser reads it)."""
    title = html.escape(_title(comparison))
    body = [
        f"<h1>{title}</h1>",
        f"<p>{html.escape(_settings_line(comparison))}</p>",
        f"<p>{html.escape(METHODS)}</p>",
        "<h2>Runs</h2>",
        _html_table(_runs_table(comparison)),
    ]
    for found in comparison.comparisons:
        body += [f"<h2>{html.escape(_vs(comparison, found))}</h2>"]
        body.append(_html_table(_comparison_table(comparison, found), verdict_column=True))
    for metric in comparison.metrics:
        body += [f"<h2>{html.escape(metric)}</h2>", _html_plots(comparison, metric)]
        for found in comparison.comparisons:
            item = _metric_of(found, metric)
            if item.top_changed:
                body.append(f"<h3>Items that changed most: {html.escape(_vs(comparison, found))}</h3>")
                body.append(_html_table(_changed_table(item.top_changed, _has_inputs(item))))
    return (
        '<!DOCTYPE html>\n<html xmlns="http://www.w3.org/1999/xhtml" lang="en">\n'
        '<head>\n<meta charset="utf-8"/>\n'
        f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


# --- Rich -------------------------------------------------------------------------------------------


def render_comparison(comparison: Comparison) -> list[RenderableType]:
    """For ``llmops evals compare``: a table per metric (each run's mean with its interval; each
    candidate's difference with its interval, p-value and coloured verdict), then the items that
    changed most."""
    from rich.table import Table as RichTable
    from rich.text import Text

    parts: list[RenderableType] = [Text(f"{_title(comparison)}: {_settings_line(comparison)}", style="bold")]
    for metric in comparison.metrics:
        table = RichTable(
            "run", "n", "mean [CI]", "difference [CI]", "p", "verdict",
            title=f"{metric} ({_direction(_higher(comparison, metric))})",
        )  # fmt: skip
        baseline = comparison.baseline
        aggregate = _aggregate(comparison, baseline.id, metric)
        table.add_row(
            Text(f"{baseline.label} (baseline)"),
            str(aggregate.n),
            _with_ci(aggregate.mean, aggregate.mean_ci),
        )
        for found in comparison.comparisons:
            item = _metric_of(found, metric)
            candidate = _aggregate(comparison, found.candidate, metric)
            table.add_row(
                Text(comparison.run(found.candidate).label),
                str(candidate.n),
                _with_ci(candidate.mean, candidate.mean_ci),
                _with_ci(item.difference, item.difference_ci, _signed),
                _p(item.p_value),
                Text(item.verdict.value, style=_VERDICT_STYLE[item.verdict]),
            )
        parts.append(table)
    parts.extend(_rich_changed(comparison))
    parts.append(Text(METHODS, style="dim"))
    return parts


def _rich_changed(comparison: Comparison) -> list[RenderableType]:
    from rich.table import Table as RichTable
    from rich.text import Text

    tables: list[RenderableType] = []
    for found in comparison.comparisons:
        for item in found.metrics:
            if not item.top_changed:
                continue
            head, rows = _changed_table(item.top_changed, _has_inputs(item))
            table = RichTable(*head, title=f"changed most on {item.metric}: {_vs(comparison, found)}")
            for row in rows:
                table.add_row(*(Text(cell) for cell in row))  # outputs are text, not Rich markup
            tables.append(table)
    return tables


def _aggregate(comparison: Comparison, run_id: str, metric: str) -> MetricAggregate:
    return next(found for found in comparison.aggregates[run_id] if found.metric == metric)


def _metric_of(found: RunComparison, metric: str) -> MetricComparison:
    return next(item for item in found.metrics if item.metric == metric)


def _higher(comparison: Comparison, metric: str) -> bool:
    return _aggregate(comparison, comparison.baseline.id, metric).higher_is_better

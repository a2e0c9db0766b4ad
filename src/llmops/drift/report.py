"""A drift report for people: one self-contained HTML page, and a Rich summary for the terminal.

Both read the report dict of :meth:`llmops.drift.service.DriftService.run` (the JSON that
``POST /api/drift`` answers and ``drift_check`` stores), so a stored check renders the same later. The
HTML page needs no server, no script and no network: its plots are inline SVG
(:mod:`llmops.drift.plots`), it parses as XML, and prompts quoted in it are escaped.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING, Any

from llmops.drift.plots import cdf_plot, rate_plot, scatter_plot, share_plot

if TYPE_CHECKING:
    from rich.console import RenderableType

__all__ = ["render_html", "render_summary"]

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_STATUS_STYLE = {"drift": "bold red", "ok": "green", "skipped": "dim"}
_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 78rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.text { white-space: pre-wrap; max-width: 32rem; font-family: ui-monospace, monospace; font-size: 0.8rem; }
.drift { color: #cf222e; font-weight: bold; }
.ok { color: #1a7f37; }
.skipped { color: #888; }
.score { font-size: 1.3rem; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; }
figcaption { font-size: 0.85rem; color: #555; }
"""


def _text(value: Any) -> str:
    """Escaped text without the characters XML forbids."""
    return html.escape(_CONTROL.sub("\ufffd", str(value)))


def _p(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2e}" if value < 1e-3 else f"{value:.4f}"


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _subject(report: dict[str, Any]) -> str:
    parts = [f"model {report['model']}" if report.get("model") else "every model"]
    if report.get("prompt"):
        parts.append(f"prompt {report['prompt']}")
    return ", ".join(parts)


def _side_line(side: dict[str, Any]) -> str:
    if side["kind"] == "dataset":
        where = f"dataset {side['dataset']} ({side['traces']:,} rows)"
    else:
        where = (
            f"{side['window']} ({side['since'][:16]} → {side['until'][:16]} UTC, {side['traces']:,} traces)"
        )
    return f"{where}; sampled {side['sampled']:,}: {side['prompts']:,} prompts, {side['answers']:,} answers"


def _verdict(report: dict[str, Any]) -> str:
    drifting = [check["title"] for check in report["checks"] if check["status"] == "drift"]
    if not drifting:
        return f"no drift at alpha {report['alpha']:g} (score 0)"
    return f"drift in {', '.join(drifting)}: score {report['score']:.3f}"


# --- HTML ---------------------------------------------------------------------------------------------


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{_text(caption)}</figcaption></figure>"


def _checks_table(report: dict[str, Any]) -> str:
    head = ("check", "status", "summary", "test", "p-value", "Holm-adjusted", "effect (0–1)")
    out = ["<table>", "<tr>" + "".join(f"<th>{name}</th>" for name in head) + "</tr>"]
    for check in report["checks"]:
        status = check["status"] + (" (flagged)" if check["flagged"] and check["status"] != "drift" else "")
        cells = [
            f"<td>{_text(check['title'])}</td>",
            f'<td class="{check["status"]}">{_text(status)}</td>',
            f"<td>{_text(check['summary'])}</td>",
            f"<td>{_text(check['test'] or '–')}</td>",
            f"<td>{_p(check['p_value'])}</td>",
            f"<td>{_p(check['p_adjusted'])}</td>",
            f"<td>{_num(check['effect'])}</td>",
        ]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _plots(report: dict[str, Any]) -> list[str]:
    checks = {check["name"]: check for check in report["checks"] if check["status"] != "skipped"}
    figures = []
    for name in ("prompt_length", "answer_length"):
        if name in checks:
            details = checks[name]["details"]
            svg = cdf_plot(checks[name]["title"], details["quantiles"], details["largest_gap_at"])
            figures.append(_figure(svg, f"{checks[name]['title']}: cumulative share of texts up to a length"))
    if "language" in checks:
        svg = share_plot("Language mix", checks["language"]["details"]["shares"], "language")
        figures.append(_figure(svg, "Share of prompts per language (top 10)"))
    if "embedding" in checks:
        highlight = checks["new_topics"]["details"]["highlight"] if "new_topics" in checks else []
        svg = scatter_plot("Prompt embeddings", checks["embedding"]["details"]["projection"], highlight)
        figures.append(_figure(svg, "Sampled prompts on the first two principal axes of their embeddings"))
    for name in ("refusal_rate", "error_rate", "thumbs_down_rate"):
        if name in checks:
            details = checks[name]["details"]
            figures.append(
                _figure(
                    rate_plot(checks[name]["title"], details["reference"], details["current"]),
                    f"{checks[name]['title']} with 95% Wilson intervals",
                )
            )
    return figures


def _topics(report: dict[str, Any]) -> list[str]:
    found = [c for c in report["checks"] if c["name"] == "new_topics" and c["status"] != "skipped"]
    clusters = found[0]["details"]["clusters"] if found else []
    if not clusters:
        return []
    out = [
        "<h2>New topics</h2>",
        "<table>",
        "<tr><th>share</th><th>far from the reference</th><th>example prompts</th>"
        "<th>nearest reference prompt</th></tr>",
    ]
    for cluster in clusters:
        examples = "\n\n".join(cluster["examples"])
        out.append(
            f"<tr><td>{cluster['share']:.1%} ({cluster['size']})</td><td>{cluster['novel_share']:.0%}</td>"
            f'<td class="text">{_text(examples)}</td>'
            f'<td class="text">{_text(cluster["nearest_reference"])}</td></tr>'
        )
    out.append("</table>")
    return out


def render_html(report: dict[str, Any]) -> str:
    """One self-contained page (well-formed XML, so any HTML or XML parser reads it)."""
    title = _text(f"Drift: {_subject(report)}")
    verdict_class = "drift" if report["drifted"] else "ok"
    body = [
        f"<h1>{title}</h1>",
        f'<p class="score"><span class="{verdict_class}">{_text(_verdict(report))}</span></p>',
        "<table>",
        f"<tr><th>reference</th><td>{_text(_side_line(report['reference']))}</td></tr>",
        f"<tr><th>current</th><td>{_text(_side_line(report['current']))}</td></tr>",
        f"<tr><th>run</th><td>{_text(report['created_at'])}, check {_text(report['id'])}, seed "
        f"{report['seed']}, alpha {report['alpha']:g}</td></tr>",
        "</table>",
        "<h2>Checks</h2>",
        _checks_table(report),
        f"<p>{_text(report['note'])} The score is the largest effect among the checks in drift.</p>",
        "<h2>Plots</h2>",
        '<div class="plots">' + "\n".join(_plots(report)) + "</div>",
        *_topics(report),
    ]
    return (
        '<!DOCTYPE html>\n<html xmlns="http://www.w3.org/1999/xhtml" lang="en">\n'
        '<head>\n<meta charset="utf-8"/>\n'
        f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


# --- Rich ---------------------------------------------------------------------------------------------


def render_summary(report: dict[str, Any]) -> list[RenderableType]:
    """For ``llmops drift report``: the two sides, a table of the checks, the verdict, new topics."""
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    parts: list[RenderableType] = [
        Text(f"Drift: {_subject(report)}", style="bold"),
        Text(f"reference: {_side_line(report['reference'])}"),
        Text(f"current:   {_side_line(report['current'])}"),
    ]
    table = Table("check", "status", "p", "adjusted p", "effect", "summary")
    for check in report["checks"]:
        status = check["status"] + ("*" if check["flagged"] and check["status"] != "drift" else "")
        table.add_row(
            escape(check["title"]),
            Text(status, style=_STATUS_STYLE.get(check["status"], "")),
            _p(check["p_value"]),
            _p(check["p_adjusted"]),
            _num(check["effect"]),
            escape(check["summary"]),
        )
    parts.append(table)
    style = "bold red" if report["drifted"] else "bold green"
    parts.append(Text(_verdict(report), style=style))
    if any(check["flagged"] and check["status"] != "drift" for check in report["checks"]):
        parts.append(Text("* p < alpha on its own, not after Holm's adjustment for the number of checks"))
    for check in report["checks"]:
        if check["name"] == "new_topics" and check["status"] != "skipped":
            for cluster in check["details"]["clusters"][:5]:
                parts.append(
                    Text(
                        f"new topic ({cluster['share']:.0%} of prompts): {cluster['examples'][0]}",
                        style="yellow",
                    )
                )
    return parts

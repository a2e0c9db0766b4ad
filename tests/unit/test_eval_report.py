"""Comparison reports: the HTML is well-formed with one SVG per plot, Markdown tables are well formed,
JSON round-trips, and the Rich view shows verdicts without interpreting outputs as markup."""

from __future__ import annotations

import json
import random
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from rich.console import Console

from llmops.errors import UserError
from llmops.evals.compare import Comparison, MetricScores, RunScores, compare_runs
from llmops.evals.plots import difference_plot, distribution_plot, histogram, nice_ticks
from llmops.evals.report import (
    comparison_to_dict,
    render_comparison,
    render_html,
    render_json,
    render_markdown,
    render_report,
)
from llmops.stats import Interval

SVG = "{http://www.w3.org/2000/svg}svg"
XHTML = "{http://www.w3.org/1999/xhtml}"
TRICKY = 'a | pipe, <b>tags</b> & "quotes"\nsecond line [bold]not markup[/bold] \\ end'


def run(run_id: str, seed: int, shift: float = 0.0) -> RunScores:
    rng = random.Random(seed)
    quality = {
        i: min(1.0, max(0.0, random.Random(i).random() + shift + rng.gauss(0, 0.1))) for i in range(80)
    }
    latency = {i: 200.0 + 50 * rng.random() for i in range(80)}
    judge: dict[int, float | None] = {i: None for i in range(80)}  # a metric nobody scored
    return RunScores(
        run_id,
        f"name {run_id}" if run_id != "c" else None,
        "qa@3",
        {
            "rouge_l": MetricScores("rouge_l", quality, threshold=0.5),
            "latency": MetricScores("latency", latency, higher_is_better=False),
            "judge": MetricScores("judge", judge),
        },
        outputs={i: f"{TRICKY} {run_id}" for i in range(80)},
        inputs={i: f"question {i}" for i in range(80)},
    )


@pytest.fixture(scope="module")
def comparison() -> Comparison:
    return compare_runs(run("a", 1), [run("b", 2, shift=-0.1), run("c", 3)], resamples=300, permutations=1000)


def test_html_is_well_formed_with_one_svg_per_plot(comparison: Comparison) -> None:
    page = render_html(comparison)
    root = ET.fromstring(page)  # XML: every tag closed, every entity valid
    svgs = root.findall(f".//{SVG}")
    # per metric: one distribution plot, plus one difference plot per candidate with paired items
    # (rouge_l and latency: 1 + 2 each; judge: no scores, so only its distribution)
    assert len(svgs) == 2 * 3 + 1
    assert all(svg.find("{http://www.w3.org/2000/svg}title") is not None for svg in svgs)
    assert page.count("<svg") == len(svgs)
    assert "<script" not in page
    assert "http://" not in page.replace("http://www.w3.org/", "")  # nothing fetched from anywhere
    parser = HTMLParser()
    parser.feed(page)  # and the browser's kind of parser reads it too
    parser.close()
    text = "".join(root.itertext())
    assert TRICKY.split("\n")[0] in text  # outputs shown literally, escaped in the markup
    cells = [cell.text for cell in root.iter(f"{XHTML}td") if cell.get("class") == "worse"]
    assert "worse" in cells  # b is worse on rouge_l, and the verdict is marked for colouring


def _markdown_tables(text: str) -> list[list[str]]:
    tables: list[list[str]] = []
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables + ([current] if current else [])


def _cells(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line)) - 1  # unescaped pipes between and around the cells


def test_markdown_tables_are_well_formed(comparison: Comparison) -> None:
    text = render_markdown(comparison)
    tables = _markdown_tables(text)
    assert len(tables) >= 1 + 2 + 2 * 2  # runs, one per candidate, changed items per candidate and metric
    for table in tables:
        assert len(table) >= 3
        assert re.fullmatch(r"\|( --- \|)+", table[1])
        width = _cells(table[0])
        assert all(_cells(line) == width for line in table)
    assert "<b>" not in text  # HTML in outputs is shown, not rendered
    assert "&lt;b&gt;tags&lt;/b&gt;" in text
    assert "name b vs name a (baseline)" in text
    assert "| latency (lower is better) |" in text


def test_json_round_trips(comparison: Comparison) -> None:
    text = render_json(comparison)
    data = json.loads(text)
    assert data == comparison_to_dict(comparison)
    assert json.loads(json.dumps(data)) == data
    assert "NaN" not in text
    first = comparison.comparisons[0]
    rouge = next(item for item in first.metrics if item.metric == "rouge_l")
    stored = data["comparisons"][0]["metrics"]["rouge_l"]
    assert stored["difference"] == rouge.difference
    assert rouge.difference_ci is not None
    assert stored["difference_ci"] == [rouge.difference_ci.low, rouge.difference_ci.high]
    assert stored["p_value"] == rouge.p_value
    assert stored["verdict"] == rouge.verdict.value == "worse"
    assert stored["top_changed"][0]["candidate_output"] == f"{TRICKY} b"
    judge = data["runs"][0]["aggregates"]["judge"]
    assert (judge["n"], judge["mean"], judge["mean_ci"]) == (0, None, None)
    assert data["comparisons"][0]["metrics"]["judge"]["verdict"] == "no paired items"
    assert [entry["role"] for entry in data["runs"]] == ["baseline", "candidate", "candidate"]


def test_render_report_dispatches_and_refuses_unknown_formats(comparison: Comparison) -> None:
    assert render_report(comparison, "json") == render_json(comparison)
    assert render_report(comparison, "markdown") == render_markdown(comparison)
    assert render_report(comparison, "html").startswith("<!DOCTYPE html>")
    with pytest.raises(UserError, match="markdown, json, html"):
        render_report(comparison, "pdf")


def test_rich_view_has_a_table_per_metric_and_coloured_verdicts(comparison: Comparison) -> None:
    console = Console(record=True, width=200, color_system="truecolor")
    for part in render_comparison(comparison):
        console.print(part)
    text = console.export_text(clear=False)
    for title in ("rouge_l (higher is better)", "latency (lower is better)", "judge (higher is better)"):
        assert title in text
    assert "name a (baseline)" in text
    assert "worse" in text
    assert "[bold]not markup[/bold]" in text  # outputs are printed as text
    assert "changed most on rouge_l" in text
    styled = console.export_html(inline_styles=True)
    assert re.search(r'<span style="color: #800000[^"]*">worse *</span>', styled)  # red


def test_plot_helpers() -> None:
    assert nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(-13.0, 21.0) == [-10.0, 0.0, 10.0, 20.0]
    assert histogram([0.0, 0.05, 0.5, 1.0], 0.0, 1.0, bins=10) == [2, 0, 0, 0, 0, 1, 0, 0, 0, 1]
    svg = difference_plot("m", "cand", [0.0, 0.0], 0.0, Interval(0.0, 0.0))  # no spread at all
    assert ET.fromstring(svg).tag == SVG
    assert ET.fromstring(distribution_plot("m", [("only", [], None, None)])).tag == SVG

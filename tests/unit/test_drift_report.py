"""The drift report as HTML (self-contained, well-formed, escaped) and in the terminal, and `llmops drift`."""

from __future__ import annotations

import json
import random
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from drift_support import REFERENCE_MIX, SHIFTED_MIX, WordHashEmbedder, prompts, trace_row
from llmops.cli.main import app
from llmops.datasets.service import DatasetService
from llmops.drift.report import render_html, render_summary
from llmops.drift.service import DriftRequest, DriftService
from llmops.store import TraceRepository, open_database

pytest.importorskip("numpy")
pytest.importorskip("py3langid")

NOW = datetime.now(UTC).replace(microsecond=0)
HOSTILE = "<script>alert('x')</script> & \x01 Wie ändere ich die Kreditkarte für mein Konto 7?"


def _database(tmp_path: Path) -> str:
    """A SQLite database with a shifted current window (30% German, one hostile prompt)."""
    url = f"sqlite:///{tmp_path / 'llmops.db'}"
    engine = open_database(url)
    rng = random.Random(4)
    rows = [
        trace_row(NOW - timedelta(days=3, seconds=10 * n), text)
        for n, text in enumerate(prompts(rng, 150, REFERENCE_MIX))
    ]
    rows += [
        trace_row(NOW - timedelta(minutes=30, seconds=10 * n), text)
        for n, text in enumerate([*prompts(rng, 149, SHIFTED_MIX), HOSTILE])
    ]
    TraceRepository(engine).insert_many(rows)
    engine.dispose()
    return url


@pytest.fixture
def report(tmp_path: Path) -> dict[str, Any]:
    engine = open_database(_database(tmp_path))
    try:
        service = DriftService(engine, DatasetService(engine), permutations=999, embedder=WordHashEmbedder)
        return service.run(DriftRequest(reference="4d..2d", current="1h"))
    finally:
        engine.dispose()


def test_the_html_report_is_self_contained_well_formed_and_escaped(report: dict[str, Any]) -> None:
    # which prompts a new topic shows depends on the (random) trace ids sampled: plant the hostile one
    [topics] = [check for check in report["checks"] if check["name"] == "new_topics"]
    topics["details"]["clusters"][0]["examples"][0] = HOSTILE
    page = render_html(report)
    root = ET.fromstring(page.split("\n", 1)[1])  # parses as XML (after the doctype)
    assert root.tag.endswith("html")
    assert page.count("<svg") >= 5  # two lengths, languages, embeddings, rates
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp;" in page
    assert "Kreditkarte" in page
    assert "\x01" not in page
    assert not re.search(r"(src|href)=\"https?:", page)  # nothing to fetch
    assert "Holm" in page
    assert "New topics" in page
    assert "drift in" in page


def test_the_summary_names_every_check(report: dict[str, Any]) -> None:
    console = Console(record=True, width=200)
    for part in render_summary(report):
        console.print(part)
    text = console.export_text()
    for title in ("Prompt length", "Language mix", "Prompt embeddings", "New topics", "Error rate"):
        assert title in text
    assert "drift in" in text
    assert "new topic (" in text


def test_cli_report_history_and_show(tmp_path: Path) -> None:
    url = _database(tmp_path)
    runner = CliRunner()
    out = tmp_path / "drift.html"
    base = ["--database-url", url, "drift"]
    checks = ["--check", "language", "--check", "prompt_length", "--check", "error_rate"]
    done = runner.invoke(
        app,
        [*base, "report", "--reference", "4d..2d", "--current", "1h", *checks, "--html", str(out)],
        env={"COLUMNS": "200"},
    )
    assert done.exit_code == 0, done.output
    assert "Language mix" in done.output
    assert re.search(r"drift in [^\n]*Language mix", done.output), done.output
    assert out.read_text().startswith("<!DOCTYPE html>")
    listed = runner.invoke(app, [*base, "history", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)["data"]
    assert len(rows) == 1
    assert rows[0]["drifted"] is True
    table = runner.invoke(app, [*base, "history"], env={"COLUMNS": "200"})
    assert "language" in table.output
    shown = runner.invoke(app, [*base, "show", rows[0]["id"], "--json"])
    assert json.loads(shown.output)["id"] == rows[0]["id"]
    unsaved = runner.invoke(app, [*base, "report", "--current", "1h", "--check", "error_rate", "--no-save"])
    assert unsaved.exit_code == 0, unsaved.output
    assert len(json.loads(runner.invoke(app, [*base, "history", "--json"]).output)["data"]) == 1


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    url = _database(tmp_path)
    runner = CliRunner()
    for args, message in (
        (["report", "--current", "soon"], "error: current: expected START..END"),
        (["report", "--dataset", "missing@1", "--check", "language"], "error: no dataset named 'missing'"),
        (["report", "--check", "colour"], "error: checks: unknown check(s) colour"),
        (["report", "--seed", "-1", "--check", "language"], "error: seed: must be 0 to"),
        (["show", "f" * 32], "error: no drift check"),
    ):
        done = runner.invoke(app, ["--database-url", url, "drift", *args])
        assert done.exit_code == 1, done.output
        assert done.output.strip().splitlines()[-1].startswith(message), done.output

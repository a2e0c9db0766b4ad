"""`llmops datasets`: the commands against a temporary SQLite database, in a subprocess as users run them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

LLMOPS = [sys.executable, "-m", "llmops"]

ROWS = [
    {"input": "Where is  my order?", "expected": "Let me check.", "metadata": {"id": 1}},
    {"input": "Where is  my order?", "expected": "Let me check.", "metadata": {"id": 1}},
    {"input": "<b>Refund</b> please", "expected": "Sure, call +44 20 7946 0958.", "metadata": {"id": 2}},
]
RECIPE = """\
steps:
  - strip_html: {}
  - clean_whitespace: {}
  - dedup_exact: {fields: [input, expected]}
  - pii: {fields: [expected], strategy: tag}
"""


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    database = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {
        "PATH": "/usr/bin:/bin",
        "LLMOPS_HOME": str(tmp_path / "home"),
        "HOME": str(tmp_path),
        "USER": "ann",
    }
    return subprocess.run(
        [*LLMOPS, "--database-url", database, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )


def _ok(tmp_path: Path, *args: str) -> str:
    result = _run(tmp_path, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _json(tmp_path: Path, *args: str) -> Any:
    return json.loads(_ok(tmp_path, *args, "--json"))


def _fails(tmp_path: Path, *args: str) -> str:
    result = _run(tmp_path, *args)
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return path


def test_import_clean_diff_show_and_export(tmp_path: Path, data: Path) -> None:
    imported = _json(tmp_path, "datasets", "import", "qa", str(data))
    assert imported["version"]["ref"] == "qa@1"
    assert imported["version"]["author"] == "ann"
    assert imported["rows"] == 3
    (tmp_path / "clean.yaml").write_text(RECIPE)
    cleaned = _json(tmp_path, "datasets", "clean", "qa", "--recipe", "clean.yaml")
    assert cleaned["version"]["ref"] == "qa@2"
    assert [report["removed"] for report in cleaned["reports"]] == [0, 0, 1, 0]
    assert cleaned["reports"][3]["changed"] == 1

    table = _ok(tmp_path, "datasets", "versions", "qa")
    assert "clean" in table
    assert "qa@1" in table
    versions = _json(tmp_path, "datasets", "versions", "qa")
    assert [(v["version"], v["operation"], v["parents"]) for v in versions] == [
        (1, "import", []),
        (2, "clean", ["qa@1"]),
    ]
    shown = _json(tmp_path, "datasets", "show", "qa@2", "--limit", "5")
    assert [item["row"]["input"] for item in shown["items"]] == ["Where is my order?", "Refund please"]
    assert shown["items"][1]["row"]["expected"] == "Sure, call <PHONE>."
    assert "cleaning report" in _ok(tmp_path, "datasets", "show", "qa@2")

    diff = _json(tmp_path, "datasets", "diff", "qa", "1", "2", "--key", "metadata.id")
    assert (diff["added"], diff["removed"], diff["changed"], diff["unchanged"]) == (0, 1, 2, 0)

    lines = _ok(tmp_path, "datasets", "export", "qa", "--format", "jsonl").splitlines()
    assert [json.loads(line)["metadata"]["id"] for line in lines] == [1, 2]
    _ok(tmp_path, "datasets", "export", "qa@1", "--format", "csv", "--out", "qa.csv")
    assert (tmp_path / "qa.csv").read_text().count("\n") == 4
    _ok(
        tmp_path,
        "datasets",
        "export",
        "qa@1",
        "--format",
        "chat",
        "--split",
        "0.5",
        "--seed",
        "1",
        "--out",
        "ft",
    )
    train = (tmp_path / "ft" / "train.jsonl").read_text().splitlines()
    validation = (tmp_path / "ft" / "validation.jsonl").read_text().splitlines()
    assert len(train) + len(validation) == 3
    assert json.loads(train[0])["messages"][-1]["role"] == "assistant"
    listed = _json(tmp_path, "datasets", "list")
    assert [(item["name"], item["latest_version"]) for item in listed] == [("qa", 2)]


def test_import_reports_bad_lines(tmp_path: Path, data: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "fine"}\n{"input": 3}\n{broken\n')
    line = _fails(tmp_path, "datasets", "import", "qa", str(bad))
    assert "bad.jsonl line 2: field 'input' must be a string" in line
    assert "nothing imported" in line
    assert "no datasets yet" in _ok(tmp_path, "datasets", "list")
    skipped = _json(tmp_path, "datasets", "import", "qa", str(bad), "--on-error", "skip")
    assert skipped["rows"] == 1
    assert skipped["skipped"] == 2
    assert [error.split(":")[0].rsplit("/")[-1] for error in skipped["errors"]] == [
        "bad.jsonl line 2",
        "bad.jsonl line 3",
    ]
    again = _json(tmp_path, "datasets", "import", "qa", str(bad), "--on-error", "skip")
    assert again["created"] is False


def test_profile(tmp_path: Path, data: Path) -> None:
    _ok(tmp_path, "datasets", "import", "qa", str(data))
    profile = _json(tmp_path, "datasets", "profile", "qa")
    assert profile["rows"] == 3
    assert "rows with PII" in _ok(tmp_path, "datasets", "profile", "qa")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("datasets", "show", "nope"), "no dataset named 'nope'"),
        (("datasets", "show", "bad name"), "invalid dataset"),
        (("datasets", "import", "qa", "missing.jsonl"), "missing.jsonl"),
        (("datasets", "import", "qa", "qa.jsonl", "--on-error", "maybe"), "--on-error"),
        (("datasets", "clean", "qa"), "--recipe"),
        (("datasets", "clean", "qa", "--step", "no_such_step"), "no_such_step"),
        (("datasets", "clean", "qa", "--step", "filter_length:min=x"), "filter_length"),
        (("datasets", "export", "qa", "--format", "chat"), "--out"),
        (("datasets", "export", "qa", "--format", "xml", "--out", "x"), "xml"),
        (("datasets", "from-traces", "t", "--since", "yesterday"), "since"),
        (("datasets", "from-traces", "t", "--feedback", "sideways"), "feedback"),
    ],
)
def test_errors_are_one_line(tmp_path: Path, data: Path, args: tuple[str, ...], message: str) -> None:
    _ok(tmp_path, "datasets", "import", "qa", str(data))
    assert message in _fails(tmp_path, *args)

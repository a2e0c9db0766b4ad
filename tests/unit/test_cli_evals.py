"""`llmops evals`: runs, scorers from the config, reports and the gate's exit codes, in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

LLMOPS = [sys.executable, "-m", "llmops"]
SCORERS = """\
from llmops.evals.scorers.registry import scorer


@scorer("shouted")
def shouted(output):
    return output is not None and output.isupper()
"""


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "LLMOPS_HOME": str(tmp_path / "home"),
        "HOME": str(tmp_path),
        "USER": "ann",
    }
    command = [
        *LLMOPS,
        "--config",
        "llmops.yaml",
        "--database-url",
        f"sqlite:///{tmp_path / 'cli.db'}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


def _ok(tmp_path: Path, *args: str) -> str:
    result = _run(tmp_path, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "llmops.yaml").write_text(
        "models:\n  - {name: echo, provider: echo}\nscorer_modules: [my_scorers.py]\n"
    )
    (tmp_path / "my_scorers.py").write_text(SCORERS)
    rows = [
        {"input": word, "expected": word, "good": word.upper(), "bad": word}
        for word in ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa")
    ]
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    _ok(tmp_path, "datasets", "import", "qa", "qa.jsonl")
    return tmp_path


def _json(workdir: Path, *args: str) -> Any:
    return json.loads(_ok(workdir, *args, "--json"))


def test_runs_reports_and_the_gate(workdir: Path) -> None:
    model = _json(
        workdir,
        "evals",
        "run",
        "--dataset",
        "qa",
        "--model",
        "echo",
        "--metric",
        "exact_match",
        "--name",
        "echo",
    )
    assert model["status"] == "succeeded"
    assert model["summary"]["metrics"]["exact_match"]["mean"] == 1.0
    good = _json(
        workdir,
        "evals",
        "run",
        "--dataset",
        "qa@1",
        "--output-field",
        "good",
        "--metric",
        "shouted",
        "--name",
        "good",
    )
    assert good["summary"]["metrics"]["shouted"]["mean"] == 1.0  # the scorer came from the config
    bad = _json(
        workdir,
        "evals",
        "run",
        "--dataset",
        "qa",
        "--output-field",
        "bad",
        "--metric",
        "shouted",
        "--name",
        "bad",
    )
    assert bad["summary"]["metrics"]["shouted"]["mean"] == 0.0
    assert "good" in _ok(workdir, "evals", "list")
    shown = _json(workdir, "evals", "show", "good", "--items", "2")
    assert [item["output"] for item in shown["items"]] == ["ALPHA", "BETA"]
    _ok(workdir, "evals", "label", "good", "production")

    _ok(workdir, "evals", "compare", "production", "bad", "--format", "html", "--out", "report.html")
    assert "<svg" in (workdir / "report.html").read_text()
    assert "shouted" in _ok(workdir, "evals", "compare", "good", "bad", "--format", "markdown")

    passed = _run(
        workdir, "evals", "gate", "--baseline", "production", "--candidate", "good", "--metric", "shouted"
    )
    assert passed.returncode == 0, passed.stderr
    failed = _run(
        workdir,
        "evals",
        "gate",
        "--baseline",
        "production",
        "--candidate",
        "bad",
        "--metric",
        "shouted",
        "--max-drop",
        "0.1",
    )
    assert failed.returncode == 1
    assert "shouted" in failed.stdout
    for args in (
        ("--baseline", "production", "--candidate", "nope", "--metric", "shouted"),
        ("--baseline", "production", "--candidate", "bad", "--metric", "exact_match"),
        (
            "--baseline",
            "good",
            "--candidate",
            "bad",
            "--metric",
            "shouted",
            "--max-drop",
            "1",
            "--max-drop",
            "2",
        ),
    ):
        usage = _run(workdir, "evals", "gate", *args)
        assert usage.returncode == 2, usage.stdout
        assert usage.stderr.startswith("error: ")
        assert "Traceback" not in usage.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("evals", "run", "--dataset", "qa", "--metric", "exact_match"), "exactly one target"),
        (("evals", "run", "--model", "echo", "--metric", "exact_match"), "--dataset"),
        (("evals", "run", "--dataset", "qa", "--model", "echo", "--metric", "nope"), "unknown metric 'nope'"),
        (
            ("evals", "run", "--dataset", "nope", "--model", "echo", "--metric", "exact_match"),
            "no dataset named",
        ),
        (
            (
                "evals",
                "run",
                "--dataset",
                "qa",
                "--model",
                "echo",
                "--metric",
                "exact_match",
                "--param",
                "stream=true",
            ),
            "stream",
        ),
        (
            ("evals", "run", "--dataset", "qa", "--model", "nope", "--metric", "exact_match"),
            "unknown model 'nope'",
        ),
        (("evals", "show", "nope"), "no evaluation run"),
        (("evals", "resume", "nope"), "no evaluation run"),
        (("evals", "compare", "nope"), "at least two runs"),
    ],
)
def test_mistakes_are_one_line(workdir: Path, args: tuple[str, ...], message: str) -> None:
    result = _run(workdir, *args)
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr

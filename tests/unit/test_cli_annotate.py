"""`llmops annotate`: a queue from creation to an accepted version, in subprocesses against SQLite."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

LLMOPS = [sys.executable, "-m", "llmops"]
ROWS = [
    {"input": "2+2?", "expected": "5"},
    {"input": "capital of France?", "expected": "Paris"},
]


def _run(tmp_path: Path, *args: str, user: str = "ana") -> subprocess.CompletedProcess[str]:
    database = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {
        "PATH": "/usr/bin:/bin",
        "LLMOPS_HOME": str(tmp_path / "home"),
        "HOME": str(tmp_path),
        "USER": user,
    }
    return subprocess.run(
        [*LLMOPS, "--database-url", database, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )


def _ok(tmp_path: Path, *args: str, user: str = "ana") -> str:
    result = _run(tmp_path, *args, user=user)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _json(tmp_path: Path, *args: str, user: str = "ana") -> Any:
    return json.loads(_ok(tmp_path, *args, "--json", user=user))


@pytest.fixture
def queue(tmp_path: Path) -> str:
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    _ok(tmp_path, "datasets", "import", "qa", str(data))
    created = _ok(
        tmp_path,
        "annotate", "create", "review", "--dataset", "qa@1", "--categories", "good,bad",
        "--score", "1-5", "--correction", "--annotators", "2", "--instructions", "Is it right?",
    )  # fmt: skip
    assert created.strip() == "review: 2 items from qa@1, 2 answer(s) each"
    return "review"


def test_a_queue_from_creation_to_an_accepted_version(tmp_path: Path, queue: str) -> None:
    shown = _ok(tmp_path, "annotate", "next", queue)
    assert "2+2?" in shown
    assert "Is it right?" in shown
    assert "--label good|bad --score 1..5 --correction TEXT" in shown
    for annotator, label, correction in (("ana", "bad", "4"), ("ben", "bad", "4")):
        handed = _json(tmp_path, "annotate", "next", queue, "--annotator", annotator)
        assert (handed["annotator"], handed["item"]["position"]) == (annotator, 0)
        assert handed["schema"]["categories"] == ["good", "bad"]
        item = handed["item"]["id"]
        stored = _ok(
            tmp_path, "annotate", "submit", queue, item, "--label", label, "--score", "2",
            "--correction", correction, "--annotator", annotator,
        )  # fmt: skip
        assert stored.strip() == f"review: stored {annotator}'s answer on {item}"
    # ana (the OS user by default) answers the second item twice: the second answer replaces the first
    second = _json(tmp_path, "annotate", "next", queue)["item"]["id"]
    _ok(tmp_path, "annotate", "submit", queue, second, "--label", "bad")
    replaced = _json(tmp_path, "annotate", "submit", queue, second, "--label", "good", "--comment", "fine")
    assert (replaced["replaced"], replaced["label"], replaced["annotator"]) == (True, "good", "ana")
    assert _json(tmp_path, "annotate", "next", queue)["item"] is None
    assert "nothing left for ana" in _ok(tmp_path, "annotate", "next", queue)

    status = _json(tmp_path, "annotate", "status", queue)
    assert (status["complete"], status["partial"], status["answers"]) == (1, 1, 3)
    assert [(row["annotator"], row["answered"]) for row in status["annotators"]] == [("ana", 2), ("ben", 1)]
    table = _ok(tmp_path, "annotate", "status", queue)
    assert "Cohen's kappa" in table
    assert "Krippendorff's alpha (scores, interval)" in table

    accepted = _json(tmp_path, "annotate", "accept", queue)
    assert (accepted["version"]["ref"], accepted["accepted"], accepted["left_out"]) == ("qa@2", 1, 1)
    assert accepted["version"]["parents"] == ["qa@1"]
    rows = _ok(tmp_path, "datasets", "export", "qa@2", "--format", "jsonl")
    row = json.loads(rows.splitlines()[0])
    assert row["expected"] == "4"
    assert row["metadata"]["annotation"]["annotators"] == ["ana", "ben"]
    listed = _json(tmp_path, "annotate", "list")
    assert [(q["name"], q["result"]) for q in listed] == [("review", "qa@2")]


def test_mistakes_are_one_line_errors(tmp_path: Path, queue: str) -> None:
    item = _json(tmp_path, "annotate", "next", queue)["item"]["id"]
    cases = [
        (("annotate", "submit", queue, item, "--label", "meh"), "error: label 'meh' is not one of good, bad"),
        (("annotate", "submit", queue, item, "--score", "9"), "error: score 9 is outside 1..5"),
        (("annotate", "submit", queue, item), "error: an answer needs a label or a score or a correction"),
        (("annotate", "next", "missing"), "error: no annotation queue named 'missing'"),
        (
            ("annotate", "create", "review", "--dataset", "qa", "--categories", "a"),
            "error: an annotation queue",
        ),
        (("annotate", "create", "x", "--dataset", "qa"), "error: a label schema asks for"),
        (("annotate", "create", "x", "--dataset", "qa", "--score", "5"), "error: expected a score range"),
        (("annotate", "create", "x", "--dataset", "nope", "--correction"), "error: no dataset named 'nope'"),
        (("annotate", "accept", queue), "error: nothing to accept"),
    ]
    for args, message in cases:
        result = _run(tmp_path, *args)
        assert result.returncode == 1, (args, result.stdout)
        assert result.stderr.startswith(message), (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1


def test_skip_and_close(tmp_path: Path, queue: str) -> None:
    first = _json(tmp_path, "annotate", "next", queue)["item"]
    assert (
        _ok(tmp_path, "annotate", "skip", queue, first["id"]).strip() == f"review: ana skipped {first['id']}"
    )
    assert _json(tmp_path, "annotate", "next", queue)["item"]["position"] == 1
    assert _ok(tmp_path, "annotate", "close", queue).strip() == "review: closed"
    result = _run(tmp_path, "annotate", "next", queue)
    assert result.returncode == 1
    assert "closed" in result.stderr

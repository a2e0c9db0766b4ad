"""`llmops experiments`: create, list, status (tables and JSON), promote, stop, errors as one line."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from llmops.ids import new_id
from llmops.prompts.spec import PromptContent
from llmops.services import open_store
from llmops.settings import load_settings
from llmops.tracing.service import FeedbackInput

LLMOPS = [sys.executable, "-m", "llmops"]


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "LLMOPS_HOME": str(tmp_path / "home"),
        "HOME": str(tmp_path),
        "COLUMNS": "250",
    }
    return subprocess.run(
        [*LLMOPS, "--database-url", _url(tmp_path), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """A database with prompt `greeting` at versions 1, 2 and 3 (production on 1)."""
    store = open_store(load_settings(database_url=_url(tmp_path), home=tmp_path / "home"))
    try:
        for text in ("Hello!", "Hi!", "Hey!"):
            store.prompts.create_version("greeting", PromptContent(kind="text", template=text))
        store.prompts.set_label("greeting", "production", 1)
    finally:
        store.close()
    return tmp_path


def _record(tmp_path: Path, experiment: str, thumbs: dict[str, tuple[int, int]]) -> None:
    """Traces of ``experiment``: per variant, ``total`` requests of which ``up`` got a thumb up and
    the rest a thumb down."""
    store = open_store(load_settings(database_url=_url(tmp_path), home=tmp_path / "home"))
    try:
        experiment_id = store.experiments.get(experiment).id
        now = datetime.now(UTC)
        for variant, (up, total) in thumbs.items():
            rows = [
                {
                    "id": new_id(),
                    "started_at": now,
                    "ended_at": now,
                    "endpoint": "chat.completions",
                    "requested_model": "prompt:greeting",
                    "stream": False,
                    "status": "ok",
                    "status_code": 200,
                    "latency_ms": 80.0 + n % 40,
                    "prompt_tokens": 12,
                    "completion_tokens": 30,
                    "cost": 0.0001,
                    "experiment": experiment_id,
                    "variant": variant,
                }
                for n in range(total)
            ]
            store.trace_repository.insert_many(rows)
            for n, row in enumerate(rows):
                store.traces.add_feedback(row["id"], FeedbackInput(thumb="up" if n < up else "down"))
    finally:
        store.close()


def test_experiment_life_cycle_from_the_command_line(database: Path) -> None:
    created = _run(
        database,
        "experiments",
        "create",
        "tone",
        "--prompt",
        "greeting",
        "--variant",
        "a=1",
        "--variant",
        "b=2:3",
        "--description",
        "shorter greeting",
    )
    assert created.returncode == 0, created.stderr
    assert "created experiment tone" in created.stdout
    assert "a=#1 (weight 1), b=#2 (weight 3)" in created.stdout
    assert "control: a" in created.stderr

    listed = _run(database, "experiments", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [experiment] = json.loads(listed.stdout)
    assert (experiment["name"], experiment["status"], experiment["description"]) == (
        "tone",
        "running",
        "shorter greeting",
    )
    assert experiment["variants"] == [
        {"name": "a", "version": 1, "weight": 1.0},
        {"name": "b", "version": 2, "weight": 3.0},
    ]
    table = _run(database, "experiments", "list", "--prompt", "greeting", "--status", "running")
    assert "tone" in table.stdout
    assert "greeting@production" in table.stdout
    assert "tone" not in _run(database, "experiments", "list", "--status", "stopped").stdout

    _record(database, "tone", {"a": (100, 200), "b": (150, 200)})
    status = _run(database, "experiments", "status", "tone")
    assert status.returncode == 0, status.stderr
    for text in (
        "a (control)",
        "50.0% [43.1%, 56.9%]",  # Wilson 95% interval of 100/200
        "75.0% [68.6%, 80.5%]",  # and of 150/200
        "+25.0 pts",
        "two-proportion z-test",
        "yes: b better",
        "recommendation: b beats a on thumbs-up rate (75.0% vs 50.0%, p<0.0001): promote b",
        "eval scores: none yet",
    ):
        assert text in status.stdout, status.stdout
    data = json.loads(_run(database, "experiments", "status", "tone", "--json").stdout)
    assert data["recommendation"]["winner"] == "b"
    assert [v["requests"] for v in data["variants"]] == [200, 200]
    assert data["variants"][1]["thumbs_up"]["value"] == 0.75

    promoted = _run(database, "experiments", "promote", "tone", "b", "--author", "ann")
    assert promoted.returncode == 0, promoted.stderr
    assert promoted.stdout.strip() == "promoted b: greeting@production -> version 2; experiment tone ended"
    shown = json.loads(_run(database, "experiments", "list", "--json").stdout)[0]
    assert (shown["status"], shown["winner"]) == ("promoted", "b")

    again = _run(database, "experiments", "create", "again", "-p", "greeting", "-v", "a=2", "-v", "c=3")
    assert again.returncode == 0, again.stderr
    stopped = _run(database, "experiments", "stop", "again")
    assert stopped.stdout.strip() == "stopped experiment again; greeting@production is unchanged"


def test_status_without_data_says_so(database: Path) -> None:
    _run(database, "experiments", "create", "tone", "-p", "greeting", "-v", "a=1", "-v", "b=2")
    _record(database, "tone", {"a": (50, 100), "b": (55, 100)})
    status = _run(database, "experiments", "status", "tone", "--control", "b")
    assert status.returncode == 0, status.stderr
    assert "b (control)" in status.stdout
    assert "no significant difference yet; about" in status.stdout
    assert "more requests per variant needed" in status.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "x", "-p", "greeting", "-v", "a=1"), "error: an experiment needs at least two variants"),
        (
            ("create", "x", "-p", "greeting", "-v", "a=1", "-v", "b"),
            "error: variant 'b': expected NAME=VERSION",
        ),
        (
            ("create", "x", "-p", "greeting", "-v", "a=1", "-v", "b=9"),
            "error: prompt 'greeting' has no version 9",
        ),
        (("create", "x", "-p", "nothing", "-v", "a=1", "-v", "b=2"), "error: prompt 'nothing' not found"),
        (("create", "x", "-p", "greeting", "-v", "a=1", "-v", "b=2:0"), "error: variant 'b': weight must be"),
        (
            ("create", "x", "-p", "greeting", "-v", "a=1", "-v", "b=2", "--sticky-by", "cookie"),
            "error: sticky_by: expected one of user, header",
        ),
        (("status", "missing"), "error: experiment 'missing' not found"),
        (("promote", "missing", "a"), "error: experiment 'missing' not found"),
        (("stop", "missing"), "error: experiment 'missing' not found"),
        (("list", "--status", "paused"), "error: status: expected one of running, promoted, stopped"),
    ],
)
def test_bad_input_is_one_readable_line(database: Path, args: tuple[str, ...], message: str) -> None:
    result = _run(database, "experiments", *args)
    assert result.returncode == 1
    assert result.stderr.strip().startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_state_errors_are_one_line(database: Path) -> None:
    assert (
        _run(database, "experiments", "create", "tone", "-p", "greeting", "-v", "a=1", "-v", "b=2").returncode
        == 0
    )
    taken = _run(
        database, "experiments", "create", "tone", "-p", "greeting", "-v", "a=1", "-v", "b=2", "--label", "x"
    )
    assert taken.stderr.strip() == "error: an experiment named 'tone' exists already"
    busy = _run(database, "experiments", "create", "other", "-p", "greeting", "-v", "a=1", "-v", "b=2")
    assert busy.stderr.strip().startswith("error: an experiment already runs on greeting@production")
    unknown = _run(database, "experiments", "promote", "tone", "z")
    assert unknown.stderr.strip() == "error: experiment 'tone' has no variant 'z' (it has a, b)"
    assert _run(database, "experiments", "stop", "tone").returncode == 0
    ended = _run(database, "experiments", "promote", "tone", "a")
    assert (ended.returncode, ended.stderr.strip()) == (1, "error: experiment 'tone' is stopped, not running")

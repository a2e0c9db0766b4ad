"""`llmops teams` and `llmops keys` with teams, models, limits, budgets, expiry and rotation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

LLMOPS = [sys.executable, "-m", "llmops"]


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "LLMOPS_HOME": str(tmp_path / "home"),
        "HOME": str(tmp_path),
        "COLUMNS": "250",
    }
    database = f"sqlite:///{tmp_path / 'cli.db'}"
    return subprocess.run(
        [*LLMOPS, "--database-url", database, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )


def _ok(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = _run(tmp_path, *args)
    assert done.returncode == 0, done.stderr
    return done


def test_team_and_key_lifecycle(tmp_path: Path) -> None:
    _ok(
        tmp_path,
        "teams",
        "create",
        "search",
        "--models",
        "gpt-*,claude-*",
        "--rpm",
        "600",
        "--budget",
        "50/month",
    )
    _ok(tmp_path, "teams", "add-member", "search", "ana@example.com", "--role", "editor")
    created = _ok(
        tmp_path,
        *("keys", "create", "--name", "search-app", "--team", "search", "--models", "gpt-*"),
        *(
            "--rpm",
            "60",
            "--budget",
            "10/day",
            "--budget",
            "100/total",
            "--expires",
            "30d",
            "--meta",
            "owner=ana",
        ),
    )
    secret = created.stdout.strip()
    assert secret.startswith("sk-llmops-")
    assert "team search" in created.stderr
    listed = _ok(tmp_path, "keys", "list", "--team", "search").stdout
    assert "search-app" in listed
    assert "60 rpm" in listed
    assert "$10/day" in listed
    assert secret not in listed
    shown = _ok(tmp_path, "teams", "show", "search").stdout
    assert "ana@example.com" in shown
    assert "editor" in shown
    assert "gpt-*, claude-*" in shown
    assert "$50/month" in shown
    teams = _ok(tmp_path, "teams", "list").stdout
    assert "search" in teams
    _ok(tmp_path, "keys", "update", "search-app", "--rpm", "120", "--all-models")
    listed = _ok(tmp_path, "keys", "list").stdout
    assert "120 rpm" in listed
    assert "$10/day" in listed
    rotated = _ok(tmp_path, "keys", "rotate", "search-app", "--grace", "1h")
    assert rotated.stdout.strip() != secret
    assert "previous secret works until" in rotated.stderr
    _ok(tmp_path, "teams", "remove-member", "search", "ana@example.com")
    assert "ana@example.com" not in _ok(tmp_path, "teams", "show", "search").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("keys", "create", "--name", "x", "--budget", "10/week"),
            "error: budget '10/week': the period must be",
        ),
        (
            ("keys", "create", "--name", "x", "--budget", "ten/day"),
            "error: budget 'ten/day': expected an amount",
        ),
        (("keys", "create", "--name", "x", "--team", "nope"), "error: team: no team with id or name 'nope'"),
        (("keys", "create", "--name", "x", "--expires", "soon"), "error: --expires 'soon': expected 30d"),
        (("keys", "create", "--name", "x", "--role", "root"), "error: role: expected one of"),
        (("keys", "rotate", "nope"), "error: no active API key with id or name 'nope'"),
        (("teams", "show", "nope"), "error: no team with id or name 'nope'"),
        (("teams", "add-member", "nope", "ana"), "error: no team with id or name 'nope'"),
    ],
)
def test_bad_input_is_one_readable_line(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    done = _run(tmp_path, *args)
    assert done.returncode == 1
    assert done.stderr.startswith(message), done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_taken_team_name_is_refused(tmp_path: Path) -> None:
    _ok(tmp_path, "teams", "create", "ops")
    done = _run(tmp_path, "teams", "create", "ops")
    assert done.returncode == 1
    assert done.stderr.strip() == "error: name: a team named 'ops' exists already"

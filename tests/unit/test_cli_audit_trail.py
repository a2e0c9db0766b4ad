"""CLI changes leave audit events: keys and teams from their services, other changes from the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

LLMOPS = [sys.executable, "-m", "llmops"]


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "LLMOPS_HOME": str(tmp_path / "home"),
        "HOME": str(tmp_path),
        "USER": "ana",
    }
    return subprocess.run(
        [*LLMOPS, "--database-url", f"sqlite:///{tmp_path / 'cli.db'}", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )


def _events(tmp_path: Path) -> list[dict[str, object]]:
    done = _run(tmp_path, "audit", "list", "--json")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_cli_changes_are_audited_and_failures_and_reads_are_not(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"input": "q", "expected": "a"}\n')
    assert _run(tmp_path, "teams", "create", "search").returncode == 0
    created = _run(tmp_path, "keys", "create", "--name", "app", "--team", "search", "--budget", "5/day")
    assert created.returncode == 0
    assert _run(tmp_path, "datasets", "import", "qa", str(rows)).returncode == 0
    assert _run(tmp_path, "datasets", "import", "qa", str(tmp_path / "missing.jsonl")).returncode == 1
    assert _run(tmp_path, "datasets", "list").returncode == 0
    events = _events(tmp_path)
    assert [(event["action"], event["target"]) for event in events] == [
        ("datasets_import", "qa"),
        ("create_key", "app"),
        ("create_team", "search"),
    ]
    assert {event["source"] for event in events} == {"cli"}
    assert {event["actor"] for event in events} == {"cli:ana"}
    key_event = events[1]
    assert key_event["after"]["budget"] == {"day": 5.0}  # type: ignore[index]
    assert created.stdout.strip() not in json.dumps(events)  # the secret is never in the log

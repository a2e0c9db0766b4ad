"""The admin API's schema tells the truth: a schemathesis run over /api/openapi.json finds nothing.

A real `llmops serve` (SQLite and Postgres), a few traces to read, then `schemathesis run` with every
check and every phase (coverage, fuzzing, stateful over the schema's links), seeded and bounded by a
number of examples per operation. It tests whatever routes the live schema lists, so a new route is
covered the day it is added. The run authenticates with an admin key it cannot revoke: the API
refuses to revoke the key a request is made with (409), so nothing needs to be excluded.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Server, start_server

# A deeper run: LLMOPS_TEST_SCHEMATHESIS_EXAMPLES=300 LLMOPS_TEST_SCHEMATHESIS_SEED=<any>.
EXAMPLES = int(os.environ.get("LLMOPS_TEST_SCHEMATHESIS_EXAMPLES", "30"))
SEED = int(os.environ.get("LLMOPS_TEST_SCHEMATHESIS_SEED", "20260501"))
RUN_TIMEOUT = 240  # seconds; the run takes well under a minute per backend
PHASES = ("coverage", "fuzzing", "stateful")


@pytest.fixture
def api_server(tmp_path: Path, database_url: str) -> Iterator[Server]:
    """A server of its own per backend: the run creates and revokes keys and adds feedback."""
    (tmp_path / "server").mkdir()
    server = start_server(
        tmp_path / "server",
        models=[{"name": "echo", "provider": "echo"}],
        keys={"admin": "admin"},
        database_url=database_url,
    )
    try:
        _record_traces(server)
        yield server
    finally:
        server.stop()


def _record_traces(server: Server) -> None:
    """Traces to read, so that the links from GET /api/traces lead to real ones."""
    for text in ("one", "two"):
        httpx.post(
            f"{server.base_url}/chat/completions",
            json={"model": "echo", "messages": [{"role": "user", "content": text}]},
            headers=server.headers(),
        ).raise_for_status()
    deadline = time.monotonic() + 10
    while len(httpx.get(f"{server.url}/api/traces", headers=server.headers()).json()["data"]) < 2:
        assert time.monotonic() < deadline, "the traces were not recorded"
        time.sleep(0.05)


def _schemathesis(server: Server, workdir: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    report = workdir / "report.json"
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{server.url}/api/openapi.json",
        "--header",
        f"Authorization: Bearer {server.keys['admin']}",
        "--checks",
        "all",
        "--phases",
        ",".join(("examples", *PHASES)),
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        str(SEED),
        "--generation-database",
        "none",
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--no-color",
        "--output-sanitize",
        "false",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    run = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    return run, json.loads(report.read_text()) if report.exists() else {}


def test_schemathesis_finds_nothing(api_server: Server, tmp_path: Path) -> None:
    workdir = tmp_path / "schemathesis"
    workdir.mkdir()
    run, report = _schemathesis(api_server, workdir)
    api_server.stop()  # flushes the log
    output = f"{run.stdout[-20_000:]}\n{run.stderr[-5_000:]}\nserver log:\n{api_server.log()[-5_000:]}"
    assert report, f"schemathesis wrote no report (exit {run.returncode}):\n{output}"
    assert report["failures"] == [], output
    assert report["errors"] == [], output
    assert run.returncode == 0, output
    operations = report["operations"]
    assert operations["tested"] == operations["selected"] == operations["total"] >= 8, operations
    for phase in PHASES:
        assert report["phases"][phase]["status"] == "success", (phase, report["phases"], output)
    assert {name: labels for name, labels in report["warnings"].items() if labels} == {}, output
    links = re.search(r"API Links:\s+(\d+) covered / (\d+) selected / (\d+) total", run.stdout)
    assert links, output
    assert int(links[1]) == int(links[3]) >= 5, f"the stateful phase did not follow every link:\n{output}"
    assert "Traceback" not in api_server.log(), api_server.log()

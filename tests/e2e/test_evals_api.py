"""/api/evals through a real `llmops serve` (SQLite and Postgres): runs as jobs on the server's gateway
(traced), stored outputs scored without calls, production answers scored from traces, labels, comparison
reports, the gate, and errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from conftest import Server, call_api, expect, start_server, wait_for

ROWS = [
    {"input": "alpha", "expected": "alpha", "answer": "alpha"},
    {"input": "beta", "expected": "beta", "answer": "wrong"},
    {"messages": [{"role": "user", "content": "gamma"}], "expected": "gamma", "answer": "gamma"},
    {"input": "delta", "expected": "delta", "answer": "delta"},
]


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[Server]:
    running = start_server(
        tmp_path,
        models=[{"name": "echo", "provider": "echo"}],
        keys={"admin": "admin", "app": "inference"},
        database_url=database_url,
    )
    expect(call_api(running, "POST", "/api/datasets/qa/rows", json={"rows": ROWS}), 201)
    yield running
    running.stop()


def _finished(server: Server, run: dict[str, Any]) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        found = expect(call_api(server, "GET", f"/api/evals/{run['id']}"))
        return found if found["status"] in ("succeeded", "failed", "cancelled") else None

    finished: dict[str, Any] = wait_for(done, timeout=60)
    return finished


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return dict(response.json()["error"])


def test_runs_compare_and_gate(server: Server) -> None:
    body = {
        "dataset": "qa",
        "target": {"kind": "model", "model": "echo", "params": {"temperature": 0}},
        "metrics": ["exact_match", "contains", "rouge_l"],
        "name": "baseline",
    }
    created = expect(call_api(server, "POST", "/api/evals", json=body), 202)
    assert created["job_id"]
    run = _finished(server, created)
    assert run["status"] == "succeeded", run
    assert run["dataset"] == "qa@1"
    assert run["summary"]["metrics"]["exact_match"]["mean"] == 1.0
    job = expect(call_api(server, "GET", f"/api/jobs/{created['job_id']}"))
    assert job["status"] == "succeeded"
    results = expect(call_api(server, "GET", "/api/evals/baseline/results", params={"limit": 2}))
    assert [item["output"] for item in results["data"]] == ["alpha", "beta"]
    assert results["next_offset"] == 2
    trace = expect(call_api(server, "GET", f"/api/traces/{results['data'][0]['trace_id']}"))
    assert trace["attributes"]["eval_run"] == run["id"]

    stored = {
        "dataset": "qa@1",
        "target": {"kind": "column", "column": "answer"},
        "metrics": ["exact_match", "rouge_l"],
        "name": "candidate",
    }
    candidate = _finished(server, expect(call_api(server, "POST", "/api/evals", json=stored), 202))
    assert candidate["summary"]["metrics"]["exact_match"]["mean"] == 0.75
    labelled = expect(call_api(server, "POST", "/api/evals/baseline/labels", json={"label": "production"}))
    assert labelled["labels"] == ["production"]

    compared = expect(
        call_api(server, "GET", "/api/evals/compare", params={"runs": ["production", "candidate"]})
    )
    assert json.dumps(compared)
    markdown = call_api(
        server, "GET", "/api/evals/compare", params={"runs": ["baseline", "candidate"], "format": "markdown"}
    )
    assert markdown.status_code == 200
    assert "exact_match" in markdown.text
    html = call_api(
        server, "GET", "/api/evals/compare", params={"runs": ["baseline", "candidate"], "format": "html"}
    )
    assert "<svg" in html.text

    gate = {
        "baseline": "production",
        "candidate": "candidate",
        "metrics": [{"metric": "exact_match", "max_drop": 0.5}],
    }
    verdict = expect(call_api(server, "POST", "/api/evals/gate", json=gate))
    assert verdict["passed"] is True
    assert verdict["exit_code"] == 0
    listed = expect(call_api(server, "GET", "/api/evals"))
    assert [item["name"] for item in listed["data"]] == ["candidate", "baseline"]


def test_production_answers_are_scored_from_traces(server: Server) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.keys["app"])
    for text in ("one", "two"):
        client.chat.completions.create(model="echo", messages=[{"role": "user", "content": text}])
    wait_for(lambda: len(expect(call_api(server, "GET", "/api/traces"))["data"]) == 2)
    body = {"target": {"kind": "traces"}, "traces": {"model": "echo"}, "metrics": ["length", "latency"]}
    run = _finished(server, expect(call_api(server, "POST", "/api/evals", json=body), 202))
    assert run["status"] == "succeeded", run
    assert run["dataset"] is None
    assert run["summary"]["items"] == 2
    assert run["summary"]["metrics"]["length"]["n"] == 2


def test_bad_requests(server: Server) -> None:
    base = {
        "dataset": "qa",
        "target": {"kind": "model", "model": "echo"},
        "metrics": ["exact_match"],
        "name": "once",
    }
    _finished(server, expect(call_api(server, "POST", "/api/evals", json=base), 202))
    assert "exists already" in _error(call_api(server, "POST", "/api/evals", json=base), 409)["message"]
    unknown = {**base, "name": "other", "metrics": ["exact_macth"]}
    assert (
        "did you mean 'exact_match'"
        in _error(call_api(server, "POST", "/api/evals", json=unknown), 400)["message"]
    )
    _error(call_api(server, "POST", "/api/evals", json={**base, "name": "x", "dataset": "missing"}), 404)
    _error(
        call_api(server, "POST", "/api/evals", json={**base, "name": "y", "target": {"kind": "endpoint"}}),
        400,
    )
    _error(call_api(server, "GET", "/api/evals/nope"), 404)
    wrong_model = {**base, "name": "z", "target": {"kind": "model", "model": "nope"}}
    assert (
        "unknown model 'nope'"
        in _error(call_api(server, "POST", "/api/evals", json=wrong_model), 400)["message"]
    )
    _error(call_api(server, "POST", "/api/evals/once/resume"), 409)
    _error(call_api(server, "GET", "/api/evals/compare", params={"runs": ["once", "nope"]}), 404)
    gate = {"baseline": "once", "candidate": "once", "metrics": [{"metric": "rouge_l"}]}
    _error(call_api(server, "POST", "/api/evals/gate", json=gate), 400)
    _error(call_api(server, "GET", "/api/evals", key="app"), 403)

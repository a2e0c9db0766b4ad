"""/api/finetune through a real `llmops serve`: a run trains as a job on the server, reports progress,
curves and logs, registers its model, and refuses what it cannot do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Server, call_api, expect, start_server, wait_for
from training_support import link_base_models

pytest.importorskip("torch")

ROWS = [
    {"messages": [{"role": "user", "content": f"Say the code for {n}."}], "expected": f"CODE-{n}-OK"}
    for n in range(10)
]
TINY = {"max_steps": 2, "batch_size": 2, "max_seq_length": 48, "eval_every": 1}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    link_base_models(tmp_path / "home")
    running = start_server(
        tmp_path, models=[{"name": "echo", "provider": "echo"}], keys={"admin": "admin", "app": "inference"}
    )
    expect(call_api(running, "POST", "/api/datasets/codes/rows", json={"rows": ROWS}), 201)
    yield running
    running.stop()


def _finished(server: Server, run_id: str, timeout: float) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        found = expect(call_api(server, "GET", f"/api/finetune/{run_id}"))
        return found if found["status"] in ("succeeded", "failed", "cancelled") else None

    finished: dict[str, Any] = wait_for(done, timeout=timeout, interval=0.5)
    return finished


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return dict(response.json()["error"])


def test_a_run_trains_in_the_background_and_registers_its_model(server: Server) -> None:
    body = {
        "dataset": "codes@1",
        "validation_split": 0.2,
        "lora": TINY,
        "quantize": [],
        "register_as": "codes-model",
        "name": "codes-lora",
    }
    created = expect(call_api(server, "POST", "/api/finetune", json=body), 202)
    assert created["status"] in ("queued", "running")
    assert created["job_id"]
    finished = _finished(server, created["id"], timeout=240)
    assert finished["status"] == "succeeded", finished["error"]
    assert finished["model_version"] == "codes-model@1"
    assert finished["progress"]["stage"] == "done"
    assert finished["progress"]["step"] == 2
    assert [point["step"] for point in finished["curves"]] == [1, 2]
    evaluation = finished["result"]["evaluation"]
    assert evaluation["examples"] == 2
    assert evaluation["p_value"] <= 1

    listed = expect(call_api(server, "GET", "/api/finetune?status=succeeded"))["data"]
    assert [run["name"] for run in listed] == ["codes-lora"]
    curves = call_api(server, "GET", "/api/finetune/codes-lora/curves.svg")
    assert curves.status_code == 200
    assert curves.headers["content-type"].startswith("image/svg+xml")
    assert curves.text.lstrip().startswith("<svg")
    lines = expect(call_api(server, "GET", "/api/finetune/codes-lora/logs"))["data"]
    assert any("registered as codes-model@1" in line["message"] for line in lines)
    job = expect(call_api(server, "GET", f"/api/jobs/{finished['job_id']}"))
    assert job["status"] == "succeeded"
    assert job["kind"] == "finetune"

    version = expect(call_api(server, "GET", "/api/registry/models/codes-model/versions/1"))
    assert version["source"]["finetune"] == finished["id"]
    assert version["dataset"] == "codes"

    assert "finished" in _error(call_api(server, "POST", "/api/finetune/codes-lora/resume"), 409)["message"]
    assert (
        "nothing to cancel"
        in _error(call_api(server, "POST", "/api/finetune/codes-lora/cancel"), 409)["message"]
    )
    taken = call_api(server, "POST", "/api/finetune", json=body)
    assert "exists already" in _error(taken, 409)["message"]


def test_a_cancelled_run_stops_and_resumes(server: Server) -> None:
    body = {"dataset": "codes", "lora": {**TINY, "max_steps": 40, "checkpoint_every": 1}, "quantize": []}
    created = expect(call_api(server, "POST", "/api/finetune", json=body), 202)

    def training() -> bool:
        found = expect(call_api(server, "GET", f"/api/finetune/{created['id']}"))
        return bool((found["progress"] or {}).get("step"))

    wait_for(training, timeout=180, interval=0.5)
    expect(call_api(server, "POST", f"/api/finetune/{created['id']}/cancel"))
    stopped = _finished(server, created["id"], timeout=60)
    assert stopped["status"] == "cancelled"
    done_steps = stopped["progress"]["step"]
    assert 1 <= done_steps < 40
    resumed = expect(call_api(server, "POST", f"/api/finetune/{created['id']}/resume"), 202)
    assert resumed["status"] in ("queued", "running")
    wait_for(training, timeout=60, interval=0.5)
    expect(call_api(server, "POST", f"/api/finetune/{created['id']}/cancel"))
    again = _finished(server, created["id"], timeout=60)
    assert again["status"] == "cancelled"
    logs = expect(call_api(server, "GET", f"/api/finetune/{created['id']}/logs"))["data"]
    assert any("resumed from step" in line["message"] for line in logs), logs


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"dataset": "codes", "base": "gpt-17"}, 400, "unknown base model"),
        ({"dataset": "codes", "quantize": ["q3_weird"]}, 400, "unknown quantisation level"),
        ({"dataset": "codes", "lora": {"rank": 0}}, 400, "rank"),
        ({"dataset": "codes", "lora": {"schedule": "sawtooth"}}, 400, "schedule"),
        ({"base": "smollm2"}, 400, "name the training data"),
        ({"dataset": "nope@2"}, 404, "nope"),
    ],
)
def test_requests_that_cannot_run_are_refused(
    server: Server, body: dict[str, Any], status: int, message: str
) -> None:
    assert message in _error(call_api(server, "POST", "/api/finetune", json=body), status)["message"]
    assert expect(call_api(server, "GET", "/api/finetune"))["data"] == []


def test_unknown_runs_and_inference_keys(server: Server) -> None:
    assert _error(call_api(server, "GET", "/api/finetune/nope"), 404)["code"]
    assert call_api(server, "GET", "/api/finetune", key="app").status_code == 403


def test_a_server_that_does_not_train_says_so(tmp_path: Path) -> None:
    running = start_server(
        tmp_path,
        models=[{"name": "echo", "provider": "echo"}],
        keys={"admin": "admin"},
        env={"LLMOPS_FINETUNE_ON_SERVER": "false"},
    )
    try:
        refused = call_api(running, "POST", "/api/finetune", json={"dataset": "codes"})
        assert "does not train" in _error(refused, 409)["message"]
    finally:
        running.stop()

"""/api/datasets and /api/jobs through a real `llmops serve` (SQLite and Postgres): rows sent and
versioned, traffic from the openai client turned into a dataset, a cleaning job with its report,
a profile job, diffs, exports (files and fine-tuning JSONL), cancellation and errors."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from conftest import Server, call_api, expect, start_server, wait_for

ROWS = [
    {"input": "Where is  my order?", "expected": "Let me check.", "metadata": {"id": 1}},
    {"input": "Where is  my order?", "expected": "Let me check.", "metadata": {"id": 1}},
    {"input": "<b>Refund</b> please", "expected": "Sure.", "metadata": {"id": 2}},
    {"input": "Mail me at ann@example.com", "expected": "Done.", "metadata": {"id": 3}},
]


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[Server]:
    running = start_server(
        tmp_path,
        models=[{"name": "echo", "provider": "echo"}],
        keys={"admin": "admin", "app": "inference"},
        database_url=database_url,
    )
    yield running
    running.stop()


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "code"}
    return dict(error)


def _finished(server: Server, job: dict[str, Any]) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        found = expect(call_api(server, "GET", f"/api/jobs/{job['id']}"))
        return found if found["status"] in ("succeeded", "failed", "cancelled") else None

    finished: dict[str, Any] = wait_for(done, timeout=60)
    return finished


def test_rows_versions_cleaning_diff_and_export(server: Server) -> None:
    first = expect(call_api(server, "POST", "/api/datasets/support/rows", json={"rows": ROWS}), 201)
    assert first["version"]["ref"] == "support@1"
    assert first["version"]["author"] == "admin"
    again = expect(call_api(server, "POST", "/api/datasets/support/rows", json={"rows": ROWS}), 200)
    assert again["created"] is False

    recipe = {"steps": [{"strip_html": {}}, {"clean_whitespace": {}}, {"dedup_exact": {}}, {"pii": {}}]}
    job = expect(call_api(server, "POST", "/api/datasets/support/clean", json={"recipe": recipe}), 202)
    assert job["kind"] == "dataset.clean"
    finished = _finished(server, job)
    assert finished["status"] == "succeeded", finished
    assert finished["result"]["version"]["ref"] == "support@2"
    reports = {report["step"]: report for report in finished["result"]["reports"]}
    assert reports["dedup_exact"]["removed"] == 1
    assert reports["strip_html"]["changed"] == 1

    version = expect(call_api(server, "GET", "/api/datasets/support/versions/2"))
    assert version["parents"] == ["support@1"]
    assert version["operation"] == "clean"
    assert [step for item in version["params"]["steps"] for step in item] == [
        "strip_html",
        "clean_whitespace",
        "dedup_exact",
        "pii",
    ]
    assert len(version["report"]) == 4

    rows = expect(call_api(server, "GET", "/api/datasets/support/versions/2/rows", params={"limit": 2}))
    assert [item["row"]["input"] for item in rows["data"]] == ["Where is my order?", "Refund please"]
    assert rows["next_offset"] == 2
    last = expect(call_api(server, "GET", "/api/datasets/support/versions/2/rows", params={"offset": 2}))
    assert last["data"][0]["row"]["input"] == "Mail me at <EMAIL>"
    assert last["next_offset"] is None

    diff = expect(
        call_api(
            server, "GET", "/api/datasets/support/diff", params={"base": 1, "other": 2, "key": "metadata.id"}
        )
    )
    assert (diff["added"], diff["removed"], diff["changed"], diff["unchanged"]) == (0, 1, 3, 0)

    exported = call_api(server, "GET", "/api/datasets/support/versions/2/export", params={"format": "jsonl"})
    assert exported.status_code == 200
    assert [json.loads(line)["metadata"]["id"] for line in exported.text.splitlines()] == [1, 2, 3]
    as_csv = call_api(server, "GET", "/api/datasets/support/versions/2/export", params={"format": "csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert {"expected", "input", "metadata"} <= set(as_csv.text.splitlines()[0].split(","))

    parts = {
        part: call_api(
            server,
            "GET",
            "/api/datasets/support/versions/2/export",
            params={"format": "chat", "split": 0.5, "seed": 3, "part": part},
        ).text.splitlines()
        for part in ("train", "validation")
    }
    assert len(parts["train"]) + len(parts["validation"]) == 3
    example = json.loads(parts["train"][0])
    assert [message["role"] for message in example["messages"]] == ["user", "assistant"]

    listed = expect(call_api(server, "GET", "/api/datasets"))
    assert [(item["name"], item["latest_version"], item["rows"]) for item in listed["data"]] == [
        ("support", 2, 3)
    ]
    detail = expect(call_api(server, "GET", "/api/datasets/support"))
    assert [item["version"] for item in detail["versions"]] == [1, 2]


def test_parquet_export_reads_back(server: Server) -> None:
    pyarrow_parquet = pytest.importorskip("pyarrow.parquet")
    expect(call_api(server, "POST", "/api/datasets/p/rows", json={"rows": ROWS[:2]}), 201)
    exported = call_api(server, "GET", "/api/datasets/p/versions/1/export", params={"format": "parquet"})
    assert exported.status_code == 200
    table = pyarrow_parquet.read_table(io.BytesIO(exported.content))
    assert table.num_rows == 2


def test_traffic_becomes_a_dataset_and_a_profile(server: Server) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.keys["app"])
    for question in ("how do I reset my password?", "what is the refund policy?"):
        client.chat.completions.create(model="echo", messages=[{"role": "user", "content": question}])

    def traced() -> bool:
        found = expect(call_api(server, "GET", "/api/traces", params={"model": "echo"}))
        return len(found["data"]) == 2

    wait_for(traced)
    job = expect(
        call_api(server, "POST", "/api/datasets/prod/from-traces", json={"model": "echo", "since": "1h"}), 202
    )
    finished = _finished(server, job)
    assert finished["status"] == "succeeded", finished
    assert finished["result"]["version"]["rows"] == 2
    rows = expect(call_api(server, "GET", "/api/datasets/prod/versions/1/rows"))["data"]
    assert rows[0]["row"]["messages"] == [{"role": "user", "content": "how do I reset my password?"}]
    assert rows[0]["row"]["expected"]
    assert rows[0]["row"]["metadata"]["model"] == "echo"

    profiled = _finished(
        server, expect(call_api(server, "POST", "/api/datasets/prod/versions/1/profile", json={}), 202)
    )
    assert profiled["status"] == "succeeded", profiled
    assert profiled["result"]["rows"] == 2
    logs = expect(call_api(server, "GET", f"/api/jobs/{profiled['id']}/logs"))
    assert isinstance(logs["data"], list)
    listed = expect(call_api(server, "GET", "/api/jobs", params={"kind": "dataset.profile"}))
    assert [job["id"] for job in listed["data"]] == [profiled["id"]]
    _error(call_api(server, "POST", f"/api/jobs/{profiled['id']}/cancel"), 409)


def test_bad_requests_get_clear_errors(server: Server) -> None:
    expect(call_api(server, "POST", "/api/datasets/qa/rows", json={"rows": ROWS[:1]}), 201)
    error = _error(
        call_api(
            server, "POST", "/api/datasets/qa/clean", json={"recipe": {"steps": [{"no_such_step": {}}]}}
        ),
        400,
    )
    assert "no_such_step" in error["message"]
    error = _error(
        call_api(
            server,
            "POST",
            "/api/datasets/qa/clean",
            json={"recipe": {"steps": [{"filter_length": {"min": "x"}}]}},
        ),
        400,
    )
    assert "filter_length" in error["message"]
    _error(call_api(server, "POST", "/api/datasets/qa/rows", json={"rows": [{"input": 3}]}), 400)
    _error(call_api(server, "POST", "/api/datasets/nope/rows", json={"rows": [], "append": True}), 404)
    _error(call_api(server, "GET", "/api/datasets/qa/versions/9"), 404)
    _error(call_api(server, "GET", "/api/datasets/nope"), 404)
    _error(call_api(server, "POST", "/api/datasets/qa/from-traces", json={"since": "yesterday"}), 400)
    _error(call_api(server, "GET", f"/api/jobs/{'0' * 32}"), 404)
    _error(call_api(server, "GET", "/api/datasets", key="app"), 403)
    expect(call_api(server, "POST", "/api/datasets/ft/rows", json={"rows": [{"input": "question"}]}), 201)
    error = _error(
        call_api(server, "GET", "/api/datasets/ft/versions/1/export", params={"format": "chat"}), 400
    )
    assert "row 1" in error["message"]

"""/api/annotation-queues through a real `llmops serve` (SQLite and Postgres): an admin creates a queue,
two annotators with keys of their own take items and answer, the status shows agreement, and accepting
writes a dataset version whose lineage points at the source version."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Server, call_api, expect, server_env, start_server
from llmops.services import open_store
from llmops.settings import load_settings

ROWS = [
    {"input": "Where is my order?", "expected": "No idea."},
    {"input": "Can I return shoes?", "expected": "Yes, within 30 days."},
    {"input": "Do you ship to Norway?", "expected": "Yes."},
]
QUEUE = {
    "name": "support-review",
    "dataset": "support-qa@1",
    "schema": {
        "categories": ["good", "bad"],
        "score": {"min": 1, "max": 5},
        "correction": True,
        "instructions": "Is the answer right and polite?",
    },
    "annotators_per_item": 2,
}
BASE = "/api/annotation-queues"


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[Server]:
    running = start_server(
        tmp_path,
        models=[{"name": "echo", "provider": "echo"}],
        keys={"admin": "admin", "ana": "editor", "ben": "editor", "vic": "viewer"},
        database_url=database_url,
    )
    store = open_store(load_settings(database_url=database_url, home=running.home))
    try:
        store.datasets.create_version("support-qa", ROWS, operation="import")
    finally:
        store.close()
    yield running
    running.stop()


def _error(response: httpx.Response, status: int, param: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["param"] == param
    return error


def _answer(server: Server, key: str, item: str, **answer: Any) -> httpx.Response:
    return call_api(server, "POST", f"{BASE}/support-review/items/{item}/annotations", key=key, json=answer)


def test_two_annotators_from_queue_to_accepted_version(server: Server) -> None:
    created = expect(call_api(server, "POST", BASE, json=QUEUE), 201)
    assert (created["items"], created["dataset"], created["created_by"]) == (3, "support-qa@1", "admin")
    assert created["schema"]["categories"] == ["good", "bad"]

    handed: dict[str, list[dict[str, Any]]] = {"ana": [], "ben": []}
    answers = {
        "ana": [("bad", 2, "It ships tomorrow."), ("good", 5, None)],
        "ben": [("bad", 1, "It ships tomorrow.")],
    }
    for key, given in answers.items():
        for label, score, correction in given:
            nxt = expect(call_api(server, "POST", f"{BASE}/support-review/next", key=key, json={}))
            assert nxt["annotator"] == key
            handed[key].append(nxt["item"])
            body = {"label": label, "score": score} | ({"correction": correction} if correction else {})
            stored = expect(_answer(server, key, nxt["item"]["id"], **body), 201)
            assert (stored["annotator"], stored["replaced"]) == (key, False)
    assert [item["position"] for item in handed["ana"]] == [0, 1]
    assert [item["position"] for item in handed["ben"]] == [0]  # the same first item: two answers each
    assert handed["ana"][0]["data"] == ROWS[0]

    again = expect(
        _answer(server, "ana", handed["ana"][1]["id"], label="good", score=4, comment="polite"), 200
    )
    assert (again["replaced"], again["score"], again["comment"]) == (True, 4.0, "polite")

    status = expect(call_api(server, "GET", f"{BASE}/support-review/status", key="ben"))
    assert (status["items"], status["complete"], status["partial"], status["untouched"]) == (3, 1, 1, 1)
    assert [(a["annotator"], a["answered"]) for a in status["annotators"]] == [("ana", 2), ("ben", 1)]
    assert status["agreement"]["labels"]["cohen_kappa"] == 1.0  # one shared item, the same label

    _error(call_api(server, "POST", f"{BASE}/support-review/accept", key="vic", json={}), 403)
    accepted = expect(
        call_api(server, "POST", f"{BASE}/support-review/accept", json={"message": "reviewed"}), 201
    )
    version = accepted["version"]
    assert (version["ref"], version["parents"], version["operation"]) == (
        "support-qa@2",
        ["support-qa@1"],
        "annotate",
    )
    assert (accepted["accepted"], accepted["left_out"], version["author"]) == (1, 2, "admin")
    assert version["params"]["queue"] == "support-review"
    store = open_store(load_settings(database_url=server.database_url, home=server.home))
    try:
        rows = list(store.datasets.rows(store.datasets.resolve("support-qa@2")))
    finally:
        store.close()
    assert rows[0]["expected"] == "It ships tomorrow."
    assert rows[0]["metadata"]["annotation"]["annotators"] == ["ana", "ben"]
    again_accepted = call_api(server, "POST", f"{BASE}/support-review/accept", json={})
    assert again_accepted.status_code == 200  # same rows: no new version
    assert expect(call_api(server, "GET", f"{BASE}/support-review", key="ana"))["result"] == "support-qa@2"


def test_errors_are_openai_shaped_with_their_status(server: Server) -> None:
    expect(call_api(server, "POST", BASE, json=QUEUE), 201)
    _error(call_api(server, "POST", BASE, json=QUEUE), 409, "name")
    _error(call_api(server, "POST", BASE, key="vic", json={**QUEUE, "name": "other"}), 403)
    _error(call_api(server, "POST", BASE, json={**QUEUE, "name": "other", "dataset": "nope"}), 404, "dataset")
    _error(call_api(server, "POST", BASE, json={**QUEUE, "name": "other", "dataset": None}), 400)
    _error(call_api(server, "POST", BASE, json={**QUEUE, "name": "other", "schema": {}}), 400)
    _error(call_api(server, "POST", BASE, json={**QUEUE, "name": "bad/name"}), 400, "name")
    _error(call_api(server, "POST", f"{BASE}/missing/next", key="ana", json={}), 404, "queue")
    _error(call_api(server, "POST", f"{BASE}/support-review/next", key="nobody", json={}), 401)

    item = expect(call_api(server, "POST", f"{BASE}/support-review/next", key="ana", json={}))["item"]["id"]
    _error(_answer(server, "ana", item, label="meh"), 400, "label")
    _error(_answer(server, "ana", item, score=7), 400, "score")
    _error(_answer(server, "ana", item, comment="only this"), 400)
    _error(_answer(server, "ana", "0" * 32, label="good"), 404, "item")

    skipped = expect(call_api(server, "POST", f"{BASE}/support-review/items/{item}/skip", key="ana"))
    assert skipped == {"item_id": item, "annotator": "ana", "skipped": True}
    expect(call_api(server, "POST", f"{BASE}/support-review/close"))
    _error(call_api(server, "POST", f"{BASE}/support-review/next", key="ben", json={}), 409)
    listed = expect(call_api(server, "GET", BASE, key="ben"))["data"]
    assert [(q["name"], q["status"]) for q in listed] == [("support-review", "closed")]


def test_the_cli_works_through_the_api_as_the_key(server: Server, tmp_path: Path) -> None:
    expect(call_api(server, "POST", BASE, json=QUEUE), 201)

    def cli(*args: str) -> Any:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "llmops",
                "annotate",
                *args,
                "--url",
                server.url,
                "--key",
                server.keys["ben"],
            ],
            capture_output=True,
            text=True,
            env=server_env(tmp_path / "cli-home", "sqlite:///" + str(tmp_path / "unused.db")),
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    handed = json.loads(cli("next", "support-review", "--json"))
    assert (handed["annotator"], handed["item"]["position"]) == ("ben", 0)
    item = handed["item"]["id"]
    assert "stored ben's answer" in cli("submit", "support-review", item, "--label", "good", "--score", "4")
    status = json.loads(cli("status", "support-review", "--json"))
    assert status["annotators"] == [{"annotator": "ben", "answered": 1, "skipped": 0}]

"""/api/experiments through a real `llmops serve` (SQLite and Postgres): create over REST, traffic
through the gateway with the openai client, feedback over REST, results, promote, stop, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from conftest import Server, call_api, expect, start_server, wait_for
from llmops.prompts.spec import MessageTemplate, PromptContent
from llmops.services import open_store
from llmops.settings import load_settings

USERS = 60


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[Server]:
    running = start_server(
        tmp_path,
        models=[{"name": "echo", "provider": "echo"}],
        keys={"admin": "admin", "app": "inference"},
        database_url=database_url,
        env={"LLMOPS_PROMPT_REFRESH_SECONDS": "0.2"},
    )
    store = open_store(load_settings(database_url=database_url, home=running.home))
    try:
        for greeting in ("Hello.", "Hi."):
            content = PromptContent(
                kind="chat", messages=(MessageTemplate(role="system", content=greeting),), model="echo"
            )
            store.prompts.create_version(
                "greeting", content, labels=["production"] if greeting == "Hello." else ()
            )
    finally:
        store.close()
    yield running
    running.stop()


def _experiment_traces(server: Server, experiment_id: str) -> list[dict[str, Any]]:
    page = expect(call_api(server, "GET", "/api/traces", params={"limit": 500}))
    return [trace for trace in page["data"] if trace["experiment"] == experiment_id]


def test_an_experiment_over_rest_and_the_gateway(server: Server) -> None:
    created = expect(
        call_api(
            server,
            "POST",
            "/api/experiments",
            json={
                "name": "greeting-tone",
                "prompt": "greeting",
                "variants": {"a": {"version": 1}, "b": {"version": 2, "weight": 1.5}},
                "description": "is a shorter greeting liked more?",
            },
        ),
        201,
    )
    assert created["status"] == "running"
    assert created["created_by"] == "admin"  # the key's name
    assert created["variants"] == [
        {"name": "a", "version": 1, "weight": 1.0},
        {"name": "b", "version": 2, "weight": 1.5},
    ]
    assert expect(call_api(server, "GET", f"/api/experiments/{created['id']}")) == created
    assert expect(call_api(server, "GET", "/api/experiments", params={"status": "running"})) == [created]
    assert expect(call_api(server, "GET", "/api/experiments", params={"prompt": "other"})) == []

    client = openai.OpenAI(base_url=server.base_url, api_key=server.keys["app"], max_retries=0)
    for _round in range(2):
        for user in range(USERS):
            client.chat.completions.create(model="prompt:greeting", messages=[], user=f"user-{user}")
    traces = wait_for(
        lambda: (found := _experiment_traces(server, created["id"])) and len(found) == 2 * USERS and found
    )
    by_variant = {name: [t for t in traces if t["variant"] == name] for name in ("a", "b")}
    assert all(by_variant.values())
    for trace in traces:  # b's traces answer with b's version
        assert trace["prompt_version"] == {"a": 1, "b": 2}[trace["variant"]]
        thumb = "up" if trace["variant"] == "b" else "down"
        expect(
            call_api(
                server, "POST", f"/api/traces/{trace['id']}/feedback", json={"thumb": thumb, "score": 4}
            ),
            201,
        )

    results = expect(call_api(server, "GET", "/api/experiments/greeting-tone/results"))
    a, b = results["variants"]
    assert (a["requests"], b["requests"]) == (len(by_variant["a"]), len(by_variant["b"]))
    assert (a["thumbs_up"]["value"], b["thumbs_up"]["value"]) == (0.0, 1.0)
    assert a["thumbs_up"]["high"] < b["thumbs_up"]["low"]
    assert a["errors"] == b["errors"] == 0
    assert a["latency_p50_ms"] is not None
    assert a["eval_scores"] == {}
    thumbs = next(c for c in results["comparisons"] if c["metric"] == "thumbs_up_rate")
    assert (thumbs["significant"], thumbs["better"], thumbs["test"]) == (True, "b", "two-proportion z-test")
    score = next(c for c in results["comparisons"] if c["metric"] == "score")
    assert score["note"] == "every scored trace has the same value within each variant: nothing to test"
    assert results["recommendation"]["winner"] == "b"
    assert results["recommendation"]["text"].endswith(": promote b")
    against_b = expect(
        call_api(server, "GET", "/api/experiments/greeting-tone/results", params={"control": "b"})
    )
    assert against_b["control"] == "b"

    promoted = expect(
        call_api(server, "POST", "/api/experiments/greeting-tone/promote", json={"variant": "b"})
    )
    assert (promoted["status"], promoted["winner"]) == ("promoted", "b")
    assert promoted["ended_at"] is not None

    def served_version() -> bool:  # the label moved: every user now gets version 2, outside any experiment
        client.chat.completions.create(model="prompt:greeting", messages=[], user="user-late")
        latest = expect(call_api(server, "GET", "/api/traces", params={"limit": 1}))["data"][0]
        return latest["prompt_version"] == 2 and latest["experiment"] is None

    wait_for(served_version)
    ended = call_api(server, "POST", "/api/experiments/greeting-tone/stop")
    assert ended.status_code == 409
    error = ended.json()["error"]
    assert (error["message"], error["code"]) == (
        "experiment 'greeting-tone' is promoted, not running",
        "conflict",
    )


def test_errors_have_the_openai_shape_and_status(server: Server) -> None:
    body = {"name": "t", "prompt": "greeting", "variants": {"a": {"version": 1}, "b": {"version": 2}}}
    expect(call_api(server, "POST", "/api/experiments", json=body), 201)
    cases = [
        ("POST", "/api/experiments", {**body, "name": "u", "label": "canary", "prompt": "nothing"}, 404),
        (
            "POST",
            "/api/experiments",
            {**body, "name": "u", "variants": {"a": {"version": 1}, "b": {"version": 9}}},
            404,
        ),
        ("POST", "/api/experiments", {**body, "label": "canary"}, 409),  # the name is taken
        ("POST", "/api/experiments", {**body, "name": "u"}, 409),  # t runs on greeting@production
        ("POST", "/api/experiments", {**body, "variants": {"a": {"version": 1}}}, 400),
        ("POST", "/api/experiments", {**body, "variants": {"1": {"version": 1}, "b": {"version": 2}}}, 400),
        (
            "POST",
            "/api/experiments",
            {**body, "variants": {"a": {"version": 1, "weight": 0}, "b": {"version": 2}}},
            400,
        ),
        ("POST", "/api/experiments", {**body, "sticky_by": "cookie"}, 400),
        ("POST", "/api/experiments/t/promote", {"variant": "z"}, 404),
        ("POST", "/api/experiments/missing/stop", None, 404),
        ("GET", "/api/experiments/missing", None, 404),
        ("GET", "/api/experiments/t/results?control=z", None, 404),
        ("GET", "/api/experiments?status=paused", None, 400),
    ]
    for method, path, payload, status in cases:
        response = call_api(server, method, path, json=payload)
        assert response.status_code == status, (path, payload, response.text)
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert call_api(server, "GET", "/api/experiments", key="app").status_code == 403
    stopped = expect(call_api(server, "POST", "/api/experiments/t/stop"))
    assert stopped["status"] == "stopped"
    assert call_api(server, "POST", "/api/experiments/t/promote", json={"variant": "a"}).status_code == 409
    assert [e["name"] for e in expect(call_api(server, "GET", "/api/experiments"))] == ["t"]

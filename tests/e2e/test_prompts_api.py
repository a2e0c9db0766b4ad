"""/api/prompts through a real `llmops serve` (SQLite and Postgres): versions pushed over REST, labels
moved and rolled back, renders and diffs, then the label's version served to the openai client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from conftest import Server, call_api, expect, start_server, wait_for

SUPPORT = {
    "name": "support-answer",
    "kind": "chat",
    "messages": [
        {"role": "system", "content": "You are a {{ tone }} support agent for {{ product }}."},
        {"role": "user", "content": "{{ question }}"},
    ],
    "variables": {
        "tone": {"default": "friendly"},
        "product": {"required": True},
        "question": {"required": True},
    },
    "model": "echo",
    "parameters": {"temperature": 0.2, "max_tokens": 128},
    "tags": ["support"],
    "labels": ["staging"],
    "message": "first version",
}


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[Server]:
    running = start_server(
        tmp_path,
        models=[{"name": "echo", "provider": "echo"}],
        keys={"admin": "admin", "app": "inference"},
        database_url=database_url,
        env={"LLMOPS_PROMPT_REFRESH_SECONDS": "0.2"},
    )
    yield running
    running.stop()


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "code"}
    return dict(error)


def test_versions_labels_rollback_and_serving(server: Server) -> None:
    first = expect(call_api(server, "POST", "/api/prompts", json=SUPPORT), 201)
    assert (first["version"], first["created"], first["labels_moved"]) == (1, True, ["staging"])
    assert first["author"] == "admin"  # the key's name when the body names nobody

    again = expect(call_api(server, "POST", "/api/prompts", json=SUPPORT), 200)  # same content: same version
    assert (again["version"], again["created"], again["content_hash"]) == (1, False, first["content_hash"])

    second_body = {
        **SUPPORT,
        "messages": [
            {"role": "system", "content": "Be {{ tone }} and brief; you support {{ product }}."},
            {"role": "user", "content": "{{ question }}"},
        ],
        "parameters": {"temperature": 0.0, "max_tokens": 64},
        "labels": [],
        "message": "shorter",
        "author": "ana",
    }
    second = expect(call_api(server, "POST", "/api/prompts", json=second_body), 201)
    assert (second["version"], second["author"], second["message"]) == (2, "ana", "shorter")

    listed = expect(call_api(server, "GET", "/api/prompts", params={"tag": "support"}))["data"]
    assert [(p["name"], p["latest_version"], p["labels"]) for p in listed] == [
        ("support-answer", 2, {"staging": 1})
    ]
    assert expect(call_api(server, "GET", "/api/prompts", params={"search": "nothing-like-it"}))["data"] == []
    versions = expect(call_api(server, "GET", "/api/prompts/support-answer/versions"))["data"]
    assert [(v["version"], v["labels"]) for v in versions] == [(1, ["staging"]), (2, [])]
    assert expect(call_api(server, "GET", "/api/prompts/support-answer/versions/2"))["message"] == "shorter"
    # no production label: the latest version
    assert expect(call_api(server, "GET", "/api/prompts/support-answer"))["version"] == 2
    assert (
        expect(call_api(server, "GET", "/api/prompts/support-answer", params={"label": "staging"}))["version"]
        == 1
    )

    diff = expect(call_api(server, "GET", "/api/prompts/support-answer/diff", params={"from": 1, "to": 2}))
    text = str(diff)
    assert "Be {{ tone }} and brief" in text
    assert "max_tokens" in text

    rendered = expect(
        call_api(
            server,
            "POST",
            "/api/prompts/support-answer/render",
            json={"version": 1, "variables": {"product": "Acme", "question": "Where is my order?"}},
        )
    )
    assert rendered["messages"] == [
        {"role": "system", "content": "You are a friendly support agent for Acme."},
        {"role": "user", "content": "Where is my order?"},
    ]

    # deploy 1, then 2, then roll back to 1; every move in the history with who
    moved = expect(
        call_api(server, "PUT", "/api/prompts/support-answer/labels/production", json={"version": 1})
    )
    assert (moved["to_version"], moved["moved"]) == (1, True)
    same = expect(
        call_api(server, "PUT", "/api/prompts/support-answer/labels/production", json={"version": 1})
    )
    assert same["moved"] is False
    expect(
        call_api(
            server,
            "PUT",
            "/api/prompts/support-answer/labels/production",
            json={"version": 2, "author": "bo"},
        )
    )
    assert expect(call_api(server, "GET", "/api/prompts/support-answer/labels/production"))["version"] == 2

    client = openai.OpenAI(base_url=server.base_url, api_key=server.keys["app"], max_retries=0)

    def served_system_message() -> str:
        reply = client.chat.completions.create(
            model="prompt:support-answer",
            messages=[],
            extra_body={"prompt_variables": {"product": "Acme", "question": "Hi"}},
        )
        return reply.choices[0].message.content or ""

    # the echo model answers with the last message; the system prompt is checked on the trace
    assert wait_for(lambda: served_system_message() == "Hi", timeout=10)

    back = expect(call_api(server, "POST", "/api/prompts/support-answer/labels/production/rollback", json={}))
    assert (back["action"], back["from_version"], back["to_version"]) == ("rollback", 2, 1)
    history = expect(
        call_api(server, "GET", "/api/prompts/support-answer/history", params={"label": "production"})
    )["data"]
    assert [(e["action"], e["to_version"], e["author"]) for e in history] == [
        ("deploy", 1, "admin"),
        ("deploy", 2, "bo"),
        ("rollback", 1, "admin"),
    ]

    def traced_version() -> int | None:
        served_system_message()
        page = expect(call_api(server, "GET", "/api/traces", params={"limit": 5}))["data"]
        latest = page[0] if page else None
        return latest["prompt_version"] if latest else None

    # the rollback reaches the gateway within the refresh interval (0.2 s here)
    assert wait_for(lambda: traced_version() == 1, timeout=15)

    removed = expect(call_api(server, "DELETE", "/api/prompts/support-answer/labels/staging"))
    assert removed["action"] == "remove"
    _error(call_api(server, "GET", "/api/prompts/support-answer/labels/staging"), 404)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "needle"),
    [
        ("GET", "/api/prompts/nope", None, 404, "nope"),
        ("GET", "/api/prompts/support-answer/versions/9", None, 404, "9"),
        ("POST", "/api/prompts/support-answer/render", {"variables": {"question": "q"}}, 400, "product"),
        (
            "POST",
            "/api/prompts/support-answer/render",
            {"variables": {"product": "p", "question": "q", "colour": "red"}},
            400,
            "colour",
        ),
        (
            "POST",
            "/api/prompts",
            {**SUPPORT, "messages": [{"role": "user", "content": "{% if %}"}]},
            400,
            "line 1",
        ),
        (
            "POST",
            "/api/prompts",
            {**SUPPORT, "messages": [{"role": "user", "content": "{{ undeclared_thing }}"}]},
            400,
            "undeclared_thing",
        ),
        ("POST", "/api/prompts", {**SUPPORT, "kind": "text", "template": "x", "messages": None}, 400, ""),
        ("POST", "/api/prompts/support-answer/labels/staging/rollback", {}, 409, "staging"),
        ("PUT", "/api/prompts/support-answer/labels/production", {"version": 7}, 404, "7"),
    ],
)
def test_errors_are_openai_shaped(
    server: Server, method: str, path: str, body: Any, status: int, needle: str
) -> None:
    expect(call_api(server, "POST", "/api/prompts", json=SUPPORT), 201)
    error = _error(call_api(server, method, path, json=body), status)
    assert needle in error["message"]


def test_prompt_routes_need_the_admin_scope(server: Server) -> None:
    assert call_api(server, "GET", "/api/prompts", key="app").status_code == 403
    assert call_api(server, "POST", "/api/prompts", key="app", json=SUPPORT).status_code == 403
    assert httpx.get(f"{server.url}/api/prompts", timeout=10).status_code == 401


def test_the_trace_id_header_lets_a_client_attach_feedback(server: Server) -> None:
    expect(call_api(server, "POST", "/api/prompts", json={**SUPPORT, "labels": ["production"]}), 201)
    client = openai.OpenAI(base_url=server.base_url, api_key=server.keys["app"], max_retries=0)
    variables = {"prompt_variables": {"product": "Acme", "question": "Hi"}}
    whole = client.chat.completions.with_raw_response.create(
        model="prompt:support-answer", messages=[], extra_body=variables
    )
    with client.chat.completions.with_streaming_response.create(
        model="prompt:support-answer", messages=[], stream=True, extra_body=variables
    ) as streamed:
        chunks = list(streamed.iter_lines())
    assert any("[DONE]" in line for line in chunks)
    for response in (whole, streamed):
        trace_id = response.headers["x-llmops-trace-id"]
        path = f"/api/traces/{trace_id}"
        wait_for(lambda path=path: call_api(server, "GET", path).status_code == 200, timeout=10)
        expect(call_api(server, "POST", f"/api/traces/{trace_id}/feedback", json={"thumb": "up"}), 201)
        trace = expect(call_api(server, "GET", f"/api/traces/{trace_id}"))
        assert (trace["prompt_name"], trace["prompt_version"]) == ("support-answer", 1)
        assert [feedback["thumb"] for feedback in trace["feedback"]] == ["up"]

    # an error answer names its trace too (here: a required variable missing)
    failed = httpx.post(
        f"{server.base_url}/chat/completions",
        headers=server.headers("app"),
        json={"model": "prompt:support-answer", "messages": [], "prompt_variables": {"product": "Acme"}},
        timeout=30,
    )
    assert failed.status_code == 400, failed.text
    path = f"/api/traces/{failed.headers['x-llmops-trace-id']}"
    wait_for(lambda: call_api(server, "GET", path).status_code == 200, timeout=10)
    assert expect(call_api(server, "GET", path))["status_code"] == 400

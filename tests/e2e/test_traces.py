"""Every request becomes a trace: read back through /api/traces, the CLI, and feedback."""

from __future__ import annotations

import subprocess
import uuid
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import LLMOPS, Server, server_env, wait_for


def _traces(server: Server, **params: Any) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/api/traces", params=params, headers=server.headers("admin"))
    assert response.status_code == 200, response.text
    return dict(response.json())


def _trace(server: Server, trace_id: str) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/api/traces/{trace_id}", headers=server.headers("admin"))
    assert response.status_code == 200, response.text
    return dict(response.json())


def _find(server: Server, marker: str, **params: Any) -> dict[str, Any]:
    """The trace whose request contains ``marker`` (waits for the background writer)."""

    def look() -> dict[str, Any] | None:
        for item in _traces(server, limit=50, **params)["data"]:
            detail = _trace(server, item["id"])
            if marker in str(detail["request"]):
                return detail
        return None

    found: dict[str, Any] = wait_for(look)
    return found


@pytest.fixture
def api(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=server.keys["app"], max_retries=0)


def test_chat_is_traced_with_usage_cost_and_key(server: Server, api: openai.OpenAI) -> None:
    marker = uuid.uuid4().hex
    answer = api.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": f"trace me {marker}"}]
    )
    assert answer.usage is not None
    trace = _find(server, marker, model="echo")
    assert trace["status"] == "ok"
    assert trace["status_code"] == 200
    assert trace["provider"] == "echo"
    assert trace["upstream_model"] == "echo"
    assert trace["request"]["messages"][0]["content"] == f"trace me {marker}"
    assert trace["response_text"] == f"trace me {marker}"
    assert trace["finish_reason"] == "stop"
    assert trace["completion_tokens"] == answer.usage.completion_tokens
    assert trace["prompt_tokens"] == answer.usage.prompt_tokens
    expected_cost = (answer.usage.prompt_tokens * 1.0 + answer.usage.completion_tokens * 2.0) / 1e6
    assert trace["cost"] == pytest.approx(expected_cost)
    assert trace["api_key_id"].startswith("key_")
    assert trace["latency_ms"] > 0
    assert trace["ttft_ms"] is None


def test_stream_is_traced_with_time_to_first_token(server: Server, api: openai.OpenAI) -> None:
    marker = uuid.uuid4().hex
    messages = [{"role": "user", "content": f"stream {marker}"}]
    list(api.chat.completions.create(model="gpt-fake", messages=messages, stream=True))  # type: ignore[arg-type]
    trace = _find(server, marker, model="gpt-fake")
    assert trace["stream"] is True
    assert trace["response_text"] == f"fake answer to: stream {marker}"
    assert trace["ttft_ms"] is not None
    assert 0 < trace["ttft_ms"] <= trace["latency_ms"]
    assert trace["usage_source"] == "counted"  # no include_usage: counted offline
    assert trace["completion_tokens"] > 0


def test_upstream_usage_is_preferred(server: Server, api: openai.OpenAI) -> None:
    marker = uuid.uuid4().hex
    api.chat.completions.create(model="gpt-fake", messages=[{"role": "user", "content": marker}])
    trace = _find(server, marker, model="gpt-fake")
    assert (trace["prompt_tokens"], trace["completion_tokens"], trace["usage_source"]) == (11, 7, "upstream")
    assert trace["cost"] == pytest.approx(11 * 3.0 / 1e6)


def test_errors_are_traced(server: Server, api: openai.OpenAI) -> None:
    marker = uuid.uuid4().hex
    with pytest.raises(openai.RateLimitError):
        api.chat.completions.create(model="gpt-429", messages=[{"role": "user", "content": marker}])
    trace = _find(server, marker, status="error")
    assert trace["status_code"] == 429
    assert "slow down" in trace["error_message"]
    with pytest.raises(openai.NotFoundError):
        api.chat.completions.create(model=f"missing-{marker}", messages=[{"role": "user", "content": "x"}])
    missing = wait_for(lambda: _traces(server, model=f"missing-{marker}")["data"])
    assert missing[0]["status_code"] == 404


def test_pagination_and_filters(server: Server, api: openai.OpenAI) -> None:
    for index in range(5):
        api.chat.completions.create(model="echo", messages=[{"role": "user", "content": f"page {index}"}])
    wait_for(lambda: len(_traces(server, model="echo", limit=500)["data"]) >= 5)
    everything = [item["id"] for item in _traces(server, model="echo", limit=500)["data"]]
    seen: list[str] = []
    cursor = None
    while True:
        page = _traces(server, model="echo", limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [item["id"] for item in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == everything == sorted(everything, reverse=True)
    assert _traces(server, key="app", since="1h", model="echo")["data"]
    assert not _traces(server, key="admin", model="echo")["data"]


def test_feedback_round_trip(server: Server, api: openai.OpenAI) -> None:
    marker = uuid.uuid4().hex
    api.chat.completions.create(model="echo", messages=[{"role": "user", "content": marker}])
    trace = _find(server, marker)
    url = f"{server.url}/api/traces/{trace['id']}/feedback"
    created = httpx.post(
        url,
        json={"thumb": "down", "label": "wrong", "comment": "no", "author": "ann"},
        headers=server.headers("admin"),
    )
    assert created.status_code == 201, created.text
    httpx.post(url, json={"score": 0.25}, headers=server.headers("admin")).raise_for_status()
    feedback = _trace(server, trace["id"])["feedback"]
    assert [(note["thumb"], note["score"]) for note in feedback] == [("down", None), (None, 0.25)]
    assert feedback[0]["author"] == "ann"


def test_admin_api_errors_are_openai_shaped(server: Server) -> None:
    admin = server.headers("admin")
    checks = [
        (httpx.get(f"{server.url}/api/traces/nope", headers=admin), 404),
        (httpx.get(f"{server.url}/api/traces", params={"since": "yesterday"}, headers=admin), 400),
        (httpx.get(f"{server.url}/api/traces", params={"limit": 0}, headers=admin), 400),
        (httpx.get(f"{server.url}/api/traces", params={"cursor": "zz"}, headers=admin), 400),
        (httpx.post(f"{server.url}/api/traces/nope/feedback", json={"score": 1}, headers=admin), 404),
        (
            httpx.post(f"{server.url}/api/traces/nope/feedback", json={"thumb": "sideways"}, headers=admin),
            400,
        ),
        (httpx.post(f"{server.url}/api/traces/nope/feedback", content=b"{", headers=admin), 400),
        (httpx.get(f"{server.url}/api/nothing-here", headers=admin), 404),
        (httpx.get(f"{server.url}/api/traces"), 401),
    ]
    for response, status in checks:
        assert response.status_code == status, (response.request.url, response.text)
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_cli_reads_the_same_traces(server: Server, api: openai.OpenAI) -> None:
    marker = uuid.uuid4().hex
    api.chat.completions.create(model="echo", messages=[{"role": "user", "content": marker}])
    trace = _find(server, marker)
    env = server_env(server.home, server.database_url)
    listed = subprocess.run(
        [*LLMOPS, "traces", "list", "--model", "echo", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert trace["id"] in listed.stdout
    shown = subprocess.run([*LLMOPS, "traces", "show", trace["id"]], env=env, capture_output=True, text=True)
    assert shown.returncode == 0
    assert marker in shown.stdout
    given = subprocess.run(
        [*LLMOPS, "traces", "feedback", trace["id"], "--thumb", "up"], env=env, capture_output=True, text=True
    )
    assert given.returncode == 0
    assert _trace(server, trace["id"])["feedback"][0]["thumb"] == "up"


def test_metrics_are_prometheus_text(server: Server, api: openai.OpenAI) -> None:
    api.chat.completions.create(model="echo", messages=[{"role": "user", "content": "count me"}])
    text = httpx.get(f"{server.url}/metrics").text
    families = {family.name: family for family in text_string_to_metric_families(text)}
    requests = {
        (sample.labels["model"], sample.labels["status"]): sample.value
        for sample in families["llmops_requests"].samples
    }
    assert requests[("echo", "200")] >= 1
    assert "llmops_request_duration_seconds" in families
    assert "llmops_time_to_first_token_seconds" in families
    assert "llmops_tokens" in families
    assert "llmops_cost_usd" in families
    assert "llmops_trace_queue_depth" in families
    assert "llmops_traces_dropped" in families

"""Streams that fail, end to end: before the first byte (failover the client never sees) and after it.

The SSE body is read raw (httpx) to see exactly what the client got: every ``data:`` event, the
error event, and whether ``data: [DONE]`` came; the openai client is run against the same streams.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from conftest import Server, UpstreamProcess, find_trace, start_server
from fake_upstream import ANSWER_PREFIX


def first_then_b(name: str, a: UpstreamProcess, b: UpstreamProcess, fault: str) -> dict[str, Any]:
    return {
        "name": name,
        "routing": "priority",
        "retry": {"backoff_base_seconds": 0.01},
        "deployments": [
            {"id": "a", "provider": "openai", "base_url": a.base_url, "model": fault, "priority": 0},
            {"id": "b", "provider": "openai", "base_url": b.base_url, "model": "m", "priority": 1},
        ],
    }


BEFORE_FIRST_BYTE = {
    "s-500": ("fault:500", 502),
    "s-429": ("fault:429,retry_after=5", 429),
    "s-reset": ("fault:reset", 502),
    "s-cut0": ("fault:cut_after,chunks=0", 502),  # 200 and headers, then closed before any event
}


@pytest.fixture(scope="module")
def server(
    upstream_pair: tuple[UpstreamProcess, UpstreamProcess], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    a, b = upstream_pair
    models = [first_then_b(name, a, b, fault) for name, (fault, _) in BEFORE_FIRST_BYTE.items()]
    models.append(first_then_b("s-cut", a, b, "fault:cut_after,chunks=2"))
    models.append(first_then_b("s-cut-after-done", a, b, "fault:cut_after,chunks=100"))
    running = start_server(
        tmp_path_factory.mktemp("streams"), models=models, keys={"admin": "admin", "app": "inference"}
    )
    yield running
    running.stop()


def raw_stream(server: Server, model: str, marker: str) -> tuple[int, list[str]]:
    """POST a streamed chat request; the status and the ``data:`` payloads, in order."""
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": marker}]}
    with httpx.stream(
        "POST", f"{server.base_url}/chat/completions", json=body, headers=server.headers("app"), timeout=30
    ) as response:
        text = response.read().decode()
    events = [line[len("data: ") :] for line in text.split("\n") if line.startswith("data: ")]
    return response.status_code, events


def content_of(events: list[str]) -> str:
    parts = []
    for event in events:
        data = json.loads(event)
        for choice in data.get("choices") or []:
            parts.append(choice["delta"].get("content") or "")
    return "".join(parts)


@pytest.mark.parametrize("model", list(BEFORE_FIRST_BYTE))
def test_failure_before_the_first_byte_is_invisible_to_the_client(
    server: Server, upstreams: tuple[UpstreamProcess, ...], model: str
) -> None:
    a, b = upstreams
    marker = uuid.uuid4().hex
    status, events = raw_stream(server, model, marker)
    assert status == 200
    assert events[-1] == "[DONE]"
    payloads = [json.loads(event) for event in events[:-1]]
    assert not any("error" in payload for payload in payloads)
    assert {payload["system_fingerprint"] for payload in payloads} == {"fp_b"}
    assert content_of(events[:-1]) == ANSWER_PREFIX + marker
    assert (a.requests(), b.requests()) == (1, 1)

    trace = find_trace(server, marker, model=model)
    assert (trace["status_code"], trace["deployment"], trace["response_text"]) == (
        200,
        "b",
        ANSWER_PREFIX + marker,
    )
    attempts = trace["attributes"]["attempts"]
    assert [(item["deployment"], item["status"]) for item in attempts] == [
        ("a", BEFORE_FIRST_BYTE[model][1]),
        ("b", 200),
    ]
    assert "truncated" not in trace["attributes"]

    stream = openai.OpenAI(
        base_url=server.base_url, api_key=server.keys["app"], max_retries=0
    ).chat.completions
    chunks = list(stream.create(model=model, messages=[{"role": "user", "content": "again"}], stream=True))
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices) == (
        ANSWER_PREFIX + "again"
    )


def test_failure_after_the_first_byte_ends_with_an_error_event_and_no_done(
    server: Server, upstreams: tuple[UpstreamProcess, ...]
) -> None:
    a, b = upstreams
    marker = uuid.uuid4().hex
    status, events = raw_stream(server, "s-cut", marker)
    assert status == 200  # the status went out with the first chunk
    assert "[DONE]" not in events
    *sent, last = [json.loads(event) for event in events]
    assert len(sent) == 2  # the upstream's two events (role, first piece of text) reached the client
    assert {payload["system_fingerprint"] for payload in sent} == {"fp_a"}
    assert set(last) == {"error"}
    assert last["error"]["message"]
    partial = content_of(events[:-1])
    assert partial
    assert (ANSWER_PREFIX + marker).startswith(partial)
    assert partial != ANSWER_PREFIX + marker
    assert (a.requests(), b.requests()) == (1, 0)  # too late to move: the client had bytes of a's answer

    trace = find_trace(server, marker, model="s-cut")
    assert trace["attributes"]["truncated"] is True
    assert trace["status_code"] >= 500
    assert trace["status"] == "error"
    assert trace["deployment"] == "a"
    assert trace["response_text"] == partial  # what was sent

    api = openai.OpenAI(base_url=server.base_url, api_key=server.keys["app"], max_retries=0)
    stream = api.chat.completions.create(
        model="s-cut", messages=[{"role": "user", "content": "x"}], stream=True
    )
    with pytest.raises(openai.APIError):
        list(stream)


def test_connection_lost_after_done_leaves_a_whole_answer(
    server: Server, upstreams: tuple[UpstreamProcess, ...]
) -> None:
    """The upstream sent every event and [DONE], then its connection broke before the body's end
    (an upstream killed at that moment, as in bench/chaos.py): the client's answer is whole."""
    a, b = upstreams
    marker = uuid.uuid4().hex
    status, events = raw_stream(server, "s-cut-after-done", marker)
    assert status == 200
    assert events[-1] == "[DONE]"
    assert not any("error" in json.loads(event) for event in events[:-1])
    assert content_of(events[:-1]) == ANSWER_PREFIX + marker
    assert (a.requests(), b.requests()) == (1, 0)
    trace = find_trace(server, marker, model="s-cut-after-done")
    assert (trace["status_code"], trace["response_text"]) == (200, ANSWER_PREFIX + marker)
    assert "truncated" not in (trace["attributes"] or {})

"""Cached answers replayed in the client's shape, parsed by the official `openai` client.

The client talks to an httpx transport that answers with the replayed bytes (httpx's own
MockTransport: the real HTTP client stack, no server), so what is checked is what the SDK makes of
them: chunks, text, tool calls, usage, and the end of the stream.
"""

from __future__ import annotations

from typing import Any

import httpx
import openai
import orjson
import pytest

from llmops.gateway.cache.replay import as_sse_events, as_whole_body, whole_from_stream
from llmops.gateway.endpoints import CHAT, COMPLETIONS
from llmops.gateway.streams import StreamObserver
from llmops.providers.base import SSE_DONE, sse_event
from llmops.tracing.record import TraceRecord

USAGE = {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}
CHAT_ANSWER: dict[str, Any] = {
    "id": "chatcmpl-cached",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "gpt-x",
    "system_fingerprint": "fp_1",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Paris is the capital."},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": USAGE,
}
TOOL_ANSWER: dict[str, Any] = {
    **CHAT_ANSWER,
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
}
COMPLETION_ANSWER: dict[str, Any] = {
    "id": "cmpl-cached",
    "object": "text_completion",
    "created": 1_700_000_000,
    "model": "gpt-x",
    "choices": [
        {"index": 0, "text": "upon a time", "logprobs": None, "finish_reason": "length"},
        {"index": 1, "text": "in a land", "logprobs": None, "finish_reason": "length"},
    ],
    "usage": USAGE,
}


def client_for(body: bytes, content_type: str) -> openai.OpenAI:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": content_type})

    http = httpx.Client(transport=httpx.MockTransport(answer))
    return openai.OpenAI(base_url="http://cache.test/v1", api_key="k", http_client=http, max_retries=0)


def sse(events: list[bytes]) -> openai.OpenAI:
    assert events[-1] == SSE_DONE
    return client_for(b"".join(events), "text/event-stream")


@pytest.mark.parametrize("include_usage", [True, False])
def test_chat_answer_replays_as_a_stream_the_sdk_reads(include_usage: bool) -> None:
    payload = {"model": "gpt-x", "stream": True, "stream_options": {"include_usage": include_usage}}
    client = sse(as_sse_events(CHAT, CHAT_ANSWER, payload))
    chunks = list(client.chat.completions.create(model="gpt-x", messages=[], stream=True))
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "Paris is the capital."
    assert chunks[0].choices[0].delta.role == "assistant"
    assert {chunk.id for chunk in chunks} == {"chatcmpl-cached"}
    assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"}
    assert chunks[0].system_fingerprint == "fp_1"
    finishes = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices]
    assert finishes[-1] == "stop"
    if include_usage:
        assert chunks[-1].choices == []
        assert chunks[-1].usage is not None
        usage = chunks[-1].usage
        assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (9, 4, 13)
    else:
        assert all(chunk.usage is None for chunk in chunks)


def test_tool_calls_replay_as_stream_deltas() -> None:
    client = sse(as_sse_events(CHAT, TOOL_ANSWER, {"stream": True}))
    chunks = list(client.chat.completions.create(model="gpt-x", messages=[], stream=True))
    calls = [call for chunk in chunks if chunk.choices for call in chunk.choices[0].delta.tool_calls or []]
    assert len(calls) == 1
    assert calls[0].index == 0
    assert calls[0].id == "call_1"
    assert calls[0].function is not None
    assert (calls[0].function.name, calls[0].function.arguments) == ("weather", '{"city": "Paris"}')
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_completions_replay_every_choice_with_usage() -> None:
    payload = {"stream": True, "stream_options": {"include_usage": True}}
    client = sse(as_sse_events(COMPLETIONS, COMPLETION_ANSWER, payload))
    chunks = list(client.completions.create(model="gpt-x", prompt="Once", stream=True))
    texts = {choice.index: choice.text for chunk in chunks for choice in chunk.choices}
    assert texts == {0: "upon a time", 1: "in a land"}
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 13


def test_whole_answer_replays_as_the_json_the_sdk_reads() -> None:
    client = client_for(as_whole_body(CHAT, CHAT_ANSWER, {}), "application/json")
    answer = client.chat.completions.create(model="gpt-x", messages=[])
    assert answer.id == "chatcmpl-cached"
    assert answer.choices[0].message.content == "Paris is the capital."
    assert answer.usage is not None
    assert answer.usage.total_tokens == 13


def test_a_finished_stream_becomes_a_whole_answer_and_replays_the_same() -> None:
    base = {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse_event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    upstream = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Paris is "}),
        chunk({"content": "the capital."}),
        chunk({}, "stop"),
        sse_event({**base, "choices": [], "usage": USAGE}),
        SSE_DONE,
    ]
    observer = StreamObserver("chat")
    for part in upstream:
        observer.feed(part)
    record = TraceRecord(
        id="t", started_at=0.0, endpoint="chat.completions", requested_model="gpt-x", stream=True
    )
    whole = whole_from_stream(CHAT, observer, record)
    assert whole["choices"][0]["message"] == {"role": "assistant", "content": "Paris is the capital."}
    assert whole["choices"][0]["finish_reason"] == "stop"
    assert whole["usage"] == USAGE
    orjson.dumps(whole)  # what the cache stores
    client = client_for(as_whole_body(CHAT, whole, {}), "application/json")
    assert client.chat.completions.create(model="gpt-x", messages=[]).choices[0].message.content == (
        "Paris is the capital."
    )
    replayed = sse(as_sse_events(CHAT, whole, {"stream_options": {"include_usage": True}}))
    chunks = list(replayed.chat.completions.create(model="gpt-x", messages=[], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Paris is the capital."
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 9

"""The echo provider: deterministic OpenAI-shaped answers, streams and embeddings."""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from llmops.providers import SSE_DONE, ProviderContext
from llmops.providers.echo import EchoProvider
from llmops.settings import DeploymentConfig, Settings

USER = [{"role": "system", "content": "be kind"}, {"role": "user", "content": "the quick brown fox"}]


def _provider(**params: Any) -> EchoProvider:
    config = DeploymentConfig(name="echo", provider="echo", params=params)
    return EchoProvider(config, ProviderContext(settings=Settings()))


async def _collect(chunks: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in chunks]


def _events(chunks: list[bytes]) -> list[Any]:
    """Every chunk is one whole SSE event; the last is [DONE]."""
    assert chunks[-1] == SSE_DONE
    events = []
    for chunk in chunks[:-1]:
        assert chunk.startswith(b"data: ")
        assert chunk.endswith(b"\n\n")
        events.append(json.loads(chunk[len(b"data: ") : -2]))
    return events


async def test_chat_echoes_last_user_message() -> None:
    provider = _provider()
    messages = [*USER, {"role": "assistant", "content": "ignored"}]
    result = await provider.chat({"model": "echo", "messages": messages})
    assert json.loads(result.body) == result.data
    data = result.data
    assert data["object"] == "chat.completion"
    assert data["id"].startswith("chatcmpl-")
    assert data["model"] == "echo"
    assert abs(data["created"] - time.time()) < 5
    (choice,) = data["choices"]
    assert choice == {
        "index": 0,
        "message": {"role": "assistant", "content": "the quick brown fox"},
        "logprobs": None,
        "finish_reason": "stop",
    }
    usage = data["usage"]
    assert usage["completion_tokens"] == 4
    assert usage["prompt_tokens"] > 4
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_chat_content_parts_and_no_user() -> None:
    provider = _provider()
    parts = [
        {"role": "user", "content": [{"type": "text", "text": "hello "}, {"type": "text", "text": "you"}]}
    ]
    result = await provider.chat({"model": "echo", "messages": parts})
    assert result.data["choices"][0]["message"]["content"] == "hello you"
    result = await provider.chat({"model": "echo", "messages": [{"role": "system", "content": "x"}]})
    assert result.data["choices"][0]["message"]["content"] == ""
    assert result.data["usage"]["completion_tokens"] == 0


async def test_chat_n() -> None:
    data = (await _provider().chat({"model": "echo", "messages": USER, "n": 3})).data
    assert [choice["index"] for choice in data["choices"]] == [0, 1, 2]
    assert {choice["message"]["content"] for choice in data["choices"]} == {"the quick brown fox"}
    assert data["usage"]["completion_tokens"] == 3 * 4


@pytest.mark.parametrize(
    ("stop", "expected"),
    [
        ("brown", "the quick "),
        (["zzz", "quick"], "the "),
        (["fox", "quick"], "the "),  # the earliest stop wins, whatever the list order
        (["zzz"], "the quick brown fox"),
        ([], "the quick brown fox"),
    ],
)
async def test_chat_stop(stop: Any, expected: str) -> None:
    data = (await _provider().chat({"model": "echo", "messages": USER, "stop": stop})).data
    assert data["choices"][0]["message"]["content"] == expected
    assert data["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("limits", "expected", "reason"),
    [
        ({"max_tokens": 2}, "the quick", "length"),
        ({"max_tokens": 4}, "the quick brown fox", "stop"),
        ({"max_tokens": 100}, "the quick brown fox", "stop"),
        ({"max_completion_tokens": 1}, "the", "length"),
        ({"max_completion_tokens": 3, "max_tokens": 1}, "the quick brown", "length"),
    ],
)
async def test_chat_max_tokens(limits: dict[str, int], expected: str, reason: str) -> None:
    data = (await _provider().chat({"model": "echo", "messages": USER, **limits})).data
    assert data["choices"][0]["message"]["content"] == expected
    assert data["choices"][0]["finish_reason"] == reason


async def test_reply_param() -> None:
    data = (await _provider(reply="fixed answer here").chat({"model": "echo", "messages": USER})).data
    assert data["choices"][0]["message"]["content"] == "fixed answer here"


async def test_stream_chat() -> None:
    chunks = await _collect(_provider().stream_chat({"model": "echo", "messages": USER, "stream": True}))
    events = _events(chunks)
    assert {event["id"] for event in events} == {events[0]["id"]}
    assert all(event["object"] == "chat.completion.chunk" for event in events)
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(event["choices"][0]["delta"].get("content", "") for event in events)
    assert text == "the quick brown fox"
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    assert events[-1]["choices"][0]["delta"] == {}
    assert all("usage" not in event for event in events)


async def test_stream_chat_include_usage_and_n() -> None:
    payload = {
        "model": "echo",
        "messages": USER,
        "stream": True,
        "n": 2,
        "max_tokens": 2,
        "stream_options": {"include_usage": True},
    }
    events = _events(await _collect(_provider().stream_chat(payload)))
    *content, usage_event = events
    assert usage_event["choices"] == []
    assert usage_event["usage"]["completion_tokens"] == 2 * 2
    whole = (await _provider().chat({k: v for k, v in payload.items() if k != "stream_options"})).data
    assert usage_event["usage"] == whole["usage"]
    for index in (0, 1):
        mine = [event["choices"][0] for event in content if event["choices"][0]["index"] == index]
        assert "".join(choice["delta"].get("content", "") for choice in mine) == "the quick"
        assert mine[-1]["finish_reason"] == "length"


async def test_completions_with_list_prompts() -> None:
    payload = {"model": "echo", "prompt": ["one two three", "four"], "n": 2, "max_tokens": 2}
    data = (await _provider().complete(payload)).data
    assert data["object"] == "text_completion"
    assert data["id"].startswith("cmpl-")
    assert [(choice["index"], choice["text"], choice["finish_reason"]) for choice in data["choices"]] == [
        (0, "one two", "length"),
        (1, "one two", "length"),
        (2, "four", "stop"),
        (3, "four", "stop"),
    ]
    assert data["usage"]["prompt_tokens"] == 4
    assert data["usage"]["completion_tokens"] == 2 * 2 + 2 * 1


async def test_completion_single_prompt() -> None:
    data = (await _provider().complete({"model": "echo", "prompt": "say this"})).data
    assert [choice["text"] for choice in data["choices"]] == ["say this"]


async def test_stream_completion() -> None:
    payload = {
        "model": "echo",
        "prompt": ["a b c", "d"],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    events = _events(await _collect(_provider().stream_complete(payload)))
    *content, usage_event = events
    assert usage_event["usage"]["completion_tokens"] == 4
    assert all(event["object"] == "text_completion" for event in events)
    for index, expected in ((0, "a b c"), (1, "d")):
        mine = [event["choices"][0] for event in content if event["choices"][0]["index"] == index]
        assert "".join(choice["text"] for choice in mine) == expected
        assert mine[-1]["finish_reason"] == "stop"


async def test_stream_completion_without_usage() -> None:
    events = _events(await _collect(_provider().stream_complete({"model": "echo", "prompt": "x"})))
    assert all("usage" not in event for event in events)


async def test_embeddings_are_deterministic_unit_vectors() -> None:
    provider = _provider()
    first = (await provider.embed({"model": "echo", "input": ["alpha", "beta", "alpha"]})).data
    vectors = [item["embedding"] for item in first["data"]]
    assert [item["index"] for item in first["data"]] == [0, 1, 2]
    assert all(item["object"] == "embedding" for item in first["data"])
    assert all(len(vector) == 8 for vector in vectors)
    for vector in vectors:
        assert math.isclose(math.sqrt(sum(value * value for value in vector)), 1.0, rel_tol=1e-9)
    assert vectors[0] == vectors[2]
    assert vectors[0] != vectors[1]
    again = (await _provider().embed({"model": "echo", "input": "alpha"})).data
    assert again["data"][0]["embedding"] == vectors[0]  # same text, same vector, across instances
    assert first["usage"]["prompt_tokens"] == first["usage"]["total_tokens"] > 0
    assert orjson.loads((await provider.embed({"model": "echo", "input": "x"})).body)["object"] == "list"


@pytest.mark.parametrize("dimensions", [1, 3, 8, 9, 100])
async def test_embedding_dimensions(dimensions: int) -> None:
    data = (await _provider().embed({"model": "echo", "input": "text", "dimensions": dimensions})).data
    vector = data["data"][0]["embedding"]
    assert len(vector) == dimensions
    assert math.isclose(sum(value * value for value in vector), 1.0, rel_tol=1e-9)


async def test_embedding_dimensions_param_default() -> None:
    data = (await _provider(dimensions=16).embed({"model": "echo", "input": "text"})).data
    assert len(data["data"][0]["embedding"]) == 16


async def test_delay_seconds() -> None:
    fast = _provider()
    started = time.perf_counter()
    await fast.chat({"model": "echo", "messages": USER})
    assert time.perf_counter() - started < 0.2
    slow = _provider(delay_seconds=0.3)
    for call in (
        slow.chat({"model": "echo", "messages": USER}),
        slow.embed({"model": "echo", "input": "x"}),
        slow.complete({"model": "echo", "prompt": "x"}),
    ):
        started = time.perf_counter()
        await call
        assert time.perf_counter() - started >= 0.29
    started = time.perf_counter()
    await _collect(slow.stream_chat({"model": "echo", "messages": USER, "stream": True}))
    assert time.perf_counter() - started >= 0.29

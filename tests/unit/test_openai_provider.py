"""The openai provider against a fake OpenAI-compatible upstream on a real socket."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from fake_upstream import ANSWER_PREFIX, FakeUpstream
from llmops.model_config import Timeouts
from llmops.providers import (
    ProviderContext,
    UpstreamFailure,
    UpstreamRejected,
    UpstreamTimeout,
)
from llmops.providers.openai import OpenAIProvider
from llmops.settings import DeploymentConfig, Settings

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
KEY_ENV = "LLMOPS_TEST_UPSTREAM_KEY"


@pytest.fixture
def up() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
async def context() -> AsyncIterator[ProviderContext]:
    shared = ProviderContext(settings=Settings())
    try:
        yield shared
    finally:
        await shared.aclose()


async def _provider(
    context: ProviderContext,
    base_url: str,
    model: str = "fake-model",
    timeouts: Timeouts | None = None,
    **params: Any,
) -> OpenAIProvider:
    config = DeploymentConfig(
        name="public",
        provider="openai",
        base_url=base_url,
        model=model,
        api_key_env=KEY_ENV,
        params=params,
        timeouts=timeouts or Timeouts(),
    )
    provider = OpenAIProvider(config, context)
    await provider.start()
    return provider


async def _collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


async def test_chat_rewrites_model_and_passes_everything_else(
    up: FakeUpstream, context: ProviderContext
) -> None:
    provider = await _provider(context, up.base_url, "fake-tools")
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    payload = {
        "model": "public",
        "messages": MESSAGES,
        "tools": tools,
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
        "seed": 7,
        "n": 1,
        "stop": ["\n\n", "END"],
        "temperature": 0.2,
        "some_future_param": {"nested": [1, "two", None]},
    }
    result = await provider.chat(payload)
    (sent,) = up.requests
    assert sent == {**payload, "model": "fake-tools"}
    assert payload["model"] == "public"  # the caller's payload is not modified
    assert result.data["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert result.data["choices"][0]["finish_reason"] == "tool_calls"


async def test_chat_body_passed_through_byte_for_byte(up: FakeUpstream, context: ProviderContext) -> None:
    provider = await _provider(context, up.base_url)
    result = await provider.chat({"model": "public", "messages": MESSAGES})
    assert json.loads(result.body) == result.data
    assert result.data["system_fingerprint"] == "fp_fake"
    assert result.data["model"] == "fake-model"
    assert result.data["choices"][0]["message"]["content"] == ANSWER_PREFIX + "hello there"
    assert result.data["usage"] == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    # the fake writes JSON with Python's separators: the bytes were not re-serialised
    assert b'"system_fingerprint": "fp_fake"' in result.body


async def test_authorization_and_extra_headers(
    up: FakeUpstream, context: ProviderContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-upstream-secret")
    provider = await _provider(context, up.base_url, headers={"X-Team": "search"})
    await provider.chat({"model": "public", "messages": MESSAGES})
    headers = {name.lower(): value for name, value in up.headers[-1].items()}
    assert headers["authorization"] == "Bearer sk-upstream-secret"
    assert headers["x-team"] == "search"
    assert headers["content-type"] == "application/json"


async def test_no_authorization_without_key(
    up: FakeUpstream, context: ProviderContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    provider = await _provider(context, up.base_url)
    await provider.chat({"model": "public", "messages": MESSAGES})
    assert "authorization" not in {name.lower() for name in up.headers[-1]}


async def test_stream_yields_upstream_sse_bytes(up: FakeUpstream, context: ProviderContext) -> None:
    provider = await _provider(context, up.base_url)
    payload = {
        "model": "public",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    body = await _collect(provider.stream_chat(payload))
    assert up.requests[-1] == {**payload, "model": "fake-model"}
    assert body.endswith(b"data: [DONE]\n\n")
    events = [event for event in body.split(b"\n\n") if event]
    assert all(event.startswith(b"data: ") for event in events)
    assert b'"object": "chat.completion.chunk"' in body  # the upstream's own bytes
    chunks = [json.loads(event[6:]) for event in events[:-1]]
    text = "".join(choice["delta"].get("content") or "" for chunk in chunks for choice in chunk["choices"])
    assert text == ANSWER_PREFIX + "hello there"
    assert chunks[-1]["usage"]["total_tokens"] == 18


async def test_completions_and_embeddings(up: FakeUpstream, context: ProviderContext) -> None:
    provider = await _provider(context, up.base_url)
    completion = await provider.complete({"model": "public", "prompt": "Once", "max_tokens": 5})
    assert up.requests[-1] == {"model": "fake-model", "prompt": "Once", "max_tokens": 5}
    assert completion.data["choices"][0]["text"] == ANSWER_PREFIX + "Once"
    embedding = await provider.embed({"model": "public", "input": ["a", "b"], "encoding_format": "base64"})
    assert up.requests[-1] == {"model": "fake-model", "input": ["a", "b"], "encoding_format": "base64"}
    assert [item["index"] for item in embedding.data["data"]] == [0, 1]
    assert isinstance(embedding.data["data"][0]["embedding"], str)  # base64 passed through as is


@pytest.mark.parametrize(("model", "status"), [("fake-400", 400), ("fake-429", 429)])
async def test_upstream_4xx_is_passed_through(
    up: FakeUpstream, context: ProviderContext, model: str, status: int
) -> None:
    provider = await _provider(context, up.base_url, model)
    for call in (
        provider.chat({"model": "public", "messages": MESSAGES}),
        provider.complete({"model": "public", "prompt": "x"}),
        provider.embed({"model": "public", "input": "x"}),
        _collect(provider.stream_chat({"model": "public", "messages": MESSAGES, "stream": True})),
    ):
        with pytest.raises(UpstreamRejected) as exc:
            await call
        assert exc.value.status == status
        assert exc.value.body is not None
        error = json.loads(exc.value.body)["error"]
        assert error["message"] == exc.value.message
        assert exc.value.message.startswith("fake upstream: ")
    assert exc.value.error_type == ("rate_limit_error" if status == 429 else "invalid_request_error")


async def test_upstream_401_is_a_gateway_failure(up: FakeUpstream, context: ProviderContext) -> None:
    provider = await _provider(context, up.base_url, "fake-401")
    with pytest.raises(UpstreamFailure) as exc:
        await provider.chat({"model": "public", "messages": MESSAGES})
    assert exc.value.status == 502
    assert "credentials" in exc.value.message
    assert "401" in exc.value.message
    assert exc.value.body is None  # the upstream's auth error is not shown to our client as its own


async def test_upstream_500(up: FakeUpstream, context: ProviderContext) -> None:
    provider = await _provider(context, up.base_url, "fake-500")
    with pytest.raises(UpstreamFailure) as exc:
        await provider.chat({"model": "public", "messages": MESSAGES})
    assert exc.value.status == 502
    assert "500" in exc.value.message
    assert "exploded" in exc.value.message
    with pytest.raises(UpstreamFailure):
        await _collect(provider.stream_chat({"model": "public", "messages": MESSAGES, "stream": True}))


async def test_upstream_bad_json(up: FakeUpstream, context: ProviderContext) -> None:
    provider = await _provider(context, up.base_url, "fake-bad-json")
    with pytest.raises(UpstreamFailure, match="invalid JSON") as exc:
        await provider.chat({"model": "public", "messages": MESSAGES})
    assert exc.value.status == 502


async def test_slow_upstream_times_out(up: FakeUpstream, context: ProviderContext) -> None:
    provider = await _provider(context, up.base_url, "fake-slow", timeouts=Timeouts(total=0.5))
    started = time.perf_counter()
    with pytest.raises(UpstreamTimeout) as exc:
        await provider.chat({"model": "public", "messages": MESSAGES})
    assert exc.value.status == 504
    assert 0.4 < time.perf_counter() - started < 2.5


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_closed_port(context: ProviderContext) -> None:
    provider = await _provider(context, f"http://127.0.0.1:{_closed_port()}/v1")
    with pytest.raises(UpstreamFailure) as exc:
        await provider.chat({"model": "public", "messages": MESSAGES})
    assert exc.value.status == 502
    with pytest.raises(UpstreamFailure):
        await _collect(provider.stream_chat({"model": "public", "messages": MESSAGES, "stream": True}))


async def test_stream_broken_midway(up: FakeUpstream, context: ProviderContext) -> None:
    provider = await _provider(context, up.base_url, "fake-stream-break")
    chunks = provider.stream_chat({"model": "public", "messages": MESSAGES, "stream": True})
    received: list[bytes] = []

    async def read_all() -> None:
        async for chunk in chunks:
            received.append(chunk)

    with pytest.raises(UpstreamFailure, match="mid-stream") as exc:
        await read_all()
    assert exc.value.status == 502
    assert b"".join(received).startswith(b"data: ")  # the first chunk arrived before the break
    assert b"[DONE]" not in b"".join(received)


async def test_missing_base_url(context: ProviderContext) -> None:
    with pytest.raises(ValueError, match="needs base_url"):
        OpenAIProvider(DeploymentConfig(name="public", provider="openai"), context)


async def test_start_must_be_awaited(up: FakeUpstream, context: ProviderContext) -> None:
    config = DeploymentConfig(name="public", provider="openai", base_url=up.base_url)
    provider = OpenAIProvider(config, context)
    with pytest.raises(RuntimeError, match="start"):
        await provider.chat({"model": "public", "messages": MESSAGES})


async def test_one_session_shared_and_closed(up: FakeUpstream) -> None:
    context = ProviderContext(settings=Settings())
    first = await _provider(context, up.base_url)
    second = await _provider(context, up.base_url + "/", "other-model")
    assert first._session is second._session
    await second.chat({"model": "public", "messages": MESSAGES})
    assert up.requests[-1]["model"] == "other-model"  # trailing slash of base_url handled
    session = first._session
    assert session is not None
    await context.aclose()
    assert session.closed

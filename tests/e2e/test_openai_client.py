"""The official `openai` client against a real `llmops serve`: answers, streams and typed errors."""

from __future__ import annotations

import httpx
import openai
import pytest

from conftest import Server
from fake_upstream import ANSWER_PREFIX, FakeUpstream

MESSAGES = [{"role": "user", "content": "hello gateway"}]


def client(server: Server, key: str = "app") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=server.keys[key], max_retries=0, timeout=20)


def test_chat_completion_sync(server: Server) -> None:
    answer = client(server).chat.completions.create(model="echo", messages=MESSAGES)
    assert answer.choices[0].message.content == "hello gateway"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 2


async def test_chat_completion_async(server: Server) -> None:
    async with openai.AsyncOpenAI(
        base_url=server.base_url, api_key=server.keys["app"], max_retries=0
    ) as aclient:
        answer = await aclient.chat.completions.create(model="gpt-fake", messages=MESSAGES, n=1, seed=7)
        stream = await aclient.chat.completions.create(model="echo", messages=MESSAGES, stream=True)
        parts = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
    assert answer.choices[0].message.content == ANSWER_PREFIX + "hello gateway"
    assert "".join(parts) == "hello gateway"


def test_streaming_with_usage(server: Server) -> None:
    stream = client(server).chat.completions.create(
        model="gpt-fake", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == ANSWER_PREFIX + "hello gateway"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 18


def test_parameters_reach_the_upstream_unchanged(server: Server, upstream: FakeUpstream) -> None:
    response_format = {"type": "json_object"}
    client(server).chat.completions.create(
        model="gpt-fake",
        messages=MESSAGES,
        temperature=0.2,
        max_tokens=12,
        stop=["x"],
        seed=3,
        response_format=response_format,  # type: ignore[arg-type]
    )
    sent = upstream.requests[-1]
    assert sent["model"] == "fake-model"
    assert (sent["temperature"], sent["max_tokens"], sent["stop"], sent["seed"]) == (0.2, 12, ["x"], 3)
    assert sent["response_format"] == response_format
    assert upstream.headers[-1]["Authorization"] == "Bearer sk-upstream-secret"


def test_tools_pass_through(server: Server) -> None:
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    answer = client(server).chat.completions.create(model="gpt-tools", messages=MESSAGES, tools=tools)  # type: ignore[arg-type]
    call = answer.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "weather"  # type: ignore[union-attr]
    stream = client(server).chat.completions.create(
        model="gpt-tools", messages=MESSAGES, tools=tools, stream=True
    )  # type: ignore[arg-type]
    deltas = [
        chunk.choices[0].delta for chunk in stream if chunk.choices and chunk.choices[0].delta.tool_calls
    ]
    assert deltas[0].tool_calls[0].function.name == "weather"  # type: ignore[index, union-attr]


def test_tools_refused_by_a_model_without_them(server: Server) -> None:
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    with pytest.raises(openai.BadRequestError, match="does not support tools"):
        client(server).chat.completions.create(model="echo", messages=MESSAGES, tools=tools)  # type: ignore[arg-type]


def test_completions_and_embeddings(server: Server) -> None:
    api = client(server)
    completion = api.completions.create(model="echo", prompt="say this", n=2)
    assert [choice.text for choice in completion.choices] == ["say this", "say this"]
    upstream_completion = api.completions.create(model="gpt-fake", prompt="p")
    assert upstream_completion.choices[0].text == ANSWER_PREFIX + "p"
    vectors = api.embeddings.create(model="echo", input=["a", "b"])  # the SDK asks for base64
    assert len(vectors.data) == 2
    assert len(vectors.data[0].embedding) == 8
    floats = api.embeddings.create(model="echo", input="a", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(vectors.data[0].embedding, abs=1e-6)
    upstream_vectors = api.embeddings.create(model="gpt-fake", input="a")
    assert upstream_vectors.data[0].embedding == [0.5, 0.5, 0.5, 0.5]


def test_models_list_and_retrieve(server: Server) -> None:
    api = client(server)
    names = {model.id for model in api.models.list()}
    assert {"echo", "gpt-fake", "gpt-tools"} <= names
    assert api.models.retrieve("gpt-fake").owned_by == "openai"
    with pytest.raises(openai.NotFoundError):
        api.models.retrieve("no-such-model")


def test_authentication_errors(server: Server) -> None:
    bad = openai.OpenAI(base_url=server.base_url, api_key="sk-wrong-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="echo", messages=MESSAGES)
    response = httpx.post(f"{server.base_url}/chat/completions", json={"model": "echo", "messages": MESSAGES})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_inference_key_cannot_use_admin_api(server: Server) -> None:
    response = httpx.get(f"{server.url}/api/traces", headers=server.headers("app"))
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "permission_error"


def test_request_errors(server: Server) -> None:
    api = client(server)
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        api.chat.completions.create(model="no-such-model", messages=MESSAGES)
    with pytest.raises(openai.BadRequestError) as bad:
        api.chat.completions.create(model="echo", messages=MESSAGES, temperature=5)
    assert bad.value.body["param"] == "temperature"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError):
        api.chat.completions.create(model="echo", messages=[])
    with pytest.raises(openai.APIStatusError) as too_big:
        api.chat.completions.create(model="echo", messages=[{"role": "user", "content": "x" * 70_000}])
    assert too_big.value.status_code == 413


def test_malformed_bodies_get_400_not_500(server: Server) -> None:
    url = f"{server.base_url}/chat/completions"
    for body in (b"{", b"[]", b"", b'{"model": 3}', b'{"model": "echo", "messages": "hi"}'):
        response = httpx.post(url, content=body, headers=server.headers("app"))
        assert response.status_code == 400, body
        assert response.json()["error"]["type"] == "invalid_request_error"
    response = httpx.get(url, headers=server.headers("app"))
    assert response.status_code == 405


def test_upstream_errors_are_typed(server: Server) -> None:
    api = client(server)
    with pytest.raises(openai.BadRequestError, match="invalid parameter"):
        api.chat.completions.create(model="gpt-400", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError):
        api.chat.completions.create(model="gpt-429", messages=MESSAGES)
    for model, status in (("gpt-500", 502), ("gpt-401", 502), ("gpt-bad-json", 502), ("gpt-down", 502)):
        with pytest.raises(openai.InternalServerError) as failed:
            api.chat.completions.create(model=model, messages=MESSAGES)
        assert failed.value.status_code == status, model
    with pytest.raises(openai.InternalServerError) as timed_out:
        api.chat.completions.create(model="gpt-slow", messages=MESSAGES)
    assert timed_out.value.status_code == 504


def test_upstream_error_before_a_stream_keeps_its_status(server: Server) -> None:
    with pytest.raises(openai.RateLimitError):
        client(server).chat.completions.create(model="gpt-429", messages=MESSAGES, stream=True)


def test_stream_broken_midway_raises_in_the_client(server: Server) -> None:
    stream = client(server).chat.completions.create(model="gpt-broken-stream", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError):
        list(stream)


def test_health_and_readiness(server: Server) -> None:
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/readyz").json()
    assert ready == {"status": "ready", "database": True, "models_not_ready": []}

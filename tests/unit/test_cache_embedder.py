"""The semantic cache's embedder on the real all-MiniLM-L6-v2 (marked ``model``), and how it is built."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from llmops.gateway.cache.semantic import INSTALL_HINT, MiniLMEmbedder, build_semantic
from llmops.gateway.cache.shared_index import RedisSharedIndex
from llmops.gateway.cache.vector_index import MemorySemanticIndex
from llmops.providers.base import ProviderContext
from llmops.providers.local import LocalProvider, packaged_models
from llmops.settings import DeploymentConfig, Settings

needs_local = pytest.mark.skipif(not packaged_models(), reason="the `local` extra is not installed")

QUESTION = "user: What is the capital of France?"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def context() -> AsyncIterator[ProviderContext]:
    shared = ProviderContext(settings=Settings())
    try:
        yield shared
    finally:
        await shared.aclose()


@pytest.fixture(scope="module")
def embedder(context: ProviderContext) -> MiniLMEmbedder:
    index, made = build_semantic(Settings(), context)
    assert isinstance(index, MemorySemanticIndex)
    assert isinstance(made, MiniLMEmbedder)
    return made


async def vector(embedder: MiniLMEmbedder, text: str) -> Any:
    found = await embedder.embed(text)
    assert found is not None
    return found


def test_building_imports_nothing_heavy_until_asked() -> None:
    heavy = ("numpy", "onnxruntime", "tokenizers", "redis")
    code = (
        "import sys, llmops.services, llmops.gateway.cache, llmops.gateway.cache.semantic; "
        f"print(sorted(set({heavy!r}) & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_a_missing_extra_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def without_onnxruntime(name: str, *args: Any) -> Any:
        return None if name == "onnxruntime" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_onnxruntime)
    with pytest.raises(ImportError, match=r"llmops\[local\].*onnxruntime") as raised:
        build_semantic(Settings(), ProviderContext(settings=Settings()))
    assert INSTALL_HINT in str(raised.value)


@needs_local
def test_with_redis_the_index_is_shared() -> None:
    settings = Settings(redis_url="redis://127.0.0.1:1/0")  # nothing is connected while building
    index, _ = build_semantic(settings, ProviderContext(settings=settings))
    assert isinstance(index, RedisSharedIndex)
    assert index.local.max_entries == settings.semantic_cache_max_entries
    asyncio.run(index.aclose())


@pytest.mark.model
@needs_local
async def test_one_model_in_memory_shared_with_the_local_provider() -> None:
    context = ProviderContext(settings=Settings())
    try:
        _, embedder = build_semantic(Settings(), context)
        assert isinstance(embedder, MiniLMEmbedder)
        provider = LocalProvider(
            DeploymentConfig(name="emb", provider="local", params={"kind": "embedding", "preload": True}),
            context,
        )
        await provider.start()
        loaded = embedder.loader.value
        assert loaded is not None  # the provider's load is the embedder's: one copy in memory
        ours = await embedder.embed(QUESTION)
        assert embedder.loader.value is loaded
        answer = await provider.embed({"model": "emb", "input": QUESTION})
        theirs = np.asarray(answer.data["data"][0]["embedding"], dtype=np.float32)
        assert float(ours @ theirs) == pytest.approx(1.0, abs=1e-5)
    finally:
        await context.aclose()


@pytest.mark.model
@needs_local
@pytest.mark.asyncio(loop_scope="module")
async def test_paraphrases_are_close_other_questions_are_not(embedder: MiniLMEmbedder) -> None:
    question = await vector(embedder, QUESTION)
    assert question.dtype == np.float32
    assert question.shape == (384,)
    assert float(np.linalg.norm(question)) == pytest.approx(1.0, abs=1e-5)
    paraphrase = await vector(embedder, "user: What's the capital of France?")
    other_country = await vector(embedder, "user: What is the capital of Germany?")
    unrelated = await vector(embedder, "user: How do I bake sourdough bread?")
    assert float(question @ paraphrase) > 0.95
    assert float(question @ other_country) < 0.85
    assert float(question @ unrelated) < 0.4


@pytest.mark.model
@needs_local
@pytest.mark.asyncio(loop_scope="module")
async def test_a_text_longer_than_the_model_reads_is_not_embedded(embedder: MiniLMEmbedder) -> None:
    assert await embedder.embed("user: " + "tell me more about caching " * 20) is not None  # ~100 tokens
    assert await embedder.embed("user: " + "tell me more about caching " * 80) is None  # ~400 tokens


@pytest.mark.model
@needs_local
@pytest.mark.asyncio(loop_scope="module")
async def test_embedding_runs_off_the_event_loop(embedder: MiniLMEmbedder) -> None:
    await embedder.embed("warm up")
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    running = asyncio.ensure_future(ticker())
    started = time.perf_counter()
    for number in range(10):
        await embedder.embed(f"user: question number {number} about the weather in Paris")
    elapsed = time.perf_counter() - started
    done.set()
    await running
    # blocking the loop for ~5 ms per text would leave about one tick per embedding
    assert ticks > 200, (ticks, elapsed)

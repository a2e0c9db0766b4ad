"""The response cache inside the gateway service (no HTTP): plan, lookup, store, replay and traces.

Models are echo models with a cache configured; the semantic side uses the real in-memory index and
a small bag-of-words embedder (tests/cache_support.py) in place of MiniLM, whose own tests are in
test_cache_embedder.py.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio

from cache_support import WordsEmbedder
from llmops.gateway.auth import Principal
from llmops.gateway.cache import ResponseCache
from llmops.gateway.cache.semantic import Embedder, SemanticIndex
from llmops.gateway.cache.stores import MemoryAnswerStore
from llmops.gateway.cache.vector_index import MemorySemanticIndex
from llmops.gateway.catalog import ModelCatalog
from llmops.gateway.service import CHAT, COMPLETIONS, Gateway, StreamReply, WholeReply
from llmops.providers.base import ProviderContext
from llmops.providers.registry import ProviderRegistry
from llmops.settings import ModelConfig, Settings
from llmops.store import TraceRepository, open_database
from llmops.tracing.metrics import GatewayMetrics, MetricsRegistry
from llmops.tracing.record import TraceRecord
from llmops.tracing.writer import TraceWriter

APP = Principal(key_id="key_app", name="app", scope="inference")
OTHER_TENANT = Principal(key_id="key_other", name="other", scope="inference")
PRICES = {"input_price_per_1m": 1.0, "output_price_per_1m": 2.0}
MODELS = [
    {"name": "exact", "provider": "echo", **PRICES, "cache": {"mode": "exact"}},
    {"name": "any", "provider": "echo", "cache": {"mode": "exact", "only_deterministic": False}},
    {"name": "semantic", "provider": "echo", "cache": {"mode": "semantic", "similarity": 0.9}},
    {"name": "plain", "provider": "echo"},
]


class CapturingWriter(TraceWriter):
    """The real writer, keeping each record it is handed (what the trace will say)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.records: list[TraceRecord] = []

    def submit(self, record: TraceRecord) -> None:
        self.records.append(record)
        super().submit(record)


class Harness:
    def __init__(self, tmp_path: Path, semantic: bool) -> None:
        self.engine = open_database(f"sqlite:///{tmp_path / 'cache.db'}")
        self.context = ProviderContext(settings=Settings())
        catalog = ModelCatalog.build(
            tuple(ModelConfig.model_validate(model) for model in MODELS), ProviderRegistry(), self.context
        )
        self.metrics = GatewayMetrics(MetricsRegistry())
        self.writer = CapturingWriter(
            TraceRepository(self.engine), self.metrics, max_queue=1000, batch_size=100, flush_seconds=60
        )
        self.cache = ResponseCache(MemoryAnswerStore(100), self.metrics)
        self.embedder = WordsEmbedder() if semantic else None
        if self.embedder is not None:
            pair = (MemorySemanticIndex(WordsEmbedder.dimensions), self.embedder)
            self.cache.semantic_factory = lambda: pair
        self.gateway = Gateway(catalog, self.writer, self.metrics, record_content=True, cache=self.cache)

    async def ask(
        self,
        model: str,
        content: str = "hello cache",
        *,
        principal: Principal = APP,
        directive: bytes | None = None,
        endpoint: Any = CHAT,
        **extra: Any,
    ) -> tuple[dict[str, Any] | list[dict[str, Any]], str | None]:
        """The answer (JSON, or the list of stream chunks) and the x-llmops-cache header."""
        if endpoint is CHAT:
            body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": content}]}
        else:
            body = {"model": model, "prompt": content}
        body.update({"temperature": 0, **extra})
        body = {key: value for key, value in body.items() if value is not None}
        reply = await self.gateway.handle(endpoint, principal, orjson.dumps(body), directive)
        header = dict(reply.headers).get(b"x-llmops-cache")
        if isinstance(reply, StreamReply):
            chunks = [chunk async for chunk in reply.chunks()]
            assert chunks[-1] == b"data: [DONE]\n\n"
            events = [orjson.loads(chunk[len(b"data: ") :]) for chunk in chunks[:-1]]
            result: dict[str, Any] | list[dict[str, Any]] = events
        else:
            assert isinstance(reply, WholeReply)
            result = orjson.loads(reply.body)
        await self.cache.flush()
        return result, header.decode() if header else None

    def last_trace(self) -> TraceRecord:
        return self.writer.records[-1]


@pytest_asyncio.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    made = Harness(tmp_path, semantic=True)
    await made.gateway.catalog.start()
    yield made
    await made.cache.aclose()
    await made.gateway.catalog.aclose()
    made.engine.dispose()


def text_of(answer: Any) -> str:
    if isinstance(answer, list):
        return "".join(
            (choice.get("delta") or {}).get("content") or choice.get("text") or ""
            for event in answer
            for choice in event["choices"]
        )
    choice = answer["choices"][0]
    return str(choice["message"]["content"] if "message" in choice else choice["text"])


async def test_miss_then_hit_traced_at_cost_zero(harness: Harness) -> None:
    first, header = await harness.ask("exact")
    assert header == "miss"
    miss = harness.last_trace()
    assert (miss.cache_status, miss.provider) == ("miss", "echo")
    assert miss.cost is not None
    assert miss.cost > 0
    second, header = await harness.ask("exact")
    assert header == "hit"
    assert second == first  # the very answer, id included
    hit = harness.last_trace()
    assert (hit.cache_status, hit.provider, hit.cost) == ("hit", None, 0.0)
    assert hit.attributes["cache"]["source_trace"] == miss.id
    assert (hit.prompt_tokens, hit.completion_tokens) == (
        miss.prompt_tokens,
        miss.completion_tokens,
    )
    assert harness.metrics.cache.value(("exact", "hit")) == 1
    assert harness.metrics.cache.value(("exact", "miss")) == 1


async def test_a_model_without_cache_has_no_header(harness: Harness) -> None:
    for _ in range(2):
        _, header = await harness.ask("plain")
        assert header is None
        assert harness.last_trace().cache_status is None


async def test_only_deterministic_requests_by_default(harness: Harness) -> None:
    for _ in range(2):
        _, header = await harness.ask("exact", temperature=0.7)
        assert header is None
    _, header = await harness.ask("exact", temperature=0.7, seed=5)
    assert header == "miss"
    _, header = await harness.ask("exact", temperature=0.7, seed=5)
    assert header == "hit"
    assert [(await harness.ask("any", temperature=0.7))[1] for _ in range(2)] == ["miss", "hit"]
    assert [(await harness.ask("any", temperature=None))[1] for _ in range(2)] == ["miss", "hit"]


async def test_no_cache_skips_the_lookup_and_no_store_the_storing(harness: Harness) -> None:
    _, header = await harness.ask("exact", "directives", directive=b"no-store")
    assert header == "miss"
    _, header = await harness.ask("exact", "directives", directive=b"no-store")
    assert header == "miss"  # nothing was stored
    _, header = await harness.ask("exact", "directives")
    assert header == "miss"  # stores now
    _, header = await harness.ask("exact", "directives", directive=b"no-cache")
    assert header == "miss"  # looked nothing up (but stored again)
    _, header = await harness.ask("exact", "directives", directive=b"No-Store, no-cache")
    assert header is None  # neither lookup nor store: the cache is not involved
    _, header = await harness.ask("exact", "directives", directive=b"no-store")
    assert header == "hit"


async def test_tenants_never_share_an_entry(harness: Harness) -> None:
    await harness.ask("exact", "tenant question")
    _, header = await harness.ask("exact", "tenant question", principal=OTHER_TENANT)
    assert header == "miss"
    await harness.ask("semantic", "what is the tenant policy")
    _, header = await harness.ask("semantic", "the tenant policy is what", principal=OTHER_TENANT)
    assert header == "miss"
    _, header = await harness.ask("semantic", "the tenant policy is what")
    assert header == "semantic-hit"


async def test_a_stream_is_served_from_a_whole_answer_with_usage(harness: Harness) -> None:
    whole, _ = await harness.ask("exact", "shape shifting")
    events, header = await harness.ask(
        "exact", "shape shifting", stream=True, stream_options={"include_usage": True}
    )
    assert header == "hit"
    assert isinstance(events, list)
    assert text_of(events) == text_of(whole) == "shape shifting"
    assert events[-1]["choices"] == []
    assert events[-1]["usage"] == whole["usage"]
    assert harness.last_trace().stream is True
    plain, header = await harness.ask("exact", "shape shifting", stream=True)
    assert header == "hit"
    assert all(event.get("usage") is None for event in plain)  # type: ignore[union-attr]


async def test_a_whole_answer_is_served_from_a_stream(harness: Harness) -> None:
    events, header = await harness.ask("exact", "streamed first", stream=True)
    assert header == "miss"
    whole, header = await harness.ask("exact", "streamed first")
    assert header == "hit"
    assert isinstance(whole, dict)
    assert text_of(whole) == text_of(events) == "streamed first"
    assert whole["object"] == "chat.completion"
    usage = whole["usage"]
    assert usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert whole["choices"][0]["finish_reason"] == "stop"


async def test_completions_are_cached_apart_from_chat(harness: Harness) -> None:
    await harness.ask("exact", "one prompt")
    answer, header = await harness.ask("exact", "one prompt", endpoint=COMPLETIONS)
    assert header == "miss"
    answer, header = await harness.ask("exact", "one prompt", endpoint=COMPLETIONS, stream=True)
    assert header == "hit"
    assert text_of(answer) == "one prompt"


async def test_semantic_hit_for_a_close_question_miss_for_another(harness: Harness) -> None:
    original, header = await harness.ask("semantic", "How tall is the Eiffel tower")
    assert header == "miss"
    close, header = await harness.ask("semantic", "the eiffel tower is how tall?")
    assert header == "semantic-hit"
    assert close == original
    trace = harness.last_trace()
    assert (trace.cache_status, trace.cost) == ("semantic-hit", 0.0)
    assert trace.attributes["cache"]["similarity"] >= 0.9
    _, header = await harness.ask("semantic", "How old is the Eiffel tower")
    assert header == "miss"
    _, header = await harness.ask("semantic", "How tall is the Eiffel tower", max_tokens=3)
    assert header == "miss"  # other parameters: another scope
    _, header = await harness.ask("semantic", "the eiffel tower is how tall?")
    assert header == "semantic-hit"  # a hit is not stored again under its own key


async def test_texts_too_long_to_embed_are_cached_exactly(harness: Harness) -> None:
    assert harness.embedder is not None
    harness.embedder.max_chars = 50
    long_text = "word " * 40
    assert [(await harness.ask("semantic", long_text))[1] for _ in range(2)] == ["miss", "hit"]
    _, header = await harness.ask("semantic", long_text + "more")
    assert header == "miss"


async def test_without_the_semantic_side_a_semantic_model_caches_exactly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    made = Harness(tmp_path, semantic=False)

    def missing() -> tuple[SemanticIndex, Embedder]:
        raise ImportError("the semantic cache needs the embedded MiniLM model")

    made.cache.semantic_factory = missing
    await made.gateway.catalog.start()
    try:
        headers = [(await made.ask("semantic", "hello"))[1] for _ in range(3)]
        assert headers == ["miss", "hit", "hit"]
    finally:
        await made.cache.aclose()
        await made.gateway.catalog.aclose()
        made.engine.dispose()
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "caching exact matches only" in errors[0].getMessage()

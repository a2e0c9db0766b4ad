"""Limits on the gateway's request path (no HTTP): allowed models, admission, and one settlement on
every way a request can end: whole answer, stream end, stream cut, upstream error, cache hit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from limits_support import caller
from llmops.gateway.auth import Principal
from llmops.gateway.cache import ResponseCache
from llmops.gateway.cache.stores import MemoryAnswerStore
from llmops.gateway.catalog import ModelCatalog
from llmops.gateway.errors import GatewayError
from llmops.gateway.limiting import LimitStep
from llmops.gateway.service import CHAT, EMBEDDINGS, Gateway, StreamReply, WholeReply
from llmops.limits.backends import MemoryBackend
from llmops.limits.limiter import Limiter
from llmops.limits.periods import to_nano
from llmops.limits.policy import Limits
from llmops.limits.spend import SpendLedger, SpendRepository
from llmops.providers.base import Payload, Provider, ProviderContext, ProviderResult
from llmops.providers.registry import ProviderRegistry
from llmops.settings import ModelConfig, Settings
from llmops.store import TraceRepository, open_database
from llmops.tracing.metrics import GatewayMetrics, LimitMetrics, MetricsRegistry
from llmops.tracing.record import TraceRecord
from llmops.tracing.writer import TraceWriter

PRICES = {"input_price_per_1m": 1.0, "output_price_per_1m": 2.0}
TOTAL = ("key", "key_gw", "total", "all")


class Broken(Provider):
    name = "broken"

    async def chat(self, payload: Payload) -> ProviderResult:
        raise KeyError("upstream bug")


class Writer(TraceWriter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.records: list[TraceRecord] = []

    def submit(self, record: TraceRecord) -> None:
        self.records.append(record)
        super().submit(record)


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.engine = open_database(f"sqlite:///{tmp_path / 'gw.db'}")
        registry = ProviderRegistry()
        registry.register("broken", Broken)
        models = [
            {"name": "echo", "provider": "echo", **PRICES},
            {
                "name": "failover",  # two deployments: the dearest prices count
                "deployments": [
                    {
                        "id": "cheap",
                        "provider": "echo",
                        "input_price_per_1m": 0.5,
                        "output_price_per_1m": 1.0,
                    },
                    {"id": "dear", "provider": "echo", "input_price_per_1m": 3.0, "output_price_per_1m": 4.0},
                ],
            },
            {"name": "cached", "provider": "echo", **PRICES, "cache": {"mode": "exact"}},
            {"name": "broken", "provider": "broken", "retry": {"max_attempts": 1}},
        ]
        catalog = ModelCatalog.build(
            tuple(ModelConfig.model_validate(m) for m in models),
            registry,
            ProviderContext(settings=Settings()),
        )
        metrics = GatewayMetrics(MetricsRegistry())
        self.writer = Writer(
            TraceRepository(self.engine), metrics, max_queue=1000, batch_size=100, flush_seconds=60
        )
        self.limiter = Limiter(
            MemoryBackend(), SpendLedger(SpendRepository(self.engine)), LimitMetrics(MetricsRegistry())
        )
        self.step = LimitStep(self.limiter, default_max_tokens=100)
        self.gateway = Gateway(
            catalog,
            self.writer,
            metrics,
            record_content=True,
            cache=ResponseCache(MemoryAnswerStore(100), metrics),
            limits=self.step,
        )

    async def ask(self, who: Principal, model: str = "echo", **extra: Any) -> WholeReply | StreamReply:
        body = {"model": model, "messages": [{"role": "user", "content": "hello limits"}], **extra}
        return await self.gateway.handle(CHAT, who, orjson.dumps(body))

    def spent(self) -> int:
        return self.limiter.ledger.pending(TOTAL)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    made = Harness(tmp_path)
    yield made
    made.engine.dispose()


def headers(reply: Any) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in reply.headers}


def gw_key(**limits: Any) -> Principal:
    return caller("key_gw", Limits(**limits), name="gw")


async def test_a_model_outside_the_allow_lists_is_refused_and_traced(harness: Harness) -> None:
    narrow = Principal("key_n", "narrow", "inference", models=(("gpt-*", "ech?"), ("gpt-4*",)))
    with pytest.raises(GatewayError) as refused:
        await harness.ask(narrow)
    error = refused.value
    assert (error.status, error.error_type, error.code, error.param) == (
        403,
        "invalid_request_error",
        "model_not_allowed",
        "model",
    )
    assert error.message == "the API key 'narrow' may not use the model 'echo'"
    assert harness.writer.records[-1].status_code == 403
    assert "x-llmops-trace-id" in headers(error)
    allowed = Principal("key_w", "wide", "inference", models=(("ech?",), ("*",)))
    assert isinstance(await harness.ask(allowed), WholeReply)


async def test_unlimited_keys_get_no_ratelimit_headers(harness: Harness) -> None:
    reply = await harness.ask(Principal("key_free", "free", "inference"))
    assert not any(name.startswith("x-ratelimit") for name in headers(reply))


async def test_the_demand_counts_prompt_max_tokens_and_the_dearest_prices(harness: Harness) -> None:
    route = harness.gateway.catalog.get("failover")
    assert route is not None
    payload = {"model": "failover", "messages": [{"role": "user", "content": "hello limits"}], "n": 2}
    who = gw_key(budget_day=1.0)
    demand = harness.step.demand(who, CHAT, route, {**payload, "max_tokens": 7})
    prompt = demand.tokens - 14
    assert prompt > 0
    assert demand.nano == (prompt * 3 + 14 * 4) * 1000
    assert (
        harness.step.demand(who, CHAT, route, payload).tokens == prompt + 200
    )  # the default cap, per choice
    assert harness.step.demand(gw_key(rpm=5), CHAT, route, payload).tokens == 0  # rpm only: nothing counted
    embedding = harness.step.demand(
        gw_key(tpm=100), EMBEDDINGS, route, {"model": "failover", "input": [5, 6, 7]}
    )
    assert (embedding.tokens, embedding.nano) == (3, 0)  # token ids, and no completion


async def test_a_whole_answer_settles_its_actual_cost(harness: Harness) -> None:
    reply = await harness.ask(gw_key(tpm=10_000, budget_total=1.0), max_tokens=50)
    trace = harness.writer.records[-1]
    assert trace.cost
    assert harness.spent() == to_nano(trace.cost)
    tokens = trace.prompt_tokens + trace.completion_tokens  # type: ignore[operator]
    assert headers(reply)["x-ratelimit-limit-tokens"] == "10000"
    nxt = await harness.ask(gw_key(tpm=10_000, budget_total=1.0), max_tokens=50)
    estimate = trace.prompt_tokens + 50  # type: ignore[operator]
    assert headers(nxt)["x-ratelimit-remaining-tokens"] == str(10_000 - tokens - estimate)


async def test_a_stream_holds_its_reservation_until_it_ends(harness: Harness) -> None:
    who = gw_key(budget_total=0.0003)  # one reservation (100 tokens at most) fits, two do not
    reply = await harness.ask(who, stream=True, max_tokens=100)
    assert isinstance(reply, StreamReply)
    assert "x-ratelimit-limit-requests" not in headers(reply)
    with pytest.raises(GatewayError) as refused:
        await harness.ask(who, max_tokens=100)
    assert refused.value.code == "insufficient_quota"
    assert harness.writer.records[-1].status_code == 429
    chunks = [chunk async for chunk in reply.chunks()]
    assert chunks[-1] == b"data: [DONE]\n\n"
    trace = harness.writer.records[-1]
    assert harness.spent() == to_nano(trace.cost or 0) > 0
    await harness.ask(who, max_tokens=100)


async def test_a_stream_the_client_leaves_is_settled(harness: Harness) -> None:
    who = gw_key(budget_total=0.0003, rpm=100)
    reply = await harness.ask(who, stream=True, max_tokens=100)
    assert isinstance(reply, StreamReply)
    assert headers(reply)["x-ratelimit-remaining-requests"] == "99"
    chunks = reply.chunks()
    await anext(chunks)
    await chunks.aclose()
    assert harness.writer.records[-1].status_code == 499
    await harness.ask(who, max_tokens=100)  # the reservation was released


async def test_an_upstream_error_settles_at_no_cost(harness: Harness) -> None:
    who = gw_key(budget_total=0.0003, rpm=100)
    with pytest.raises(GatewayError) as failed:
        await harness.ask(who, "broken", max_tokens=100)
    assert failed.value.status == 502
    assert headers(failed.value)["x-ratelimit-remaining-requests"] == "99"
    assert harness.spent() == 0
    await harness.ask(who, max_tokens=100)


async def test_a_cache_hit_costs_nothing(harness: Harness) -> None:
    who = gw_key(budget_total=1.0)
    await harness.ask(who, "cached", temperature=0)
    await harness.gateway._cache.flush()  # type: ignore[union-attr]
    first = harness.spent()
    reply = await harness.ask(who, "cached", temperature=0)
    assert headers(reply)["x-llmops-cache"] == "hit"
    assert harness.spent() == first > 0


async def test_a_refusal_is_traced_with_its_headers(harness: Harness) -> None:
    who = gw_key(rpm=1)
    await harness.ask(who)
    with pytest.raises(GatewayError) as refused:
        await harness.ask(who)
    error = refused.value
    assert error.message == "rate limit of key 'gw': 1 requests per minute; retry in 60s"
    found = headers(error)
    assert (found["retry-after"], found["x-ratelimit-remaining-requests"]) == ("60", "0")
    trace = harness.writer.records[-1]
    assert (trace.status_code, trace.error_type, found["x-llmops-trace-id"]) == (
        429,
        "rate_limit_error",
        trace.id,
    )

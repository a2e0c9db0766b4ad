"""The gateway service without HTTP: routing, failures, and the trace each request leaves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest

from llmops.gateway.auth import Principal
from llmops.gateway.catalog import ModelCatalog
from llmops.gateway.errors import GatewayError
from llmops.gateway.service import CHAT, EMBEDDINGS, Gateway, StreamReply, WholeReply
from llmops.providers.base import Payload, Provider, ProviderContext, ProviderResult, sse_event
from llmops.providers.registry import ProviderRegistry
from llmops.settings import ModelConfig, Settings
from llmops.store import TraceRepository, open_database
from llmops.tracing.metrics import GatewayMetrics, MetricsRegistry
from llmops.tracing.writer import TraceWriter

CALLER = Principal(key_id="key_test", name="test", scope="inference")


class CrashingProvider(Provider):
    """A provider with a bug: it raises something that is not a ProviderError."""

    name = "crashing"

    async def chat(self, payload: Payload) -> ProviderResult:
        raise KeyError("oops")

    async def stream_chat(self, payload: Payload) -> AsyncIterator[bytes]:
        yield sse_event({"choices": [{"index": 0, "delta": {"content": "partial"}}]})
        raise KeyError("oops mid-stream")


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        engine = open_database(f"sqlite:///{tmp_path / 'gw.db'}")
        self.engine = engine
        registry = ProviderRegistry()
        registry.register("crashing", CrashingProvider)
        models = (
            ModelConfig.model_validate(
                {"name": "echo", "provider": "echo", "input_price_per_1m": 1, "output_price_per_1m": 1}
            ),
            ModelConfig.model_validate({"name": "crash", "provider": "crashing"}),
        )
        self.context = ProviderContext(settings=Settings())
        catalog = ModelCatalog.build(models, registry, self.context)
        self.metrics = GatewayMetrics(MetricsRegistry())
        self.writer = TraceWriter(
            TraceRepository(engine), self.metrics, max_queue=1000, batch_size=100, flush_seconds=60
        )
        self.gateway = Gateway(catalog, self.writer, self.metrics, record_content=True)

    def queued(self) -> list[SimpleNamespace]:
        return [SimpleNamespace(**row) for row in self.writer.pending()]

    async def handle(self, body: dict[str, object], endpoint: object = CHAT) -> WholeReply | StreamReply:
        return await self.gateway.handle(endpoint, CALLER, orjson.dumps(body))  # type: ignore[arg-type]


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    made = Harness(tmp_path)
    yield made
    made.engine.dispose()


def _chat(model: str, **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "hi there"}], **extra}


async def test_whole_answer_is_traced(harness: Harness) -> None:
    reply = await harness.handle(_chat("echo"))
    assert isinstance(reply, WholeReply)
    assert orjson.loads(reply.body)["choices"][0]["message"]["content"] == "hi there"
    [trace] = harness.queued()
    assert (trace.status, trace.provider, trace.api_key_id) == ("ok", "echo", "key_test")
    assert trace.response_text == "hi there"
    assert trace.cost == pytest.approx((trace.prompt_tokens + trace.completion_tokens) / 1e6)  # type: ignore[operator]


async def test_a_provider_bug_is_a_traced_502(harness: Harness) -> None:
    with pytest.raises(GatewayError) as failed:
        await harness.handle(_chat("crash"))
    assert failed.value.status == 502
    assert "KeyError" in failed.value.message
    [trace] = harness.queued()
    assert (trace.status_code, trace.error_type) == (502, "upstream_error")
    assert harness.metrics.requests.value(("crash", "crashing", "502")) == 1


async def test_a_provider_bug_mid_stream_ends_with_an_error_event(harness: Harness) -> None:
    reply = await harness.handle(_chat("crash", stream=True))
    assert isinstance(reply, StreamReply)
    chunks = [chunk async for chunk in reply.chunks()]
    assert b"partial" in chunks[0]
    assert orjson.loads(chunks[-1][len(b"data: ") :])["error"]["code"] == "provider_error"
    [trace] = harness.queued()
    assert (trace.status_code, trace.response_text) == (502, "partial")


async def test_client_going_away_mid_stream_is_traced_as_499(harness: Harness) -> None:
    reply = await harness.handle(_chat("echo", stream=True))
    assert isinstance(reply, StreamReply)
    chunks = reply.chunks()
    await anext(chunks)
    await chunks.aclose()
    [trace] = harness.queued()
    assert (trace.status_code, trace.error_type) == (499, "client_closed")


async def test_unknown_and_overlong_model_names(harness: Harness) -> None:
    with pytest.raises(GatewayError) as missing:
        await harness.handle(_chat("x" * 5000))
    assert missing.value.status == 404
    [trace] = harness.queued()
    assert len(trace.requested_model) == 200
    assert harness.metrics.requests.value(("", "", "404")) == 1  # client text never becomes a label


async def test_streaming_embeddings_is_refused(harness: Harness) -> None:
    with pytest.raises(GatewayError) as refused:
        await harness.handle({"model": "echo", "input": "a", "stream": True}, EMBEDDINGS)
    assert (refused.value.status, refused.value.param) == (400, "stream")


async def test_record_content_off_keeps_prompts_out(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    harness.gateway = Gateway(harness.gateway.catalog, harness.writer, harness.metrics, record_content=False)
    await harness.handle(_chat("echo"))
    [trace] = harness.queued()
    assert trace.request is None
    assert trace.response_text is None
    assert trace.completion_tokens  # usage is still counted
    harness.engine.dispose()


async def test_annotations_from_inside_llmops_reach_the_trace(harness: Harness) -> None:
    await harness.gateway.handle(
        CHAT,
        CALLER,
        orjson.dumps(_chat("echo")),
        annotations={"prompt_name": "support", "prompt_version": 3, "attributes": {"playground": "run-1"}},
    )
    [trace] = harness.queued()
    assert (trace.prompt_name, trace.prompt_version) == ("support", 3)
    assert trace.attributes["playground"] == "run-1"
    with pytest.raises(ValueError, match="unknown trace annotation"):
        await harness.gateway.handle(CHAT, CALLER, orjson.dumps(_chat("echo")), annotations={"cost": 0})


async def test_a_stream_whose_client_left_before_the_first_send_is_still_traced_and_settled(
    harness: Harness,
) -> None:
    """The server could not send the response start, so ``chunks()`` never began: closing the reply
    must still end the upstream call, write the trace (499) and settle the request's limits."""
    reply = await harness.handle(_chat("echo", stream=True))
    assert isinstance(reply, StreamReply)
    settled = []
    reply.on_complete = settled.append
    deployment = harness.gateway.catalog.get("echo").deployments[0]  # type: ignore[union-attr]
    assert deployment.in_flight == 1
    await reply.close()
    await reply.close()  # twice is once
    assert deployment.in_flight == 0
    assert [trace.status_code for trace in harness.queued()] == [499]
    assert len(settled) == 1

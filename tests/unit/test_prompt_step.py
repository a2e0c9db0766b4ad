"""Requests naming a prompt (``model="prompt:..."``): the prompt step alone, then inside Gateway.handle.

The registry is real (SQLite and Postgres), the models are echo models, traces are read from the
writer's queue (the writer is never started, so nothing is written). The statement count in
:func:`test_no_database_query_per_request_once_warm` covers every SQL statement the engine runs
while the requests go through ``Gateway.handle``: with the writer and the resolver's poll task not
running, any statement would come from the request path.
"""

from __future__ import annotations

import random
from collections import Counter
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, event

from llmops.gateway.auth import Principal
from llmops.gateway.cache import ResponseCache
from llmops.gateway.cache.stores import MemoryAnswerStore
from llmops.gateway.catalog import ModelCatalog
from llmops.gateway.endpoints import CHAT, COMPLETIONS, EMBEDDINGS, Endpoint
from llmops.gateway.errors import GatewayError
from llmops.gateway.prompting import PromptStep
from llmops.gateway.service import Gateway, WholeReply
from llmops.prompts.experiments import ExperimentService
from llmops.prompts.repository import PromptRepository
from llmops.prompts.resolver import PromptResolver
from llmops.prompts.services import PromptService
from llmops.prompts.spec import MessageTemplate, PromptContent, VariableSpec
from llmops.providers.base import ProviderContext
from llmops.providers.registry import ProviderRegistry
from llmops.settings import ModelConfig, Settings
from llmops.store import TraceRepository
from llmops.tracing.metrics import GatewayMetrics, MetricsRegistry
from llmops.tracing.record import TraceRecord
from llmops.tracing.writer import TraceWriter

CALLER = Principal(key_id="key_test", name="test", scope="inference")


def chat_prompt(model: str | None = "echo", **parameters: Any) -> PromptContent:
    return PromptContent(
        kind="chat",
        messages=(
            MessageTemplate(role="system", content="You answer {{ tone }}ly."),
            MessageTemplate(role="user", content="Question: {{ question }}"),
        ),
        variables={"tone": VariableSpec(default="kind"), "question": VariableSpec(required=True)},
        model=model,
        parameters=parameters,
    )


def text_prompt() -> PromptContent:
    return PromptContent(
        kind="text",
        template="Summarise in {{ words }} words:",
        variables={"words": VariableSpec(type="integer", default=10)},
        model="echo",
        parameters={"max_tokens": 50},
    )


class Harness:
    def __init__(self, engine: Engine, *, record_content: bool = True) -> None:
        self.engine = engine
        repository = PromptRepository(engine)
        self.prompts = PromptService(repository)
        self.experiments = ExperimentService(engine, self.prompts, repository)
        self.resolver = PromptResolver(self.prompts, self.experiments, refresh_seconds=60)
        self.step = PromptStep(self.resolver, record_variables=record_content, rng=random.Random(7))
        models = (
            {"name": "echo", "provider": "echo"},
            {"name": "cached", "provider": "echo", "cache": {"mode": "exact"}},
        )
        catalog = ModelCatalog.build(
            tuple(ModelConfig.model_validate(model) for model in models),
            ProviderRegistry(),
            ProviderContext(settings=Settings()),
        )
        self.metrics = GatewayMetrics(MetricsRegistry())
        self.writer = TraceWriter(
            TraceRepository(engine), self.metrics, max_queue=10_000, batch_size=100, flush_seconds=60
        )
        self.gateway = Gateway(
            catalog,
            self.writer,
            self.metrics,
            record_content=record_content,
            cache=ResponseCache(MemoryAnswerStore(100), self.metrics),
            prompts=self.step,
        )

    async def handle(
        self, body: dict[str, Any], endpoint: Endpoint = CHAT, user_header: bytes | None = None
    ) -> dict[str, Any]:
        reply = await self.gateway.handle(endpoint, CALLER, orjson.dumps(body), user_header=user_header)
        assert isinstance(reply, WholeReply)
        return dict(orjson.loads(reply.body))

    async def refused(self, body: dict[str, Any], endpoint: Endpoint = CHAT) -> GatewayError:
        with pytest.raises(GatewayError) as refused:
            await self.gateway.handle(endpoint, CALLER, orjson.dumps(body))
        return refused.value

    def traces(self) -> list[SimpleNamespace]:
        return [SimpleNamespace(**row) for row in self.writer.pending()]


@pytest.fixture
def harness(db: Engine) -> Harness:
    return Harness(db)


def record(model: str = "prompt:p") -> TraceRecord:
    return TraceRecord(
        id="t", started_at=0.0, endpoint="chat.completions", requested_model=model, stream=False
    )


# --- the step alone ----------------------------------------------------------------------------------


async def test_the_step_renders_and_builds_the_upstream_request(harness: Harness) -> None:
    harness.prompts.create_version("p", chat_prompt(temperature=0.2, max_tokens=30), labels=["production"])
    trace = record()
    payload = {
        "model": "prompt:p",
        "prompt_variables": {"question": "why?", "tone": "brief"},
        "messages": [{"role": "user", "content": "and then?"}],
        "max_tokens": 5,
        "user": "u1",
    }
    upstream = await harness.step.apply(CHAT, payload, trace)
    assert upstream == {
        "model": "echo",
        "messages": [
            {"role": "system", "content": "You answer briefly."},
            {"role": "user", "content": "Question: why?"},
            {"role": "user", "content": "and then?"},
        ],
        "temperature": 0.2,  # the prompt's default
        "max_tokens": 5,  # the request's own value wins
        "user": "u1",
    }
    assert (trace.prompt_name, trace.prompt_version, trace.prompt_label) == ("p", 1, "production")
    assert (trace.experiment, trace.variant) == (None, None)
    assert trace.attributes["prompt_variables"] == {"question": "why?", "tone": "brief"}
    assert payload["model"] == "prompt:p"  # the request itself is not changed
    assert "prompt_variables" in payload


async def test_text_prompts_on_both_endpoints(harness: Harness) -> None:
    harness.prompts.create_version("s", text_prompt())
    completion = await harness.step.apply(
        COMPLETIONS, {"model": "prompt:s", "prompt": " The text.", "prompt_variables": {"words": 5}}, record()
    )
    assert completion == {"model": "echo", "prompt": "Summarise in 5 words: The text.", "max_tokens": 50}
    chat = await harness.step.apply(CHAT, {"model": "prompt:s#1"}, record())
    assert chat["messages"] == [{"role": "user", "content": "Summarise in 10 words:"}]


@pytest.mark.parametrize(
    ("body", "endpoint", "status", "param", "message"),
    [
        ({"model": "prompt:missing"}, CHAT, 404, "model", "'missing' not found"),
        ({"model": "prompt:p@nolabel"}, CHAT, 404, "model", "no label 'nolabel'"),
        ({"model": "prompt:p#9"}, CHAT, 404, "model", "no version 9"),
        ({"model": "prompt:bad name"}, CHAT, 400, "model", "not a prompt reference"),
        ({"model": "prompt:p"}, CHAT, 400, "prompt_variables", "missing required variable 'question'"),
        (
            {"model": "prompt:p", "prompt_variables": {"question": "q", "mood": "x"}},
            CHAT,
            400,
            "prompt_variables",
            "variable 'mood' is not declared",
        ),
        (
            {"model": "prompt:p", "prompt_variables": ["q"]},
            CHAT,
            400,
            "prompt_variables",
            "must be an object",
        ),
        (
            {"model": "prompt:p", "prompt_variables": {"question": "q"}, "messages": "hi"},
            CHAT,
            400,
            "messages",
            "",
        ),
        ({"model": "prompt:p", "input": "x"}, EMBEDDINGS, 400, "model", "embeddings cannot use a prompt"),
        (
            {"model": "prompt:p", "prompt_variables": {"question": "q"}},
            COMPLETIONS,
            400,
            "model",
            "chat prompt",
        ),
        ({"model": "prompt:s", "prompt": ["a", "b"]}, COMPLETIONS, 400, "prompt", "must be a string"),
        ({"model": "prompt:nomodel"}, CHAT, 400, "model", "has no model"),
    ],
)
async def test_step_errors(
    harness: Harness, body: dict[str, Any], endpoint: Endpoint, status: int, param: str, message: str
) -> None:
    harness.prompts.create_version("p", chat_prompt())
    harness.prompts.create_version("s", text_prompt())
    harness.prompts.create_version("nomodel", PromptContent(kind="text", template="hello", model=None))
    with pytest.raises(GatewayError) as refused:
        await harness.step.apply(endpoint, body, record(body["model"]))
    assert (refused.value.status, refused.value.param) == (status, param)
    assert message in refused.value.message


async def test_a_render_error_names_the_template_line(harness: Harness) -> None:
    content = PromptContent(
        kind="text",
        template="first line\n{{ items | sum }}",
        variables={"items": VariableSpec(type="list")},
        model="echo",
    )
    harness.prompts.create_version("t", content)
    with pytest.raises(GatewayError) as refused:
        await harness.step.apply(
            CHAT, {"model": "prompt:t", "prompt_variables": {"items": ["a", 1]}}, record()
        )
    assert (refused.value.status, refused.value.code) == (400, "prompt_render_error")
    assert "prompt 't'" in refused.value.message
    assert "TypeError" in refused.value.message


# --- experiments on the request path -----------------------------------------------------------------


def three_versions(harness: Harness) -> None:
    for temperature in (0.1, 0.2, 0.3):
        harness.prompts.create_version("p", chat_prompt(temperature=temperature))
    harness.prompts.set_label("p", "production", 1)


async def test_experiment_assignment_is_sticky_per_user_and_follows_the_weights(harness: Harness) -> None:
    three_versions(harness)
    experiment = harness.experiments.create("t", "p", [("control", 1, 1), ("treatment", 3, 3)])
    body = {"model": "prompt:p", "prompt_variables": {"question": "q"}}
    seen: dict[str, tuple[str | None, int | None]] = {}
    for round_number in range(2):
        for n in range(1000):
            trace = record()
            upstream = await harness.step.apply(CHAT, {**body, "user": f"user-{n}"}, trace)
            assert trace.experiment == experiment.id
            assert upstream["temperature"] == {1: 0.1, 3: 0.3}[trace.prompt_version or 0]
            assert {"control": 1, "treatment": 3}[trace.variant or ""] == trace.prompt_version
            if round_number:
                assert seen[f"user-{n}"] == (trace.variant, trace.prompt_version)  # sticky
            seen[f"user-{n}"] = (trace.variant, trace.prompt_version)
    shares = Counter(variant for variant, _ in seen.values())
    assert abs(shares["treatment"] / 1000 - 0.75) < 0.05


async def test_experiment_by_header_and_explicit_versions(harness: Harness) -> None:
    three_versions(harness)
    harness.experiments.create("h", "p", [("a", 1, 1), ("b", 2, 1)], sticky_by="header")
    body = {"model": "prompt:p@production", "prompt_variables": {"question": "q"}, "user": "ignored"}
    by_header = {}
    for n in range(40):
        trace = record()
        await harness.step.apply(CHAT, body, trace, f"subject-{n}".encode())
        by_header[n] = trace.variant
        again = record()
        await harness.step.apply(CHAT, {**body, "user": "someone else"}, again, f"subject-{n}".encode())
        assert again.variant == trace.variant
    assert set(by_header.values()) == {"a", "b"}
    pinned = record("prompt:p#3")
    upstream = await harness.step.apply(CHAT, {**body, "model": "prompt:p#3"}, pinned, b"subject-1")
    assert (pinned.prompt_version, pinned.experiment, pinned.variant, pinned.prompt_label) == (
        3,
        None,
        None,
        None,
    )
    assert upstream["temperature"] == 0.3


# --- inside Gateway.handle -----------------------------------------------------------------------------


async def test_gateway_answers_a_prompt_request_and_traces_it(harness: Harness) -> None:
    harness.prompts.create_version("p", chat_prompt(max_tokens=3), labels=["production"])
    answer = await harness.handle(
        {"model": "prompt:p", "prompt_variables": {"question": "one two three four"}}
    )
    assert answer["choices"][0]["message"]["content"] == "Question: one two"  # echo, max_tokens 3 words
    [trace] = harness.traces()
    assert (trace.requested_model, trace.provider, trace.status_code) == ("prompt:p", "echo", 200)
    assert (trace.prompt_name, trace.prompt_version, trace.prompt_label) == ("p", 1, "production")
    assert trace.request["model"] == "echo"
    assert "prompt_variables" not in trace.request
    assert trace.attributes["prompt_variables"] == {"question": "one two three four"}


async def test_gateway_errors_are_traced(harness: Harness) -> None:
    harness.prompts.create_version("p", chat_prompt(model="gpt-nowhere"))
    unknown = await harness.refused({"model": "prompt:nothing"})
    assert (unknown.status, unknown.code) == (404, "prompt_not_found")
    no_model = await harness.refused({"model": "prompt:p", "prompt_variables": {"question": "q"}})
    assert (no_model.status, no_model.code) == (404, "model_not_found")
    assert "'gpt-nowhere' (the model of 'prompt:p')" in no_model.message
    first, second = harness.traces()
    assert (first.requested_model, first.status_code, first.prompt_name) == ("prompt:nothing", 404, None)
    assert (second.status_code, second.prompt_name, second.prompt_version) == (404, "p", 1)
    assert harness.metrics.requests.value(("", "", "404")) == 2  # client text never becomes a label


async def test_the_response_cache_keys_on_the_rendered_request(harness: Harness) -> None:
    harness.prompts.create_version("p", chat_prompt(model="cached", temperature=0))

    async def ask(question: str) -> str | None:
        reply = await harness.gateway.handle(
            CHAT,
            CALLER,
            orjson.dumps({"model": "prompt:p", "prompt_variables": {"question": question}}),
        )
        assert isinstance(reply, WholeReply)
        return dict(reply.headers).get(b"x-llmops-cache", b"").decode() or None

    assert await ask("a") == "miss"
    assert await ask("b") == "miss"  # other variables: another rendered request
    assert await ask("a") == "hit"
    harness.prompts.create_version("p", chat_prompt(model="cached", temperature=0, max_tokens=9))
    await harness.resolver.refresh()
    assert await ask("a") == "miss"  # a new version renders another request


async def test_without_the_step_a_prompt_name_is_an_unknown_model(harness: Harness) -> None:
    harness.prompts.create_version("p", chat_prompt())
    plain = Gateway(harness.gateway.catalog, harness.writer, harness.metrics, record_content=True)
    with pytest.raises(GatewayError) as refused:
        await plain.handle(CHAT, CALLER, orjson.dumps({"model": "prompt:p", "messages": []}))
    assert refused.value.code == "model_not_found"


async def test_no_database_query_per_request_once_warm(harness: Harness) -> None:
    """N prompt requests through Gateway.handle run no SQL statement once the first has resolved.

    Counted: every statement the engine runs, from any thread, while the requests go through. The
    trace writer is not started (its rows stay queued: ``writer.pending()``) and the resolver's poll
    task is not running, so nothing else uses the engine meanwhile.
    """
    three_versions(harness)
    harness.experiments.create("t", "p", [("a", 1, 1), ("b", 2, 1)])
    harness.prompts.create_version("s", text_prompt())
    references = ["prompt:p", "prompt:p@production", "prompt:p#3"]
    bodies = [{"model": ref, "prompt_variables": {"question": "q"}} for ref in references]
    for body in bodies:  # warm: one load per reference
        await harness.handle(body)
    await harness.handle({"model": "prompt:s", "prompt": "x"}, COMPLETIONS)
    await harness.refused({"model": "prompt:missing"})
    assert harness.resolver.loads == 5
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(harness.engine, "before_cursor_execute", seen)
    try:
        for n in range(300):
            await harness.handle({**bodies[n % 3], "user": f"user-{n}"})
        for _ in range(50):
            await harness.handle({"model": "prompt:s", "prompt": "x"}, COMPLETIONS)
        for _ in range(20):  # unknown prompts are remembered too
            await harness.refused({"model": "prompt:missing"})
    finally:
        event.remove(harness.engine, "before_cursor_execute", seen)
    assert statements == []
    assert harness.resolver.loads == 5
    traces = harness.traces()[5:]
    assert len(traces) == 300 + 50 + 20
    assert {t.variant for t in traces[:300] if t.requested_model != "prompt:p#3"} == {"a", "b"}
    assert {t.prompt_version for t in traces[:300] if t.requested_model == "prompt:p#3"} == {3}

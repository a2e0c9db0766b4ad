"""The playground in-process: a matrix of models x parameter sets through the gateway, each cell traced."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops.prompts.playground import (
    MAX_CELLS,
    PlaygroundError,
    from_messages,
    from_prompt,
    plan,
    run_playground,
)
from llmops.prompts.services import PromptNotFound
from llmops.prompts.spec import MessageTemplate, PromptContent, VariableSpec
from llmops.providers.base import Payload, ProviderResult
from llmops.providers.echo import EchoProvider
from llmops.providers.registry import ProviderRegistry
from llmops.services import Services, build_services, open_store
from llmops.settings import Settings, load_settings


class GaugedEcho(EchoProvider):
    """Echo that takes a moment and remembers how many calls it had at once."""

    name = "gauged"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.now = self.most = 0

    async def chat(self, payload: Payload) -> ProviderResult:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(0.02)
            return await super().chat(payload)
        finally:
            self.now -= 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


MODELS: list[dict[str, Any]] = [
    {"name": "echo", "provider": "echo"},
    {"name": "priced", "provider": "echo", "input_price_per_1m": 1.0, "output_price_per_1m": 2.0},
    {"name": "gauged", "provider": "gauged"},
    {"name": "cached", "provider": "echo", "cache": {"mode": "exact"}, "input_price_per_1m": 1.0},
    {
        "name": "down",  # nothing listens there: every call fails
        "provider": "openai",
        "base_url": f"http://127.0.0.1:{_closed_port()}/v1",
        "retry": {"max_attempts": 1},
    },
]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    config = tmp_path / "llmops.yaml"
    config.write_text(yaml.safe_dump({"models": MODELS}))
    return load_settings(config, database_url=database_url, home=tmp_path / "home")


@asynccontextmanager
async def running(settings: Settings, *models: str) -> AsyncIterator[Services]:
    registry = ProviderRegistry()
    registry.register("gauged", GaugedEcho)
    services = build_services(settings, open_allowed=True, registry=registry)
    await services.start_in_process(models)
    try:
        yield services
    finally:
        await services.stop()  # drains the trace writer


def _add_prompts(settings: Settings) -> None:
    store = open_store(settings)
    try:
        chat = PromptContent(
            kind="chat",
            messages=(
                MessageTemplate(role="system", content="Sell {{ product }}."),
                MessageTemplate(role="user", content="Why buy {{ product }} x{{ count }}?"),
            ),
            variables={
                "product": VariableSpec(required=True),
                "count": VariableSpec(type="integer", default=1),
            },
            model="echo",
            parameters={"max_tokens": 50, "temperature": 0.5},
        )
        store.prompts.create_version("pitch", chat, labels=["production"])
        text = PromptContent(kind="text", template="Name: {{ who }}", variables={"who": VariableSpec()})
        store.prompts.create_version("greet", text)
    finally:
        store.close()


def _traces(settings: Settings, ids: list[str]) -> list[dict[str, Any]]:
    store = open_store(settings)
    try:
        return [store.traces.get(trace_id) for trace_id in ids]
    finally:
        store.close()


async def test_models_by_temperatures_each_cell_traced(settings: Settings) -> None:
    _add_prompts(settings)
    async with running(settings, "echo", "priced") as services:
        conversation = from_prompt(services.store.prompts, "pitch", {"product": "tea", "count": 2})
        run = await run_playground(
            services.gateway,
            conversation,
            ["echo", "priced"],
            [{"temperature": 0}, {"temperature": 0.8}],
        )
    cells = run.cells
    assert [(cell.model, cell.parameters["temperature"]) for cell in cells] == [
        ("echo", 0),
        ("echo", 0.8),
        ("priced", 0),
        ("priced", 0.8),
    ]
    for cell in cells:
        assert (cell.status, cell.status_code, cell.error) == ("ok", 200, None)
        assert cell.text == "Why buy tea x2?"
        assert cell.finish_reason == "stop"
        assert cell.parameters["max_tokens"] == 50  # the prompt's defaults under each set
        assert cell.prompt_tokens
        assert cell.completion_tokens
        assert cell.latency_ms > 0
    assert cells[0].cost == 0
    assert cells[2].cost == pytest.approx(
        (cells[2].prompt_tokens or 0) / 1e6 + (cells[2].completion_tokens or 0) * 2 / 1e6
    )
    assert len({cell.trace_id for cell in cells}) == 4
    as_dict = run.as_dict()
    assert as_dict["prompt"] == {"name": "pitch", "version": 1, "label": "production"}
    assert as_dict["messages"][1] == {"role": "user", "content": "Why buy tea x2?"}
    assert as_dict["endpoint"] == "chat.completions"

    traces = _traces(settings, [cell.trace_id for cell in cells])
    for cell, trace in zip(cells, traces, strict=True):
        assert trace["attributes"]["playground"] == run.id
        assert (trace["prompt_name"], trace["prompt_version"], trace["prompt_label"]) == (
            "pitch",
            1,
            "production",
        )
        assert trace["requested_model"] == cell.model
        assert trace["request"]["temperature"] == cell.parameters["temperature"]
        assert trace["response_text"] == cell.text
        assert trace["cost"] == pytest.approx(cell.cost)


async def test_a_failing_model_fails_only_its_cell(settings: Settings) -> None:
    async with running(settings, "echo", "down", "missing") as services:
        conversation = from_messages([{"role": "user", "content": "hello there"}])
        run = await run_playground(services.gateway, conversation, ["echo", "down", "missing"])
    echo, down, missing = run.cells
    assert (echo.status, echo.text) == ("ok", "hello there")
    assert (down.status, down.text, down.cost) == ("error", None, None)
    assert down.status_code >= 500
    assert down.error
    assert (missing.status, missing.status_code) == ("error", 404)
    assert missing.error == "the model 'missing' does not exist"
    traces = _traces(settings, [cell.trace_id for cell in run.cells])  # failed cells are traced too
    assert [trace["status_code"] for trace in traces] == [200, down.status_code, 404]
    assert all(trace["attributes"]["playground"] == run.id for trace in traces)
    assert all(trace["prompt_name"] is None for trace in traces)


async def test_concurrency_is_bounded(settings: Settings) -> None:
    async with running(settings, "gauged") as services:
        conversation = from_messages([{"role": "user", "content": "count"}])
        run = await run_playground(
            services.gateway,
            conversation,
            ["gauged"],
            [{"seed": seed} for seed in range(8)],
            max_concurrency=3,
        )
        provider = services.catalog.get("gauged").deployments[0].provider  # type: ignore[union-attr]
        assert isinstance(provider, GaugedEcho)
        assert provider.most == 3
    assert [cell.parameters["seed"] for cell in run.cells] == list(range(8))
    assert all(cell.status == "ok" for cell in run.cells)


async def test_a_text_prompt_goes_to_the_completions_endpoint(settings: Settings) -> None:
    _add_prompts(settings)
    async with running(settings, "echo") as services:
        conversation = from_prompt(services.store.prompts, "greet#1", {"who": "Ada"})
        run = await run_playground(services.gateway, conversation, ["echo"])
    [cell] = run.cells
    assert (cell.status, cell.text) == ("ok", "Name: Ada")
    assert run.as_dict()["text"] == "Name: Ada"
    assert run.as_dict()["prompt"] == {"name": "greet", "version": 1, "label": None}
    [trace] = _traces(settings, [cell.trace_id])
    assert trace["endpoint"] == "completions"


async def test_the_cache_answers_only_when_asked(settings: Settings) -> None:
    async with running(settings, "cached") as services:
        conversation = from_messages([{"role": "user", "content": "same question"}])
        sets = [{"temperature": 0}]
        first = await run_playground(services.gateway, conversation, ["cached"], sets)
        again = await run_playground(services.gateway, conversation, ["cached"], sets)
        cached = await run_playground(services.gateway, conversation, ["cached"], sets, use_cache=True)
    assert first.cells[0].cost
    assert again.cells[0].cost
    assert cached.cells[0].cost == 0  # answered from the cache the first runs filled
    traces = _traces(settings, [run.cells[0].trace_id for run in (first, again, cached)])
    assert [trace["cache_status"] for trace in traces] == ["miss", "miss", "hit"]


def test_a_run_is_checked_before_it_starts(settings: Settings) -> None:
    _add_prompts(settings)
    messages = from_messages([{"role": "user", "content": "hi"}])
    with pytest.raises(PlaygroundError, match="no model"):
        plan(messages, [], [])
    with pytest.raises(
        PlaygroundError, match=f"5 models x 7 parameter sets is 35 cells; at most {MAX_CELLS}"
    ):
        plan(messages, ["a", "b", "c", "d", "e"], [{"seed": n} for n in range(7)])
    with pytest.raises(PlaygroundError, match="parameters cannot set 'stream'"):
        plan(messages, ["echo"], [{"stream": True}])
    with pytest.raises(PlaygroundError, match="at least one message"):
        from_messages([])
    assert plan(messages, ["echo", "echo", "priced"], []) == [("echo", {}), ("priced", {})]
    store = open_store(settings)
    try:
        conversation = from_prompt(store.prompts, "pitch", {"product": "tea"})
        assert plan(conversation, [], [{"temperature": 1}]) == [
            ("echo", {"max_tokens": 50, "temperature": 1})
        ]
        with pytest.raises(PromptNotFound):
            from_prompt(store.prompts, "pitch@staging", {"product": "tea"})
        with pytest.raises(ValueError, match="missing required variable 'product'"):
            from_prompt(store.prompts, "pitch", {})
    finally:
        store.close()


async def test_max_concurrency_is_bounded(settings: Settings) -> None:
    async with running(settings, "echo") as services:
        with pytest.raises(PlaygroundError, match="max_concurrency must be between 1 and 16"):
            await run_playground(
                services.gateway,
                from_messages([{"role": "user", "content": "x"}]),
                ["echo"],
                max_concurrency=0,
            )

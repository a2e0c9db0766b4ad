"""The prompt resolver on SQLite and Postgres: what references mean, what it keeps, when it forgets.

SQL statements are counted with a ``before_cursor_execute`` listener on the engine: every statement
the resolver's loads or polls run, from any thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event

from llmops.prompts.experiments import ExperimentService
from llmops.prompts.repository import PromptRepository
from llmops.prompts.resolver import MAX_ENTRIES, PromptResolver
from llmops.prompts.services import InvalidPrompt, PromptNotFound, PromptService
from llmops.prompts.spec import MessageTemplate, PromptContent, VariableSpec


class StatementCounter:
    """Counts the SQL statements an engine runs (any thread); ``gate`` can hold them back."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self._engine = engine
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: Any) -> None:
        self.count += 1
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._seen)


@pytest.fixture
def prompts(db: Engine) -> PromptService:
    return PromptService(PromptRepository(db))


@pytest.fixture
def experiments(db: Engine, prompts: PromptService) -> ExperimentService:
    return ExperimentService(db, prompts, PromptRepository(db))


@pytest.fixture
def resolver(prompts: PromptService, experiments: ExperimentService) -> PromptResolver:
    return PromptResolver(prompts, experiments, refresh_seconds=0.05)


@pytest.fixture
def statements(db: Engine) -> Iterator[StatementCounter]:
    counter = StatementCounter(db)
    yield counter
    counter.close()


def content(system: str = "You are {{ tone }}.", **parameters: Any) -> PromptContent:
    return PromptContent(
        kind="chat",
        messages=(
            MessageTemplate(role="system", content=system),
            MessageTemplate(role="user", content="{{ q }}"),
        ),
        variables={"tone": VariableSpec(default="kind"), "q": VariableSpec(required=True)},
        model="echo",
        parameters=dict(parameters),
    )


def three_versions(prompts: PromptService) -> None:
    for temperature in (0.1, 0.2, 0.3):
        prompts.create_version("p", content(temperature=temperature))


async def test_references_resolve_to_versions_and_labels(
    prompts: PromptService, resolver: PromptResolver
) -> None:
    three_versions(prompts)
    bare = await resolver.resolve("p")
    assert (bare.name, bare.label, bare.version and bare.version.number) == ("p", None, 3)  # latest
    prompts.set_label("p", "production", 1)
    prompts.set_label("p", "staging", 2)
    resolver.invalidate()
    bare = await resolver.resolve("p")
    assert (bare.label, bare.version and bare.version.number) == ("production", 1)
    staging = await resolver.resolve("p@staging")
    assert (staging.label, staging.version and staging.version.number) == ("staging", 2)
    pinned = await resolver.resolve("p#3")
    assert (pinned.label, pinned.version and pinned.version.number) == (None, 3)
    assert pinned.version is not None
    assert (pinned.version.model, pinned.version.parameters) == ("echo", {"temperature": 0.3})
    rendered = pinned.version.render({"q": "hi"})
    assert rendered.messages == [
        {"role": "system", "content": "You are kind."},
        {"role": "user", "content": "hi"},
    ]


async def test_cached_references_read_no_database(
    prompts: PromptService, resolver: PromptResolver, statements: StatementCounter
) -> None:
    three_versions(prompts)
    prompts.set_label("p", "production", 2)
    await resolver.resolve("p@production")
    assert resolver.loads == 1
    before = statements.count
    for _ in range(200):
        found = resolver.cached("p@production")
        assert found is not None
        assert found.version is not None
        assert found.version.number == 2
        await resolver.resolve("p@production")
    assert statements.count == before
    assert resolver.loads == 1


async def test_unknown_references_are_remembered_until_a_change(
    prompts: PromptService, resolver: PromptResolver, statements: StatementCounter
) -> None:
    await resolver.refresh()
    with pytest.raises(PromptNotFound, match="'p' not found"):
        await resolver.resolve("p")
    before = statements.count
    for _ in range(50):
        with pytest.raises(PromptNotFound):
            resolver.cached("p")
    assert statements.count == before
    with pytest.raises(InvalidPrompt, match="not a prompt reference"):
        await resolver.resolve("bad name!")
    prompts.create_version("p", content())
    with pytest.raises(PromptNotFound):  # not seen yet: no poll since
        await resolver.resolve("p")
    assert await resolver.refresh() is True
    assert (await resolver.resolve("p")).version is not None


async def test_a_moved_label_is_served_after_the_next_poll(
    prompts: PromptService, resolver: PromptResolver, statements: StatementCounter
) -> None:
    three_versions(prompts)
    prompts.set_label("p", "production", 1)
    await resolver.refresh()
    assert (await resolver.resolve("p@production")).version.number == 1  # type: ignore[union-attr]
    before = statements.count
    assert await resolver.refresh() is False  # nothing changed: one query, and the cache stays
    assert statements.count == before + 1
    assert resolver.cached("p@production") is not None
    prompts.set_label("p", "production", 3)
    assert resolver.cached("p@production").version.number == 1  # type: ignore[union-attr]
    assert await resolver.refresh() is True
    assert resolver.cached("p@production") is None
    assert (await resolver.resolve("p@production")).version.number == 3  # type: ignore[union-attr]


async def test_the_poll_task_invalidates_on_its_own(prompts: PromptService, resolver: PromptResolver) -> None:
    three_versions(prompts)
    prompts.set_label("p", "production", 1)
    await resolver.start()
    try:
        assert (await resolver.resolve("p")).version.number == 1  # type: ignore[union-attr]
        prompts.set_label("p", "production", 2)
        for _ in range(200):  # refresh_seconds is 0.05
            version = (await resolver.resolve("p")).version
            if version is not None and version.number == 2:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the moved label was not seen within 4 s")
    finally:
        await resolver.stop()


async def test_concurrent_misses_share_one_load(prompts: PromptService, resolver: PromptResolver) -> None:
    three_versions(prompts)
    found = await asyncio.gather(*(resolver.resolve("p#2") for _ in range(20)))
    assert {item.version.number for item in found if item.version} == {2}
    assert resolver.loads == 1


async def test_a_load_under_way_when_the_cache_drops_is_not_kept(
    prompts: PromptService, resolver: PromptResolver, statements: StatementCounter
) -> None:
    three_versions(prompts)
    statements.gate = threading.Event()
    statements.entered.clear()
    waiting = asyncio.ensure_future(resolver.resolve("p#1"))
    assert await asyncio.to_thread(statements.entered.wait, 10)  # the load is inside its first query
    resolver.invalidate()  # a change was seen meanwhile
    statements.gate.set()
    assert (await waiting).version.number == 1  # type: ignore[union-attr]  # its caller still gets it
    assert resolver.cached("p#1") is None  # but it is not kept
    statements.gate = None
    await resolver.resolve("p#1")
    assert resolver.cached("p#1") is not None


async def test_experiments_are_loaded_with_their_versions(
    prompts: PromptService, experiments: ExperimentService, resolver: PromptResolver
) -> None:
    three_versions(prompts)
    prompts.set_label("p", "production", 1)
    experiment = experiments.create("t", "p", [("a", 1, 1), ("b", 3, 1)])
    for reference in ("p", "p@production"):
        running = (await resolver.resolve(reference)).experiment
        assert running is not None
        assert running.id == experiment.id
        assert sorted(running.versions) == [1, 3]
        assert running.versions[3].parameters == {"temperature": 0.3}
    assert (await resolver.resolve("p#2")).experiment is None  # an explicit version never takes part
    prompts.set_label("p", "other", 2)
    await resolver.refresh()
    assert (await resolver.resolve("p@other")).experiment is None  # another label: not in it
    experiments.stop(experiment.id)
    assert await resolver.refresh() is True
    assert (await resolver.resolve("p")).experiment is None


async def test_an_experiment_serves_a_label_that_points_nowhere(
    prompts: PromptService, experiments: ExperimentService, resolver: PromptResolver
) -> None:
    three_versions(prompts)
    experiments.create("canary", "p", [("old", 1, 1), ("new", 2, 1)], label="canary")
    resolution = await resolver.resolve("p@canary")
    assert (resolution.label, resolution.version) == ("canary", None)
    assert resolution.experiment is not None
    with pytest.raises(PromptNotFound, match="no label 'staging'"):
        await resolver.resolve("p@staging")


async def test_an_experiment_on_production_takes_a_bare_name_without_the_label(
    prompts: PromptService, experiments: ExperimentService, resolver: PromptResolver
) -> None:
    three_versions(prompts)  # no production label: a bare name is the latest version...
    experiments.create("t", "p", [("a", 1, 1), ("b", 2, 1)])
    resolution = await resolver.resolve("p")
    assert resolution.label == "production"  # ...but the experiment on production takes it
    assert resolution.experiment is not None


async def test_the_cache_is_bounded(prompts: PromptService, resolver: PromptResolver) -> None:
    prompts.create_version("p", content())
    first = await resolver.resolve("p#1")
    for number in range(MAX_ENTRIES - 1):  # as if clients had named that many references
        resolver._entries[f"p#{number + 2}"] = first
    await resolver.resolve("p")  # one more: the cache starts over rather than grow
    assert list(resolver._entries) == ["p"]

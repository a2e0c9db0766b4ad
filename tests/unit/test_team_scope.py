"""Team scopes in the services, on SQLite and Postgres: what a team's key may see and change.

Two teams (a and b) each own a key, a trace, a prompt, a dataset, an evaluation run and queues; a key of
no team and anonymous traffic own the rest. Each service, as one team sees it, lists its team's things
only and treats another team's as missing; the plain service (the CLI, admins) sees everything.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from llmops.annotation.models import QueueNotFound
from llmops.annotation.schema import LabelSchema
from llmops.annotation.service import AnnotationService
from llmops.datasets.service import DatasetNotFound, DatasetService
from llmops.datasets.traces_source import TraceSelection
from llmops.evals.repository import RunConflict, RunNotFound
from llmops.evals.scorers.registry import ScorerRegistry, ScorerResources, scorer
from llmops.evals.service import EvalService, RunRequest
from llmops.evals.targets import Target
from llmops.prompts.experiments import ExperimentService
from llmops.prompts.repository import PromptRepository
from llmops.prompts.services import PromptNotFound, PromptService, Reference
from llmops.prompts.spec import PromptContent, VariableSpec
from llmops.store import ApiKeyRow, KeyRepository, TraceRepository
from llmops.store.scope import ALL_TEAMS
from llmops.tracing.record import TraceRecord
from llmops.tracing.service import FeedbackInput, TraceNotFound, TraceService, UnknownKey

A, B = "team_" + "a" * 32, "team_" + "b" * 32
KEY_A, KEY_B, KEY_NONE = ("key_" + c * 32 for c in "abn")
BASE = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
# trace number -> the key that made it (None: no key; an id of no stored key: an orphan)
TRACES = {1: KEY_A, 2: KEY_B, 3: KEY_NONE, 4: None, 5: "key_" + "z" * 32, 6: KEY_A}
VERDICT = LabelSchema(categories=("good", "bad"))


def _trace_id(n: int) -> str:
    return f"{n:032x}"


def _trace(n: int, key_id: str | None) -> dict[str, Any]:
    record = TraceRecord(
        id=_trace_id(n),
        started_at=(BASE + timedelta(minutes=n)).timestamp(),
        endpoint="chat.completions",
        requested_model="echo",
        stream=False,
        latency_ms=1.0,
    )
    record.api_key_id = key_id
    record.request = {"messages": [{"role": "user", "content": f"question {n}"}]}
    record.response_text = f"answer {n}"
    return record.to_row()


def _numbers(ids: list[str]) -> list[int]:
    return sorted(int(trace_id, 16) for trace_id in ids)


@pytest.fixture
def db_with_traces(db: Engine) -> Engine:
    keys = KeyRepository(db)
    for key_id, team in ((KEY_A, A), (KEY_B, B), (KEY_NONE, None)):
        row = ApiKeyRow(key_id, f"name-{key_id[4]}", "viewer", "sk-llmops-xx", BASE, None, team_id=team)
        keys.add(row, key_id[4:] * 2)
    TraceRepository(db).insert_many([_trace(n, key_id) for n, key_id in TRACES.items()])
    return db


def _content(text: str = "Answer {{ q }}") -> PromptContent:
    return PromptContent(kind="text", template=text, variables={"q": VariableSpec()}, model="echo")


def test_traces_belong_to_the_team_of_their_key(db_with_traces: Engine) -> None:
    traces = TraceService(TraceRepository(db_with_traces), KeyRepository(db_with_traces))

    def listed(team: Any) -> list[int]:
        return _numbers([item["id"] for item in traces.list(team=team).items])

    assert listed(A) == [1, 6]
    assert listed(B) == [2]
    assert listed(None) == [3, 4, 5]  # a key of no team, no key, a key the table does not hold
    assert listed(ALL_TEAMS) == listed(ALL_TEAMS) == [1, 2, 3, 4, 5, 6]
    assert _numbers([item["id"] for item in traces.list(team=A, key="name-a").items]) == [1, 6]
    assert traces.list(team=A, key=KEY_B).items == []
    with pytest.raises(UnknownKey):
        traces.list(team=A, key="name-b")  # another team's key is as unknown as a missing one
    assert traces.get(_trace_id(2), team=B)["api_key_id"] == KEY_B
    for team in (A, None):
        with pytest.raises(TraceNotFound):
            traces.get(_trace_id(2), team=team)
        with pytest.raises(TraceNotFound):
            traces.add_feedback(_trace_id(2), FeedbackInput(thumb="down"), team=team)
    traces.add_feedback(_trace_id(1), FeedbackInput(thumb="up"), team=A)
    assert [note["thumb"] for note in traces.get(_trace_id(1))["feedback"]] == ["up"]
    assert traces.get(_trace_id(2))["feedback"] == []


def test_prompts_of_another_team_are_not_found(db: Engine) -> None:
    registry = PromptService(PromptRepository(db))
    team_a, team_b, no_team = registry.for_team(A), registry.for_team(B), registry.for_team(None)
    team_a.create_version("pa", _content(), labels=["production"])
    team_a.create_version("pa", _content("Say {{ q }}"))
    team_b.create_version("pb", _content())
    registry.create_version("shared", _content())  # the CLI's (or an admin's): no team

    assert [p["name"] for p in team_a.list_prompts()] == ["pa"]
    assert [p["name"] for p in no_team.list_prompts()] == ["shared"]
    assert [p["name"] for p in registry.list_prompts()] == ["pa", "pb", "shared"]
    assert registry.prompt("pa")["team_id"] == A
    assert registry.prompt("shared")["team_id"] is None
    assert team_a.render("pa", {"q": "x"})[1].text == "Answer x"

    reads = [
        lambda: team_b.get("pa"),
        lambda: team_b.get(Reference("pa", version=1)),
        lambda: team_b.prompt("pa"),
        lambda: team_b.versions("pa"),
        lambda: team_b.labels("pa"),
        lambda: team_b.label("pa", "production"),
        lambda: team_b.history("pa"),
        lambda: team_b.render("pa", {"q": "x"}),
        lambda: team_b.diff("pa", 1, 2),
        lambda: no_team.get("pa"),
    ]
    writes = [
        lambda: team_b.set_label("pa", "production", 2),
        lambda: team_b.rollback("pa", "production"),
        lambda: team_b.remove_label("pa", "production"),
        lambda: team_b.create_version("pa", _content("Taken {{ q }}")),
        lambda: no_team.create_version("pb", _content()),
    ]
    for attempt in reads + writes:
        with pytest.raises(PromptNotFound):
            attempt()
    assert [v.number for v in registry.versions("pa")] == [1, 2]  # nothing written by b
    assert registry.label("pa", "production")["version"] == 1
    assert [v.number for v in registry.versions("pb")] == [1]


def test_experiments_follow_their_prompt(db: Engine) -> None:
    registry = PromptService(PromptRepository(db))
    registry.for_team(A).create_version("pa", _content())
    registry.for_team(A).create_version("pa", _content("Say {{ q }}"))
    experiments = ExperimentService(db, registry, PromptRepository(db))
    team_a, team_b = experiments.for_team(A), experiments.for_team(B)
    variants = [("one", 1, 1.0), ("two", 2, 1.0)]
    with pytest.raises(PromptNotFound):
        team_b.create("exp-b", "pa", variants)
    created = team_a.create("exp-a", "pa", variants)

    assert [e.name for e in team_a.find()] == [e.name for e in experiments.find()] == ["exp-a"]
    assert team_b.find() == []
    assert team_b.running() == []
    for attempt in (
        lambda: team_b.get("exp-a"),
        lambda: team_b.get(created.id),
        lambda: team_b.results("exp-a"),
        lambda: team_b.promote("exp-a", "two"),
        lambda: team_b.stop("exp-a"),
    ):
        with pytest.raises(PromptNotFound):
            attempt()
    assert team_a.get("exp-a").status == "running"


def test_datasets_of_another_team_are_not_found(db_with_traces: Engine) -> None:
    everything = DatasetService(db_with_traces)
    team_a, team_b = everything.for_team(A), everything.for_team(B)
    team_a.create_version("qa", [{"input": "a1"}], operation="import")
    team_b.create_version("qb", [{"input": "b1"}], operation="import")
    everything.create_version("shared", [{"input": "s1"}], operation="import")

    assert [d["name"] for d in team_a.list_datasets()] == ["qa"]
    assert [d["name"] for d in everything.for_team(None).list_datasets()] == ["shared"]
    assert [d["name"] for d in everything.list_datasets()] == ["qa", "qb", "shared"]
    assert everything.repository.get_dataset("qa")["team_id"] == A
    for attempt in (
        lambda: team_b.resolve("qa"),
        lambda: team_b.resolve("qa@1"),
        lambda: team_b.versions("qa"),
        lambda: team_b.check_writable("qa"),
        lambda: team_b.create_version("qa", [{"input": "b2"}], operation="import"),
    ):
        with pytest.raises(DatasetNotFound):
            attempt()
    assert [v.number for v in everything.versions("qa")] == [1]  # b wrote nothing into a's dataset
    team_b.check_writable("new-name")  # a free name is fine

    result, counts = team_a.import_traces("from-traces", TraceSelection(status=None))
    rows = list(everything.rows(result.version))
    assert sorted(row["metadata"]["trace_id"] for row in rows) == [_trace_id(1), _trace_id(6)]
    assert counts.matched == 2
    assert everything.repository.get_dataset("from-traces")["team_id"] == A
    result, _ = everything.for_team(None).import_traces("no-team", TraceSelection(status=None))
    assert result.version.row_count == 3  # traces 3, 4 and 5


@scorer("answered")
def answered(output: str | None) -> bool:
    return bool(output)


def _registry() -> ScorerRegistry:
    registry = ScorerRegistry(targets={}, load_plugins=False)
    registry.register("answered", answered)
    return registry


def test_eval_runs_of_another_team_are_not_found(db_with_traces: Engine) -> None:
    datasets = DatasetService(db_with_traces)
    datasets.for_team(A).create_version("qa", [{"input": "a", "answer": "A"}], operation="import")
    datasets.for_team(B).create_version("qb", [{"input": "b", "answer": "B"}], operation="import")
    evals = EvalService(db_with_traces, datasets)
    team_a, team_b = evals.for_team(A), evals.for_team(B)
    column = Target("column", column="answer")
    with pytest.raises(DatasetNotFound):
        team_a.create_run(RunRequest(column, ["answered"], dataset="qb"), _registry(), author=None)
    run_a = team_a.create_run(
        RunRequest(column, ["answered"], dataset="qa", name="ra"), _registry(), author=None
    )
    run_b = team_b.create_run(
        RunRequest(column, ["answered"], dataset="qb", name="rb"), _registry(), author=None
    )
    for run in (run_a, run_b):
        asyncio.run(evals.execute(run.id, _registry(), ScorerResources(), caller=None))
    team_b.label("rb", "production", None)

    assert [r.name for r in team_a.list_runs()] == ["ra"]
    assert sorted(r.name or "" for r in evals.list_runs()) == ["ra", "rb"]
    assert evals.get("ra").team_id == A
    for attempt in (
        lambda: team_a.get("rb"),
        lambda: team_a.get(run_b.id),
        lambda: team_a.get("production"),  # a label of b's run
        lambda: team_a.results("rb"),
        lambda: team_a.prepare_resume("rb"),
        lambda: team_a.label("rb", "mine", None),
        lambda: team_a.compare(["ra", "rb"]),
        lambda: team_a.gate("rb", "ra", [("answered", 0.1)]),
    ):
        with pytest.raises(RunNotFound):
            attempt()
    with pytest.raises(RunConflict, match="cannot see"):
        team_a.label("ra", "production", None)  # b's baseline stays b's
    assert evals.get("production").id == run_b.id
    assert team_a.compare(["ra", "ra"]).runs[0].id == run_a.id

    traced = team_a.create_run(
        RunRequest(Target("traces"), ["answered"], traces=TraceSelection(status=None)),
        _registry(),
        author=None,
    )
    assert traced.params["traces"]["team"] == A
    asyncio.run(evals.execute(traced.id, _registry(), ScorerResources(), caller=None))
    assert sorted(r["trace_id"] for r in evals.results(traced.id)) == [_trace_id(1), _trace_id(6)]


def test_annotation_queues_follow_their_source(db_with_traces: Engine) -> None:
    datasets = DatasetService(db_with_traces)
    datasets.for_team(A).create_version("qa", [{"input": "a"}], operation="import")
    datasets.for_team(B).create_version("qb", [{"input": "b"}], operation="import")
    everything = AnnotationService(db_with_traces, datasets)
    team_a, team_b, no_team = everything.for_team(A), everything.for_team(B), everything.for_team(None)
    with pytest.raises(DatasetNotFound):
        team_a.create_queue("steal", VERDICT, dataset="qb")
    team_a.create_queue("review-a", VERDICT, dataset="qa")
    team_b.create_queue("review-b", VERDICT, dataset="qb")
    traced = team_a.create_queue("traces-a", VERDICT, traces=TraceSelection(status=None))
    everything.create_queue("traces-all", VERDICT, traces=TraceSelection(status=None))
    assert traced.items == 2
    assert (traced.trace_filter or {})["team"] == A

    assert [q.name for q in team_a.list_queues()] == ["review-a", "traces-a"]
    assert [q.name for q in team_b.list_queues()] == ["review-b"]
    assert no_team.list_queues() == []  # a queue of everyone's traces is an admin's
    assert len(everything.list_queues()) == 4
    for attempt in (
        lambda: team_b.get_queue("review-a"),
        lambda: team_b.get_queue("traces-a"),
        lambda: no_team.get_queue("traces-all"),
        lambda: team_b.next_item("review-a", "bob"),
        lambda: team_b.status("review-a"),
        lambda: team_b.close("traces-a"),
        lambda: team_b.accept("review-a"),
    ):
        with pytest.raises(QueueNotFound):
            attempt()
    item = team_a.next_item("review-a", "ann")
    assert item is not None
    team_a.submit("review-a", item.id, "ann", label="good")
    with pytest.raises(DatasetNotFound):
        team_a.accept("review-a", into="qb")  # b's dataset
    accepted = team_a.accept("review-a", into="accepted-a")
    assert accepted.version.dataset == "accepted-a"
    assert datasets.repository.get_dataset("accepted-a")["team_id"] == A


def test_a_resolved_prompt_names_its_team_for_the_gateway(db: Engine) -> None:
    from llmops.prompts.resolver import PromptResolver

    registry = PromptService(PromptRepository(db))
    registry.for_team(A).create_version("pa", _content(), labels=["production"])
    registry.create_version("shared", _content())
    resolver = PromptResolver(
        registry, ExperimentService(db, registry, PromptRepository(db)), refresh_seconds=60
    )
    for reference in ("pa", "pa@production", "pa#1"):
        resolution = asyncio.run(resolver.resolve(reference))
        assert resolution.team_id == A
        assert resolution.visible_to(A)
        assert resolution.visible_to(ALL_TEAMS)
        assert not resolution.visible_to(B)
        assert not resolution.visible_to(None)
    shared = asyncio.run(resolver.resolve("shared"))
    assert shared.visible_to(None)
    assert not shared.visible_to(A)

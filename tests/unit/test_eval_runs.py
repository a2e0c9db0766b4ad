"""Evaluation runs on SQLite and Postgres: creating, executing with a model caller or stored outputs,
per-item results and summaries, failures kept per item, resume after a cancel, names and labels."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import Engine

from llmops.datasets.service import DatasetNotFound, DatasetService
from llmops.evals.calls import ChatRequest, ChatResult
from llmops.evals.repository import RunConflict, RunNotFound
from llmops.evals.scorers.base import Score
from llmops.evals.scorers.registry import ScorerRegistry, ScorerResources, UnknownScorer, scorer
from llmops.evals.service import EvalService, InvalidRun, RunRequest
from llmops.evals.targets import InvalidTarget, Target
from llmops.jobs.service import JobService
from llmops.progress import Cancelled

ROWS = [
    {"input": "alpha", "expected": "ALPHA", "answer": "ALPHA"},
    {"input": "beta", "expected": "BETA", "answer": "nope"},
    {"messages": [{"role": "user", "content": "gamma"}], "expected": "GAMMA", "answer": "GAMMA"},
    {"metadata": {"note": "nothing to send"}, "expected": "x"},
    {"input": "delta", "expected": "DELTA", "answer": "DELTA"},
]


@scorer("same")
def same(output: str | None, expected: Any) -> bool:
    return output == expected


@scorer("shout_length", higher_is_better=False)
def shout_length(output: str | None) -> float:
    return float(len(output or ""))


@scorer("broken")
def broken(output: str | None) -> float:
    raise RuntimeError("scorer bug")


@scorer("explained")
def explained(output: str | None) -> Score:
    return Score(1.0, reasoning="looks fine", raw={"judge": "raw answer"})


def _registry() -> ScorerRegistry:
    registry = ScorerRegistry(targets={}, load_plugins=False)
    for function in (same, shout_length, broken, explained):
        registry.register(function.__name__ if function is not same else "same", function)
    return registry


@pytest.fixture
def evals(db: Engine) -> EvalService:
    datasets = DatasetService(db)
    datasets.create_version("qa", ROWS, operation="import")
    return EvalService(db, datasets)


class Upper:
    """A model caller that shouts the last message back and counts its calls."""

    def __init__(self) -> None:
        self.calls: list[ChatRequest] = []

    async def __call__(self, request: ChatRequest) -> ChatResult:
        self.calls.append(request)
        text = str(request.messages[-1]["content"]).upper()
        return ChatResult(
            text, latency_ms=5.0, prompt_tokens=3, completion_tokens=1, cost=0.001, trace_id="t" * 32
        )


def _execute(evals: EvalService, reference: str, caller: Any, **kwargs: Any) -> Any:
    resources = ScorerResources(caller=caller)
    return asyncio.run(evals.execute(reference, _registry(), resources, caller=caller, **kwargs))


def test_a_model_run_stores_items_and_a_summary(evals: EvalService) -> None:
    request = RunRequest(
        Target("model", model="m", params={"temperature": 0}), ["same", "shout_length"], dataset="qa"
    )
    run = evals.create_run(request, _registry(), author="ann")
    assert run.status == "queued"
    assert run.dataset_ref == "qa@1"
    assert run.items_total == 5
    caller = Upper()
    finished = _execute(evals, run.id, caller)
    assert finished.status == "succeeded"
    assert len(caller.calls) == 4  # the row with nothing to send is an item error, not a call
    assert caller.calls[0].params == {"temperature": 0}
    results = evals.results(run.id)
    assert [result["output"] for result in results] == ["ALPHA", "BETA", "GAMMA", None, "DELTA"]
    assert results[3]["error"] == "the row has neither messages nor an input to send"
    assert results[0]["scores"] == {"same": 1.0, "shout_length": 5.0}
    assert results[0]["cost"] == 0.001
    summary = finished.summary
    assert summary["items"] == 5
    assert summary["errors"] == 1
    assert summary["metrics"]["same"]["mean"] == 1.0
    assert summary["metrics"]["same"]["n"] == 4
    assert summary["metrics"]["shout_length"]["higher_is_better"] is False
    assert summary["cost"] == pytest.approx(0.004)


def test_stored_outputs_are_scored_without_calls(evals: EvalService) -> None:
    run = evals.create_run(
        RunRequest(Target("column", column="answer"), ["same"], dataset="qa@1"), _registry(), author=None
    )
    finished = _execute(evals, run.id, None)
    results = evals.results(run.id)
    assert [result["scores"].get("same") for result in results] == [1.0, 0.0, 1.0, None, 1.0]
    assert results[3]["error"] == "the row has no field 'answer'"
    assert finished.summary["metrics"]["same"]["mean"] == 0.75


def test_a_failing_scorer_is_a_missing_score_and_details_are_kept(evals: EvalService) -> None:
    run = evals.create_run(
        RunRequest(Target("column", column="answer"), ["broken", "explained"], dataset="qa"),
        _registry(),
        author=None,
    )
    finished = _execute(evals, run.id, None)
    assert finished.status == "succeeded"
    first = evals.results(run.id, limit=1)[0]
    assert first["scores"] == {"broken": None, "explained": 1.0}
    assert first["details"]["explained"] == {"reasoning": "looks fine", "raw": {"judge": "raw answer"}}
    assert "scorer failed: RuntimeError: scorer bug" in first["details"]["broken"]["reasoning"]


def test_a_cancelled_run_resumes_without_redoing_finished_items(evals: EvalService) -> None:
    run = evals.create_run(
        RunRequest(Target("model", model="m"), ["same"], dataset="qa", concurrency=1),
        _registry(),
        author=None,
    )
    first = Upper()

    def stop_after_two(stage: str, done: int, total: int | None) -> None:
        if done >= 2:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        _execute(evals, run.id, first, progress=stop_after_two)
    stopped = evals.get(run.id)
    assert stopped.status == "cancelled"
    kept = {result["position"] for result in evals.results(run.id)}
    assert 2 <= len(kept) < 5
    jobs = JobService(evals.engine, owner="test")
    job_id = jobs.record("eval.run", None, None)
    evals.repository.update_run(run.id, status="running", job_id=job_id)
    with pytest.raises(RunConflict, match="running"):
        evals.prepare_resume(run.id)  # its job is alive (queued, fresh heartbeat)
    jobs.cancel(job_id)
    evals.prepare_resume(run.id)  # a run left "running" by a dead job resumes
    second = Upper()
    finished = _execute(evals, run.id, second)
    assert finished.status == "succeeded"
    assert len(evals.results(run.id)) == 5
    asked = {call.messages[-1]["content"] for call in second.calls}
    assert asked.isdisjoint({ROWS[position].get("input") for position in kept})
    with pytest.raises(RunConflict, match="finished"):
        evals.prepare_resume(run.id)


def test_names_labels_and_lookups(evals: EvalService) -> None:
    run = evals.create_run(
        RunRequest(Target("column", column="answer"), ["same"], dataset="qa", name="base"),
        _registry(),
        author=None,
    )
    with pytest.raises(RunConflict, match="only a finished run"):
        evals.label("base", "production", "ann")
    _execute(evals, "base", None)
    evals.label("base", "production", "ann")
    assert evals.get("production").id == run.id
    assert evals.get("base").labels == ("production",)
    with pytest.raises(RunConflict, match="exists already"):
        evals.create_run(
            RunRequest(Target("column", column="answer"), ["same"], dataset="qa", name="base"),
            _registry(),
            author=None,
        )
    with pytest.raises(RunNotFound):
        evals.get("nope")
    assert [found.id for found in evals.list_runs(dataset="qa")] == [run.id]


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        (RunRequest(Target("model", model="m"), [], dataset="qa"), InvalidRun),
        (RunRequest(Target("model", model="m"), ["same", "same"], dataset="qa"), InvalidRun),
        (RunRequest(Target("model", model="m"), ["no_such_metric"], dataset="qa"), UnknownScorer),
        (RunRequest(Target("model", model="m"), ["same"], dataset="missing"), DatasetNotFound),
        (RunRequest(Target("model", model="m"), ["same"], dataset=None), InvalidRun),
        (RunRequest(Target("model", model="m"), ["same"], dataset="qa", concurrency=0), InvalidRun),
        (RunRequest(Target("model", model="m"), ["same"], dataset="qa", thresholds={"other": 1}), InvalidRun),
        (RunRequest(Target("model", model="m"), ["same"], dataset="qa", name="bad name"), InvalidRun),
    ],
)
def test_bad_runs_are_refused_before_anything_runs(
    evals: EvalService, request_: RunRequest, error: type[Exception]
) -> None:
    with pytest.raises(error):
        evals.create_run(request_, _registry(), author=None)
    assert evals.list_runs() == []


@pytest.mark.parametrize(
    "arguments",
    [
        {"kind": "nope"},
        {"kind": "model"},
        {"kind": "prompt", "model": "bad ref!"},
        {"kind": "column"},
        {"kind": "model", "model": "m", "params": {"stream": True}},
    ],
)
def test_bad_targets(arguments: dict[str, Any]) -> None:
    with pytest.raises(InvalidTarget):
        Target(**arguments)


def test_a_prompt_target_sends_the_rows_variables() -> None:
    request = Target("prompt", model="support@staging", params={"seed": 1}).request(
        {"variables": {"question": "hi"}, "expected": "x"}
    )
    assert isinstance(request, ChatRequest)
    assert request.model == "prompt:support@staging"
    assert request.params == {"seed": 1, "prompt_variables": {"question": "hi"}}
    assert request.messages == []

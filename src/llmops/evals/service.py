"""Evaluation runs as the CLI and the admin API use them: create, execute, read, label, compare, gate.

A run is created (checked: its dataset version exists, its metrics are known, its target is sound)
before anything is evaluated; executing it is separate, so the CLI runs it in-process with a progress
bar and the admin API as a job, and an interrupted run is executed again to finish (resume). A name
works wherever a run id does, and so does a label (``llmops evals label RUN production``).

Errors: :class:`InvalidRun` (400), :class:`~llmops.evals.repository.RunNotFound` (404),
:class:`~llmops.evals.repository.RunConflict` (409).

A service made with :meth:`EvalService.for_team` sees one team's runs only (see
:mod:`llmops.store.scope`): another team's run is not found, a run it creates is the team's and may
only evaluate a dataset or traces the team sees. The plain service (the CLI, the job that executes a
run already checked) sees every run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from llmops.datasets.service import DatasetService
from llmops.datasets.traces_source import TraceCounts, TraceSelection, select_trace_rows
from llmops.errors import UserError
from llmops.evals.repository import EvalRepository, RunConflict, RunInfo
from llmops.evals.runner import EvalRunner, Item, NamedScorer
from llmops.evals.targets import Target
from llmops.ids import new_id
from llmops.progress import Cancelled, Progress, no_progress
from llmops.store.scope import ALL_TEAMS, TeamScope, owner_of_new

if TYPE_CHECKING:
    from llmops.evals.calls import ModelCaller
    from llmops.evals.compare import Comparison, RunScores
    from llmops.evals.gate import GateResult
    from llmops.evals.scorers.registry import ScorerRegistry, ScorerResources

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"
LABEL_PATTERN = r"^[A-Za-z][A-Za-z0-9._-]{0,99}$"
MAX_CONCURRENCY = 64
TRACES_TEAM = "team"  # in a traces run's params: whose traces it evaluates (absent: everyone's)
FINISHED = frozenset({"succeeded", "failed", "cancelled"})


class InvalidRun(UserError):
    """A run that cannot be created or executed as asked."""


@dataclass(frozen=True)
class RunRequest:
    """Everything a run is: what to evaluate, on what, with which metrics and settings."""

    target: Target
    metrics: Sequence[str]
    dataset: str | None = None  # NAME or NAME@VERSION; None only for a traces target
    traces: TraceSelection | None = None
    name: str | None = None
    concurrency: int = 8
    judge_model: str | None = None
    scorer_modules: Sequence[str] = ()
    thresholds: dict[str, float] = field(default_factory=dict)
    use_cache: bool = False
    limit: int | None = None  # only the first N items

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"concurrency": self.concurrency, "use_cache": self.use_cache}
        for key, value in (
            ("judge_model", self.judge_model),
            ("scorer_modules", list(self.scorer_modules) or None),
            ("thresholds", self.thresholds or None),
            ("limit", self.limit),
            ("traces", None if self.traces is None else self.traces.to_params()),
        ):
            if value is not None:
                params[key] = value
        return params


class EvalService:
    def __init__(self, engine: Engine, datasets: DatasetService, *, team: TeamScope = ALL_TEAMS) -> None:
        self.engine = engine
        self.datasets = datasets  # every dataset: a visible run reads the dataset it was created over
        self.repository = EvalRepository(engine)
        self.team = team

    def for_team(self, team: TeamScope) -> EvalService:
        """The runs a caller of ``team`` sees (:data:`ALL_TEAMS`: all of them)."""
        return self if team == self.team else EvalService(self.engine, self.datasets, team=team)

    # -- creating --------------------------------------------------------------------------------

    def create_run(self, request: RunRequest, registry: ScorerRegistry, *, author: str | None) -> RunInfo:
        """Check and record a run (status ``queued``); nothing is evaluated yet."""
        self._check(request, registry)
        dataset, version, total = None, None, None
        if request.dataset is not None:
            found = self.datasets.for_team(self.team).resolve(request.dataset)
            dataset, version, total = found.dataset, found.number, found.row_count
            if request.limit is not None:
                total = min(total, request.limit)
        params = request.params()
        if request.traces is not None and self.team != ALL_TEAMS:
            params["traces"][TRACES_TEAM] = self.team  # executed later: only this team's traces
        run_id = new_id()
        self.repository.create_run(
            {
                "id": run_id,
                "name": request.name,
                "dataset": dataset,
                "dataset_version": version,
                "target": request.target.to_dict(),
                "metrics": list(request.metrics),
                "params": params,
                "status": "queued",
                "items_total": total,
                "created_by": author,
                "created_at": datetime.now(UTC),
                "team_id": owner_of_new(self.team),
            }
        )
        return self.repository.get(run_id)

    def _run(self, reference: str) -> RunInfo:
        return self.repository.get(reference, self.team)

    def _check(self, request: RunRequest, registry: ScorerRegistry) -> None:
        if request.name is not None and not re.fullmatch(NAME_PATTERN, request.name):
            raise InvalidRun(f"invalid run name {request.name!r}", param="name")
        if not request.metrics:
            raise InvalidRun("name at least one metric (--metric rouge_l)", param="metrics")
        if len(set(request.metrics)) != len(request.metrics):
            raise InvalidRun("a metric is named twice", param="metrics")
        if not 1 <= request.concurrency <= MAX_CONCURRENCY:
            raise InvalidRun(f"concurrency must be between 1 and {MAX_CONCURRENCY}", param="concurrency")
        if (request.target.kind == "traces") != (request.dataset is None):
            raise InvalidRun(
                "a run evaluates a dataset version, or (a traces target) traces", param="dataset"
            )
        unknown = sorted(set(request.thresholds) - set(request.metrics))
        if unknown:
            raise InvalidRun(f"thresholds for metrics the run does not use: {', '.join(unknown)}")
        for module in request.scorer_modules:
            registry.load_module(module)
        from llmops.evals.scorers.registry import parse_spec

        for spec in request.metrics:
            registry.get(parse_spec(spec)[0])  # an unknown metric fails here, before anything runs

    # -- executing -------------------------------------------------------------------------------

    async def execute(
        self,
        reference: str,
        registry: ScorerRegistry,
        resources: ScorerResources,
        *,
        caller: ModelCaller | None,
        progress: Progress = no_progress,
    ) -> RunInfo:
        """Evaluate the run's items not stored yet, then store its summary; returns the run."""
        import asyncio

        run = self._run(reference)
        target = Target.from_dict(run.target)
        if target.calls_model and caller is None:
            raise InvalidRun("this run's target calls a model: it needs the gateway")
        for module in run.params.get("scorer_modules", []):
            registry.load_module(module)
        scorers = [NamedScorer(spec, registry.create(spec, resources)) for spec in run.metrics]
        now = datetime.now(UTC)
        self.repository.update_run(run.id, status="running", started_at=run.started_at or now, error=None)
        runner = EvalRunner(
            self.repository,
            target,
            scorers,
            caller=caller,
            concurrency=int(run.params.get("concurrency", 8)),
            progress=progress,
        )
        items, total = self._items(run)
        try:
            await runner.run(run.id, items, total)
        except (Cancelled, asyncio.CancelledError):
            self._finish(run.id, "cancelled", "cancelled on request", scorers)
            raise
        except Exception as exc:  # the run's boundary: record why it stopped, then let the caller see it
            self._finish(run.id, "failed", f"{type(exc).__name__}: {exc}", scorers)
            raise
        finally:
            for named in scorers:
                close = getattr(named.scorer, "close", None)
                if close is not None:
                    close()  # frees what a scorer loaded (the perplexity model)
        self._finish(run.id, "succeeded", None, scorers)
        return self.repository.get(run.id)

    def _items(self, run: RunInfo) -> tuple[Iterator[Item], int | None]:
        limit = run.params.get("limit")
        if run.dataset is None:
            params = _selection(run.params.get("traces") or {})
            team = params.pop(TRACES_TEAM, ALL_TEAMS)
            return _trace_items(self.engine, TraceSelection(**params), team), None
        version = self.datasets.resolve(f"{run.dataset}@{run.dataset_version}")
        rows = self.datasets.iter_rows(version, limit=limit)
        total = version.row_count if limit is None else min(limit, version.row_count)
        return (Item(position, row_hash, row) for position, row_hash, row in rows), total

    def _finish(self, run_id: str, status: str, error: str | None, scorers: list[NamedScorer]) -> None:
        from llmops.evals.summary import summarize

        run = self.repository.get(run_id)
        directions = {named.spec: _direction(named) for named in scorers}
        thresholds = {**{named.spec: getattr(named.scorer, "threshold", None) for named in scorers}}
        thresholds.update(run.params.get("thresholds") or {})
        summary = summarize(self.repository.iter_results(run_id), run.metrics, directions, thresholds)
        self.repository.update_run(
            run_id, status=status, error=error, summary=summary, finished_at=datetime.now(UTC)
        )

    def mark_interrupted(self, reference: str, error: str) -> None:
        run = self._run(reference)
        if run.status not in FINISHED:
            self.repository.update_run(run.id, status="failed", error=error, finished_at=datetime.now(UTC))

    def prepare_resume(self, reference: str) -> RunInfo:
        """A run to execute again: its finished items stay, the rest are evaluated."""
        run = self._run(reference)
        if run.status == "succeeded":
            raise RunConflict(f"run {run.name or run.id} has finished; nothing to resume", param="run")
        if run.status == "running" and self._job_alive(run.job_id):
            raise RunConflict(f"run {run.name or run.id} is running", param="run")
        self.repository.update_run(run.id, status="queued", finished_at=None)
        return self.repository.get(run.id)

    def _job_alive(self, job_id: str | None) -> bool:
        """Whether the job running a run still runs (a killed process leaves its run 'running')."""
        from llmops.jobs.service import job_state

        return job_id is not None and job_state(self.engine, job_id)[1]

    # -- comparing -------------------------------------------------------------------------------

    def run_scores(self, reference: str) -> RunScores:
        """What a comparison needs of a run: its scores per metric and item, outputs and inputs."""
        from llmops.evals.compare import MetricScores, RunScores

        run = self._run(reference)
        if run.status != "succeeded":
            raise InvalidRun(
                f"run {run.name or run.id} is {run.status}; only finished runs compare", param="run"
            )
        summary = (run.summary or {}).get("metrics", {})
        values: dict[str, dict[int, float | None]] = {metric: {} for metric in run.metrics}
        outputs: dict[int, str | None] = {}
        for result in self.repository.iter_results(run.id):
            outputs[result["position"]] = result["output"]
            for metric in run.metrics:
                values[metric][result["position"]] = (result["scores"] or {}).get(metric)
        metrics = {
            metric: MetricScores(
                metric,
                values[metric],
                higher_is_better=bool(summary.get(metric, {}).get("higher_is_better", True)),
                threshold=summary.get(metric, {}).get("threshold"),
            )
            for metric in run.metrics
        }
        return RunScores(
            run.id,
            run.name,
            run.dataset_ref or f"traces of run {run.id}",
            metrics,
            outputs,
            self._inputs(run),
        )

    def _inputs(self, run: RunInfo) -> dict[int, str | None]:
        if run.dataset is None:
            return {}
        version = self.datasets.resolve(f"{run.dataset}@{run.dataset_version}")
        return {position: _input_text(row) for position, _, row in self.datasets.iter_rows(version)}

    def compare(
        self,
        references: Sequence[str],
        *,
        metrics: Sequence[str] | None = None,
        alpha: float = 0.05,
        seed: int = 0,
    ) -> Comparison:
        """The first run against each of the others, per metric, paired on the items both scored."""
        from llmops.evals.compare import compare_runs

        if len(references) < 2:
            raise InvalidRun("compare at least two runs", param="runs")
        runs = [self.run_scores(reference) for reference in references]
        return compare_runs(runs[0], runs[1:], metrics or None, alpha=alpha, seed=seed)

    def gate(
        self,
        baseline: str,
        candidate: str,
        metrics: Sequence[tuple[str, float]],
        *,
        alpha: float = 0.05,
        seed: int = 0,
    ) -> GateResult:
        """Whether ``candidate`` regressed significantly beyond each metric's allowed drop."""
        from llmops.evals.gate import gate

        return gate(self.run_scores(baseline), self.run_scores(candidate), metrics, alpha, seed=seed)

    # -- reading ---------------------------------------------------------------------------------

    def get(self, reference: str) -> RunInfo:
        return self._run(reference)

    def list_runs(
        self, *, dataset: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[RunInfo]:
        return self.repository.list_runs(dataset=dataset, status=status, limit=limit, team=self.team)

    def results(self, reference: str, *, offset: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        run = self._run(reference)
        return [_result_out(row) for row in self.repository.iter_results(run.id, offset=offset, limit=limit)]

    def label(self, reference: str, label: str, author: str | None) -> RunInfo:
        if not re.fullmatch(LABEL_PATTERN, label):
            raise InvalidRun(
                f"invalid label {label!r}: a letter, then letters, digits, '.', '_', '-'", param="label"
            )
        run = self._run(reference)
        if run.status != "succeeded":
            raise RunConflict(f"only a finished run can be labelled; {run.name or run.id} is {run.status}")
        if not self.repository.set_label(label, run.id, author, self.team):
            raise RunConflict(f"label {label!r} is used by a run this key cannot see; choose another")
        return self.repository.get(run.id)


def _input_text(row: dict[str, Any]) -> str | None:
    if isinstance(row.get("input"), str):
        return str(row["input"])
    messages = row.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        content = messages[-1].get("content")
        return content if isinstance(content, str) else None
    variables = row.get("variables")
    return str(variables) if variables else None


def _direction(named: NamedScorer) -> bool:
    return bool(getattr(named.scorer, "higher_is_better", True))


def _result_out(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "created_at": row["created_at"].isoformat()}


def _selection(params: dict[str, Any]) -> dict[str, Any]:
    found = dict(params)
    for key in ("since", "until"):
        if isinstance(found.get(key), str):
            found[key] = datetime.fromisoformat(found[key])
    return found


def _trace_items(engine: Engine, selection: TraceSelection, team: TeamScope) -> Iterator[Item]:
    """Traces as items: the request as the row (without the answer), the answer as the output."""
    found = select_trace_rows(engine, selection, TraceCounts(), team=team)
    for position, (trace_id, row) in enumerate(found):
        answer = row.pop("expected", None)
        metadata = row.get("metadata") or {}
        measured = {
            key: metadata.get(key) for key in ("latency_ms", "prompt_tokens", "completion_tokens", "cost")
        }
        yield Item(
            position,
            None,
            row,
            {"trace_id": trace_id, "output": answer, "model": metadata.get("model"), **measured},
        )

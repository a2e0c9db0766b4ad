"""Admin routes of evaluation (/api/evals): the service functions behind `llmops evals`.

Creating (or resuming) a run answers 202 at once with the run; the run executes as a job on this
server's own gateway (its event loop), and its progress, cancel and result are at /api/jobs/{id} and
/api/evals/{run}. External endpoint targets are run from the CLI, which adds the endpoint as a model of
its own gateway; a server's models are its configuration's. A team's key sees its team's runs only
(another team's answers 404), and creates runs over the datasets, traces and prompts its team sees.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from llmops.evals.repository import RunInfo
from llmops.evals.service import RunRequest
from llmops.evals.targets import Target
from llmops.gateway.auth import Principal
from llmops.jobs.service import JobContext
from llmops.server.admin_auth import Caller
from llmops.server.admin_schema import NO_NUL, error_responses, link
from llmops.server.eval_schema import (
    GateIn,
    GateOut,
    LabelIn,
    ResultPageOut,
    RunIn,
    RunListOut,
    RunOut,
    RunPath,
)
from llmops.server.team_views import TeamEvals, TeamPrompts
from llmops.services import Services

_NO_RUN = {404: "No run has this id, name or label."}
_RUN_LINKS = {
    "GetRun": link("get_eval_run", run="$response.body#/id"),
    "GetRunResults": link("list_eval_results", run="$response.body#/id"),
    "GetRunJob": link("get_job", job_id="$response.body#/job_id"),
}


def eval_routes(services: Services) -> APIRouter:
    router = APIRouter(tags=["evals"])
    _reading_routes(router, services)
    _running_routes(router, services)
    return router


def _reading_routes(router: APIRouter, services: Services) -> None:

    @router.get(
        "/api/evals",
        operation_id="list_eval_runs",
        response_model=RunListOut,
        responses={
            200: {"links": {"GetRun": link("get_eval_run", run="$response.body#/data/0/id")}},
            **error_responses(400),
        },
    )
    def list_runs(
        evals: TeamEvals,
        dataset: Annotated[
            str | None, Query(max_length=200, pattern=NO_NUL, description="A dataset name.")
        ] = None,
        status: Literal["queued", "running", "succeeded", "failed", "cancelled"] | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        """Evaluation runs, newest first, with their summaries."""
        found = evals.list_runs(dataset=dataset, status=status, limit=limit)
        return {"data": [run.to_dict() for run in found]}

    @router.get(
        "/api/evals/compare",
        operation_id="compare_eval_runs",
        responses={
            200: {
                "description": "The comparison: JSON, or the Markdown or HTML report.",
                "content": {
                    "application/json": {"schema": {"type": "object"}},
                    "text/markdown": {"schema": {"type": "string"}},
                    "text/html": {"schema": {"type": "string"}},
                },
            },
            **error_responses(400, 404, descriptions=_NO_RUN),
        },
    )
    def compare_runs(
        evals: TeamEvals,
        runs: Annotated[
            list[Annotated[str, Query(min_length=1, max_length=200, pattern=NO_NUL)]],
            Query(
                min_length=2,
                max_length=10,
                description="The baseline first, then the candidates.",
                examples=[["baseline", "candidate"]],
            ),
        ],
        metrics: Annotated[list[str] | None, Query(max_length=50, description="Only these metrics.")] = None,
        alpha: Annotated[float, Query(gt=0, lt=0.5)] = 0.05,
        seed: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
        format: Annotated[
            Literal["json", "markdown", "html"], Query(description="The answer's format.")
        ] = "json",
    ) -> Response:
        """Per metric: means with intervals, paired differences with intervals and p-values, verdicts."""
        from llmops.evals.report import render_report

        found = evals.compare(runs, metrics=metrics, alpha=alpha, seed=seed)
        media = {"json": "application/json", "markdown": "text/markdown", "html": "text/html"}[format]
        return Response(render_report(found, format), media_type=media)

    @router.post(
        "/api/evals/gate",
        operation_id="gate_eval_runs",
        response_model=GateOut,
        responses=error_responses(400, 404, descriptions=_NO_RUN),
    )
    def gate_runs(evals: TeamEvals, body: GateIn) -> dict[str, Any]:
        """The CI gate as JSON: passed (exit_code 0), or which metric regressed and by how much (1)."""
        pairs = [(item.metric, float(item.max_drop)) for item in body.metrics]
        result = evals.gate(body.baseline, body.candidate, pairs, alpha=float(body.alpha), seed=body.seed)
        return {
            "passed": result.passed,
            "exit_code": result.exit_code,
            "summary": result.summary,
            "checks": [
                {"metric": check.metric, "failed": check.failed, "message": check.message}
                for check in result.checks
            ],
        }

    @router.get(
        "/api/evals/{run}",
        operation_id="get_eval_run",
        response_model=RunOut,
        responses=error_responses(400, 404, descriptions=_NO_RUN),
    )
    def get_run(evals: TeamEvals, run: RunPath) -> dict[str, Any]:
        """A run: target, dataset version, metrics, status, progress and summary (aggregates per metric)."""
        return evals.get(run).to_dict()

    @router.get(
        "/api/evals/{run}/results",
        operation_id="list_eval_results",
        response_model=ResultPageOut,
        responses=error_responses(400, 404, descriptions=_NO_RUN),
    )
    def list_results(
        evals: TeamEvals,
        run: RunPath,
        offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """A page of a run's items: output, every score with its details, latency, tokens, cost, error."""
        found = evals.results(run, offset=offset, limit=limit)
        following = found[-1]["position"] + 1 if len(found) == limit else None
        return {"data": found, "next_offset": following}


def _running_routes(router: APIRouter, services: Services) -> None:

    @router.post(
        "/api/evals",
        operation_id="create_eval_run",
        status_code=202,
        response_model=RunOut,
        responses={
            202: {"links": _RUN_LINKS},
            **error_responses(
                400,
                404,
                409,
                descriptions={
                    404: "No such dataset version or prompt (among the caller's team's).",
                    409: "The name is taken.",
                },
            ),
        },
    )
    async def create_run(
        principal: Caller, evals: TeamEvals, prompts: TeamPrompts, body: RunIn
    ) -> dict[str, Any]:
        """Start a run as a job (its metrics, target and dataset version checked first)."""
        from llmops.datasets.traces_source import selection_from_options
        from llmops.evals.execution import check_models
        from llmops.evals.scorers.registry import ScorerRegistry

        target = Target(
            body.target.kind, model=body.target.model, column=body.target.column, params=body.target.params
        )
        selection = None
        if body.traces is not None:
            selection = selection_from_options(**body.traces.model_dump())
        request = RunRequest(
            target=target,
            metrics=body.metrics,
            dataset=body.dataset,
            traces=selection,
            name=body.name,
            concurrency=body.concurrency,
            judge_model=body.judge_model,
            thresholds=dict(body.thresholds),
            scorer_modules=services.settings.scorer_modules,
            use_cache=body.use_cache,
            limit=body.limit,
        )
        check_models(target, body.judge_model, services)
        if target.kind == "prompt":  # the gateway renders it: it must be one the caller sees
            await asyncio.to_thread(prompts.get, str(target.model))
        created = await asyncio.to_thread(evals.create_run, request, ScorerRegistry(), author=principal.name)
        return _start(services, created, principal, asyncio.get_running_loop()).to_dict()

    @router.post(
        "/api/evals/{run}/resume",
        operation_id="resume_eval_run",
        status_code=202,
        response_model=RunOut,
        responses={
            202: {"links": _RUN_LINKS},
            **error_responses(
                400, 404, 409, descriptions={**_NO_RUN, 409: "The run has finished or is running."}
            ),
        },
    )
    async def resume_run(principal: Caller, evals: TeamEvals, run: RunPath) -> dict[str, Any]:
        """Finish an interrupted or cancelled run as a new job; finished items are not run again."""
        prepared = await asyncio.to_thread(evals.prepare_resume, run)
        return _start(services, prepared, principal, asyncio.get_running_loop()).to_dict()

    @router.post(
        "/api/evals/{run}/labels",
        operation_id="label_eval_run",
        response_model=RunOut,
        responses=error_responses(
            400,
            404,
            409,
            descriptions={
                **_NO_RUN,
                409: "The run has not succeeded, or the label points at a run of another team.",
            },
        ),
    )
    def label_run(principal: Caller, evals: TeamEvals, run: RunPath, body: LabelIn) -> dict[str, Any]:
        """Point a label (e.g. production) at this run: the baseline a gate compares with."""
        return evals.label(run, body.label, principal.name).to_dict()


def _start(
    services: Services, run: RunInfo, principal: Principal, loop: asyncio.AbstractEventLoop
) -> RunInfo:
    """Submit the run's job: it executes the run on this server's event loop, where its gateway lives."""
    from llmops.evals.execution import execute_run

    def work(context: JobContext) -> dict[str, Any]:
        future = asyncio.run_coroutine_threadsafe(
            execute_run(services, run, principal=principal, progress=context.progress), loop
        )
        finished = future.result()
        return {"run": finished.id, "status": finished.status, "summary": finished.summary}

    job = services.store.jobs.submit(
        "eval.run", {"run": run.id, "name": run.name}, work, created_by=principal.name
    )
    services.store.evals.repository.update_run(run.id, job_id=job.id)
    return services.store.evals.get(run.id)

"""Admin routes of fine-tuning (/api/finetune): the service functions behind `llmops finetune`.

Creating (or resuming) a run answers 202 at once; the run trains as a job in a worker thread of this
server (its progress, logs and cancel also at /api/jobs/{id}). A server whose CPU must stay with /v1
turns this off (`finetune_on_server: false`); the CLI still trains.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from llmops.errors import ConflictError
from llmops.gateway.auth import Principal
from llmops.jobs.service import JobContext
from llmops.server.admin_auth import Caller
from llmops.server.admin_schema import error_responses, link
from llmops.server.finetune_schema import (
    FinetuneIn,
    FinetuneListOut,
    FinetuneOut,
    FinetunePath,
    LogPageOut,
    Status,
)
from llmops.services import Services
from llmops.training.repository import FinetuneInfo

_NO_RUN = {404: "No fine-tuning run has this id or name."}
_RUN_LINKS = {
    "GetFinetune": link("get_finetune_run", run="$response.body#/id"),
    "GetFinetuneJob": link("get_job", job_id="$response.body#/job_id"),
}


class TrainingOff(ConflictError):
    """This server does not train (finetune_on_server is off)."""


def finetune_routes(services: Services) -> APIRouter:
    router = APIRouter(tags=["finetune"])
    _reading_routes(router, services)
    _running_routes(router, services)
    return router


def _reading_routes(router: APIRouter, services: Services) -> None:
    finetune = services.store.finetune

    @router.get(
        "/api/finetune",
        operation_id="list_finetune_runs",
        response_model=FinetuneListOut,
        responses={
            200: {"links": {"GetFinetune": link("get_finetune_run", run="$response.body#/data/0/id")}},
            **error_responses(400),
        },
    )
    def list_runs(
        _: Caller, status: Status | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 50
    ) -> dict[str, Any]:
        """Fine-tuning runs, newest first, with their latest progress."""
        return {"data": [run.to_dict() for run in finetune.list_runs(status=status, limit=limit)]}

    @router.get(
        "/api/finetune/{run}",
        operation_id="get_finetune_run",
        response_model=FinetuneOut,
        responses=error_responses(400, 404, descriptions=_NO_RUN),
    )
    def get_run(_: Caller, run: FinetunePath) -> dict[str, Any]:
        """A run: progress (step, losses, tokens/s, ETA), loss curves, before/after evaluation, artefacts."""
        return finetune.get(run).to_dict(curves=True)

    @router.get(
        "/api/finetune/{run}/curves.svg",
        operation_id="get_finetune_curves",
        responses={
            200: {
                "description": "The loss curves.",
                "content": {"image/svg+xml": {"schema": {"type": "string"}}},
            },
            **error_responses(400, 404, descriptions=_NO_RUN),
        },
    )
    def get_curves(_: Caller, run: FinetunePath) -> Response:
        """Training and validation loss by step, drawn as SVG (a run under way shows its steps so far)."""
        return Response(finetune.loss_curve(run), media_type="image/svg+xml")

    @router.get(
        "/api/finetune/{run}/logs",
        operation_id="list_finetune_logs",
        response_model=LogPageOut,
        responses=error_responses(400, 404, descriptions=_NO_RUN),
    )
    def list_logs(
        _: Caller,
        run: FinetunePath,
        after: Annotated[int, Query(ge=0, le=2**31 - 1, description="Lines after this seq.")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    ) -> dict[str, Any]:
        """The run's log lines (stages, data, resumes, results), oldest first."""
        found = finetune.get(run)
        if found.job_id is None:
            return {"data": []}
        return {"data": services.store.jobs.logs(found.job_id, after=after, limit=limit)}


def _running_routes(router: APIRouter, services: Services) -> None:
    finetune = services.store.finetune

    @router.post(
        "/api/finetune",
        operation_id="create_finetune_run",
        status_code=202,
        response_model=FinetuneOut,
        responses={
            202: {"links": _RUN_LINKS},
            **error_responses(
                400,
                404,
                409,
                descriptions={
                    404: "No such dataset version.",
                    409: "The name is taken, or this server does not train.",
                },
            ),
        },
    )
    async def create_run(principal: Caller, body: FinetuneIn) -> dict[str, Any]:
        """Start a fine-tuning run as a job (base, data and parameters checked first)."""
        from llmops.training.params import LoraParams
        from llmops.training.service import FinetuneRequest

        _check_training_on(services)
        lora = body.lora.model_dump()
        lora["target_modules"] = tuple(lora["target_modules"])
        request = FinetuneRequest(
            base=body.base,
            params=LoraParams.from_dict(lora),
            dataset=body.dataset,
            data_file=body.data_file,
            validation_file=body.validation_file,
            validation_split=float(body.validation_split),
            system=body.system,
            metrics=tuple(body.metrics),
            quantize=tuple(body.quantize),
            register_as=body.register_as,
            name=body.name,
        )
        created = await asyncio.to_thread(finetune.create, request, author=principal.name)
        return (await asyncio.to_thread(_start, services, created, principal)).to_dict()

    @router.post(
        "/api/finetune/{run}/resume",
        operation_id="resume_finetune_run",
        status_code=202,
        response_model=FinetuneOut,
        responses={
            202: {"links": _RUN_LINKS},
            **error_responses(
                400,
                404,
                409,
                descriptions={
                    **_NO_RUN,
                    409: "The run has finished or is running, or this server does not train.",
                },
            ),
        },
    )
    async def resume_run(principal: Caller, run: FinetunePath) -> dict[str, Any]:
        """Continue a cancelled, failed or interrupted run from its last checkpoint, as a new job."""
        _check_training_on(services)
        prepared = await asyncio.to_thread(finetune.prepare_resume, run)
        return (await asyncio.to_thread(_start, services, prepared, principal)).to_dict()

    @router.post(
        "/api/finetune/{run}/cancel",
        operation_id="cancel_finetune_run",
        response_model=FinetuneOut,
        responses=error_responses(400, 404, 409, descriptions={**_NO_RUN, 409: "The run is not running."}),
    )
    def cancel_run(_: Caller, run: FinetunePath) -> dict[str, Any]:
        """Stop a queued or running run at its next step (its last checkpoint stays for a resume)."""
        found = finetune.get(run)
        if found.job_id is None or found.status not in ("queued", "running"):
            raise ConflictError(f"fine-tuning run {run} is {found.status}; nothing to cancel", param="run")
        services.store.jobs.cancel(found.job_id)
        return finetune.get(found.id).to_dict()


def _check_training_on(services: Services) -> None:
    if not services.settings.finetune_on_server:
        raise TrainingOff(
            "this server does not train (finetune_on_server is off); run `llmops finetune run` instead",
            param="base",
        )


def _start(services: Services, run: FinetuneInfo, principal: Principal) -> FinetuneInfo:
    """Submit the run's job: training runs in a worker thread of this server."""
    finetune = services.store.finetune

    def work(context: JobContext) -> dict[str, Any]:
        finished = finetune.execute(run.id, context, job_id=context.job_id)
        return {"run": finished.id, "status": finished.status, "model_version": finished.model_version}

    job = services.store.jobs.submit(
        "finetune", {"run": run.id, "name": run.name}, work, created_by=principal.name
    )
    finetune.repository.update(run.id, job_id=job.id)
    return finetune.get(run.id)

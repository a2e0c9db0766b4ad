"""Admin routes of jobs (/api/jobs): progress, result, logs and cancellation of background work.

Any replica answers for any job (its state is in the database); a cancel reaches the replica running
the job through the same row, and the job stops at its next progress report.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from llmops.jobs.service import JobService
from llmops.server.admin_auth import Caller
from llmops.server.admin_schema import NO_NUL, error_responses, link
from llmops.server.dataset_schema import JobListOut, JobLogOut, JobOut, JobPath
from llmops.services import Services

_NO_JOB = {404: "No job has this id."}


def job_routes(services: Services) -> APIRouter:
    router = APIRouter(tags=["jobs"])
    jobs: JobService = services.store.jobs
    one = {
        "GetJob": link("get_job", job_id="$response.body#/data/0/id"),
        "GetJobLogs": link("get_job_logs", job_id="$response.body#/data/0/id"),
        "CancelJob": link("cancel_job", job_id="$response.body#/data/0/id"),
    }

    @router.get(
        "/api/jobs",
        operation_id="list_jobs",
        response_model=JobListOut,
        responses={200: {"links": one}, **error_responses(400)},
    )
    def list_jobs(
        _: Caller,
        kind: Annotated[
            str | None, Query(max_length=40, pattern=NO_NUL, description="e.g. dataset.clean")
        ] = None,
        status: Literal["queued", "running", "succeeded", "failed", "cancelled"] | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        """Jobs, newest first."""
        return {"data": [job.to_dict() for job in jobs.list_jobs(kind=kind, status=status, limit=limit)]}

    @router.get(
        "/api/jobs/{job_id}",
        operation_id="get_job",
        response_model=JobOut,
        responses=error_responses(400, 404, descriptions=_NO_JOB),
    )
    def get_job(_: Caller, job_id: JobPath) -> dict[str, Any]:
        """A job's status, stage, progress (done of total), and its result or error."""
        return jobs.get(job_id).to_dict()

    @router.get(
        "/api/jobs/{job_id}/logs",
        operation_id="get_job_logs",
        response_model=JobLogOut,
        responses=error_responses(400, 404, descriptions=_NO_JOB),
    )
    def get_job_logs(
        _: Caller,
        job_id: JobPath,
        after: Annotated[int, Query(ge=0, le=2**31 - 1, description="Only lines after this seq.")] = 0,
    ) -> dict[str, Any]:
        """A job's log lines, in order."""
        return {"data": jobs.logs(job_id, after=after)}

    @router.post(
        "/api/jobs/{job_id}/cancel",
        operation_id="cancel_job",
        response_model=JobOut,
        responses=error_responses(400, 404, 409, descriptions={**_NO_JOB, 409: "The job has already ended."}),
    )
    def cancel_job(_: Caller, job_id: JobPath) -> dict[str, Any]:
        """Ask a job to stop: a queued one never starts, a running one stops at its next progress report."""
        return jobs.cancel(job_id).to_dict()

    return router

"""Background jobs on SQLite and Postgres: progress, results, failures, logs, cancellation, recovery."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, update

from llmops.datasets.service import InvalidDataset
from llmops.jobs.service import JobContext, JobFinished, JobNotFound, JobService
from llmops.jobs.tables import jobs


@pytest.fixture
def service(db: Engine) -> JobService:
    return JobService(db, owner="test-replica")


def _wait(service: JobService, job_id: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = service.get(job_id).status
        if status in ("succeeded", "failed", "cancelled"):
            return status
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} still {service.get(job_id).status}")


def test_a_job_reports_progress_logs_and_its_result(service: JobService) -> None:
    def work(context: JobContext) -> dict[str, Any]:
        context.log("starting")
        for done in range(1, 4):
            context.progress("counting", done, 3)
        context.log("done", level="warning")
        return {"counted": 3}

    job = service.submit("count", {"to": 3}, work, created_by="ann")
    assert job.status in ("queued", "running", "succeeded")
    assert _wait(service, job.id) == "succeeded"
    finished = service.get(job.id)
    assert finished.result == {"counted": 3}
    assert finished.params == {"to": 3}
    assert finished.stage == "counting"
    assert (finished.done, finished.total) == (3, 3)  # the last report is written as the job ends
    assert finished.started_at is not None
    assert finished.finished_at is not None
    assert [(line["seq"], line["level"], line["message"]) for line in service.logs(job.id)] == [
        (1, "info", "starting"),
        (2, "warning", "done"),
    ]
    assert [line["seq"] for line in service.logs(job.id, after=1)] == [2]
    service.close()


def test_a_user_error_fails_the_job_with_its_message(service: JobService) -> None:
    def work(context: JobContext) -> None:
        raise InvalidDataset("invalid dataset name 'x y'")

    job = service.run_here("import", None, work, created_by=None)
    assert job.status == "failed"
    assert job.error == "invalid dataset name 'x y'"


def test_an_unexpected_error_fails_the_job_and_names_it(service: JobService) -> None:
    def work(context: JobContext) -> None:
        raise RuntimeError("disk on fire")

    job = service.run_here("import", None, work, created_by=None)
    assert job.status == "failed"
    assert job.error == "RuntimeError: disk on fire"


def test_cancel_stops_a_running_job_at_its_next_report(service: JobService) -> None:
    started = threading.Event()

    def work(context: JobContext) -> None:
        started.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            context.progress("waiting", 0, None)
            time.sleep(0.05)

    job = service.submit("wait", None, work, created_by=None)
    assert started.wait(5)
    assert service.cancel(job.id).cancel_requested is True
    assert _wait(service, job.id) == "cancelled"
    with pytest.raises(JobFinished, match="has already cancelled"):
        service.cancel(job.id)
    service.close()


def test_unknown_jobs(service: JobService) -> None:
    with pytest.raises(JobNotFound):
        service.get("0" * 32)
    with pytest.raises(JobNotFound):
        service.logs("nope")


def test_jobs_are_listed_newest_first_and_filtered(service: JobService) -> None:
    first = service.run_here("import", None, lambda _: None, created_by=None)
    second = service.run_here("clean", None, lambda _: None, created_by=None)
    assert [job.id for job in service.list_jobs()][:2] == [second.id, first.id]
    assert [job.id for job in service.list_jobs(kind="import")] == [first.id]
    assert service.list_jobs(status="failed") == []


def test_jobs_orphaned_by_a_stopped_server_are_marked_failed(db: Engine, service: JobService) -> None:
    job_id = service.record("import", None, None)  # recorded, never run: its replica died
    stale = datetime.now(UTC) - timedelta(minutes=10)
    with db.begin() as connection:
        orphaned = update(jobs).where(jobs.c.id == job_id)
        connection.execute(orphaned.values(status="running", heartbeat_at=stale))
    fresh = service.record("import", None, None)
    assert service.recover_interrupted() == 1
    assert service.get(job_id).status == "failed"
    assert "interrupted" in (service.get(job_id).error or "")
    assert service.get(fresh).status == "queued"

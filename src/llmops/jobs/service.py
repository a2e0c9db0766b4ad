"""Long work run in the background of a server, with its state in the database.

The replica that accepts a job runs it in its own worker threads; the job's row (status, stage,
progress, result or error, log lines) lives in the shared database, so any replica answers for it and a
cancel asked of any replica reaches the worker, which reads the flag as it reports progress. A job
whose replica stopped while it ran is found by its stale heartbeat and marked failed (``interrupted``)
when a server starts.

Errors: :class:`JobNotFound` (404), :class:`JobFinished` (409: cancelling a job that has ended).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select, update

from llmops.errors import ConflictError, NotFoundError, UserError
from llmops.ids import new_id
from llmops.jobs.tables import job_logs, jobs
from llmops.progress import Cancelled

log = logging.getLogger("llmops.jobs")

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = frozenset({"succeeded", "failed", "cancelled"})
WRITE_EVERY = 0.5  # seconds between progress writes (and cancel checks) of one job
STALE_AFTER = timedelta(minutes=2)  # a running job whose heartbeat is older was orphaned


class JobNotFound(NotFoundError):
    """No job has this id."""


class JobFinished(ConflictError):
    """The job has already ended."""


@dataclass(frozen=True)
class JobInfo:
    id: str
    kind: str
    status: str
    stage: str | None
    done: int
    total: int | None
    params: dict[str, Any] | None
    result: dict[str, Any] | None
    error: str | None
    cancel_requested: bool
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "stage": self.stage,
            "progress": {"done": self.done, "total": self.total},
            "params": self.params,
            "result": self.result,
            "error": self.error,
            "cancel_requested": self.cancel_requested,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "started_at": None if self.started_at is None else self.started_at.isoformat(),
            "finished_at": None if self.finished_at is None else self.finished_at.isoformat(),
        }


def _info(row: Any) -> JobInfo:
    data = row._mapping
    return JobInfo(
        id=data["id"],
        kind=data["kind"],
        status=data["status"],
        stage=data["stage"],
        done=data["progress_done"],
        total=data["progress_total"],
        params=data["params"],
        result=data["result"],
        error=data["error"],
        cancel_requested=bool(data["cancel_requested"]),
        created_by=data["created_by"],
        created_at=data["created_at"],
        started_at=data["started_at"],
        finished_at=data["finished_at"],
    )


def job_state(engine: Engine, job_id: str) -> tuple[str | None, bool]:
    """A job's status (None when there is no such job) and whether it still runs: queued or running
    with a fresh heartbeat (a killed process leaves its job 'running' with an old one)."""
    with engine.connect() as connection:
        found = connection.execute(
            select(jobs.c.status, jobs.c.heartbeat_at).where(jobs.c.id == job_id)
        ).first()
    if found is None:
        return None, False
    fresh = found.heartbeat_at is not None and datetime.now(UTC) - found.heartbeat_at < STALE_AFTER
    return found.status, found.status in ("queued", "running") and fresh


class JobContext:
    """What running work sees: report progress (which also raises Cancelled when asked) and log."""

    def __init__(self, service: JobService, job_id: str) -> None:
        self.job_id = job_id
        self._service = service
        self._last_write = 0.0
        self._seq = 0
        self.last: tuple[str, int, int | None] | None = None  # the latest report, written or not

    def progress(self, stage: str, done: int, total: int | None) -> None:
        self.last = (stage, done, total)
        now = time.monotonic()
        if now - self._last_write < WRITE_EVERY:
            return
        self._last_write = now
        if self._service.write_progress(self.job_id, stage, done, total):
            raise Cancelled(f"job {self.job_id} was cancelled")

    def log(self, message: str, level: str = "info") -> None:
        self._seq += 1
        self._service.add_log(self.job_id, self._seq, level, message)


Work = Callable[[JobContext], dict[str, Any] | None]


class JobService:
    def __init__(self, engine: Engine, *, owner: str, max_workers: int = 2) -> None:
        self._engine = engine
        self._owner = owner
        self._max_workers = max_workers
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    # -- running -------------------------------------------------------------------------------

    def submit(
        self, kind: str, params: dict[str, Any] | None, work: Work, *, created_by: str | None
    ) -> JobInfo:
        """Record a queued job and start ``work`` on a worker thread; returns at once."""
        job_id = self.record(kind, params, created_by)
        self._pool().submit(self._run, job_id, work)
        return self.get(job_id)

    def run_here(
        self, kind: str, params: dict[str, Any] | None, work: Work, *, created_by: str | None
    ) -> JobInfo:
        """Run ``work`` as a recorded job in the calling thread (tests, and commands that wait)."""
        job_id = self.record(kind, params, created_by)
        self._run(job_id, work)
        return self.get(job_id)

    def record(self, kind: str, params: dict[str, Any] | None, created_by: str | None) -> str:
        """A queued job's row, not yet run (``submit`` and ``run_here`` start it); returns its id."""
        job_id = new_id()
        now = datetime.now(UTC)
        with self._engine.begin() as connection:
            connection.execute(
                insert(jobs).values(
                    id=job_id,
                    kind=kind,
                    status="queued",
                    progress_done=0,
                    params=params,
                    cancel_requested=False,
                    owner=self._owner,
                    created_by=created_by,
                    created_at=now,
                    heartbeat_at=now,
                )
            )
        return job_id

    @contextmanager
    def track(
        self, kind: str, params: dict[str, Any] | None, *, created_by: str | None
    ) -> Iterator[JobContext]:
        """Record work the caller runs itself (a CLI command) as a running job, ended by the block's exit:
        succeeded, failed with the error, or cancelled when its progress report raised Cancelled."""
        job_id = self.record(kind, params, created_by)
        now = datetime.now(UTC)
        self._set(job_id, status="running", started_at=now, heartbeat_at=now)
        context = JobContext(self, job_id)
        try:
            yield context
        except Cancelled:
            self._end(job_id, "cancelled", error="cancelled on request")
            raise
        except UserError as exc:
            self._end(job_id, "failed", error=exc.message)
            raise
        except BaseException as exc:
            self._end(job_id, "failed", error=f"{type(exc).__name__}: {exc}")
            raise
        self._final_progress(context)
        self._end(job_id, "succeeded")

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self._max_workers, thread_name_prefix="llmops-job")
            return self._executor

    def _run(self, job_id: str, work: Work) -> None:
        now = datetime.now(UTC)
        if self._set(job_id, status="running", started_at=now, heartbeat_at=now, only_queued=True) == 0:
            return  # cancelled before it started
        context = JobContext(self, job_id)
        try:
            result = work(context)
        except Cancelled:
            self._end(job_id, "cancelled", error="cancelled on request")
        except UserError as exc:
            self._end(job_id, "failed", error=exc.message)
        except Exception as exc:  # a job's boundary: whatever it raised ends it, logged, never the server
            log.exception("job %s failed", job_id)
            self._end(job_id, "failed", error=f"{type(exc).__name__}: {exc}")
        else:
            self._final_progress(context)
            self._end(job_id, "succeeded", result=result)

    def _final_progress(self, context: JobContext) -> None:
        """Reports are written at most every WRITE_EVERY seconds: write the last one as the job ends."""
        if context.last is not None:
            self.write_progress(context.job_id, *context.last)

    def _end(self, job_id: str, status: str, *, result: Any = None, error: str | None = None) -> None:
        now = datetime.now(UTC)
        self._set(job_id, status=status, result=result, error=error, finished_at=now, heartbeat_at=now)

    def _set(self, job_id: str, *, only_queued: bool = False, **values: Any) -> int:
        statement = update(jobs).where(jobs.c.id == job_id)
        if only_queued:
            statement = statement.where(jobs.c.status == "queued")
        with self._engine.begin() as connection:
            return connection.execute(statement.values(**values)).rowcount

    def write_progress(self, job_id: str, stage: str, done: int, total: int | None) -> bool:
        """Store progress and the heartbeat; True when a cancel has been asked for."""
        now = datetime.now(UTC)
        with self._engine.begin() as connection:
            connection.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(stage=stage[:200], progress_done=done, progress_total=total, heartbeat_at=now)
            )
            flag = connection.execute(select(jobs.c.cancel_requested).where(jobs.c.id == job_id)).scalar()
        return bool(flag)

    def add_log(self, job_id: str, seq: int, level: str, message: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                insert(job_logs).values(
                    job_id=job_id, seq=seq, at=datetime.now(UTC), level=level[:10], message=message
                )
            )

    def recover_interrupted(self) -> int:
        """Mark jobs whose worker stopped (stale heartbeat) as failed; returns how many."""
        cutoff = datetime.now(UTC) - STALE_AFTER
        with self._engine.begin() as connection:
            return connection.execute(
                update(jobs)
                .where(jobs.c.status.in_(("queued", "running")) & (jobs.c.heartbeat_at < cutoff))
                .values(
                    status="failed",
                    error="interrupted: the server running it stopped",
                    finished_at=datetime.now(UTC),
                )
            ).rowcount

    def close(self) -> None:
        """Ask running jobs of this replica to stop, and wait for the workers."""
        with self._engine.begin() as connection:
            connection.execute(
                update(jobs)
                .where(jobs.c.owner == self._owner, jobs.c.status.in_(("queued", "running")))
                .values(cancel_requested=True)
            )
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    # -- reading and cancelling ------------------------------------------------------------------

    def get(self, job_id: str) -> JobInfo:
        with self._engine.connect() as connection:
            row = connection.execute(select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise JobNotFound(f"no job with id {job_id!r}", param="job_id")
        return _info(row)

    def list_jobs(
        self, *, kind: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[JobInfo]:
        query = select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit)
        if kind is not None:
            query = query.where(jobs.c.kind == kind)
        if status is not None:
            query = query.where(jobs.c.status == status)
        with self._engine.connect() as connection:
            return [_info(row) for row in connection.execute(query)]

    def logs(self, job_id: str, *, after: int = 0, limit: int = 500) -> list[dict[str, Any]]:
        self.get(job_id)
        query = (
            select(job_logs)
            .where((job_logs.c.job_id == job_id) & (job_logs.c.seq > after))
            .order_by(job_logs.c.seq)
            .limit(limit)
        )
        with self._engine.connect() as connection:
            return [
                {"seq": row.seq, "at": row.at.isoformat(), "level": row.level, "message": row.message}
                for row in connection.execute(query)
            ]

    def cancel(self, job_id: str) -> JobInfo:
        """Ask a job to stop: a queued one never starts, a running one stops at its next progress report."""
        found = self.get(job_id)
        if found.status in FINISHED:
            raise JobFinished(f"job {job_id} has already {found.status}", param="job_id")
        with self._engine.begin() as connection:
            connection.execute(update(jobs).where(jobs.c.id == job_id).values(cancel_requested=True))
            connection.execute(
                update(jobs)
                .where((jobs.c.id == job_id) & (jobs.c.status == "queued"))
                .values(
                    status="cancelled", error="cancelled before it started", finished_at=datetime.now(UTC)
                )
            )
        return self.get(job_id)

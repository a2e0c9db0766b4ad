"""The job tables (migration 0004): long work with progress, logs and cancellation.

- ``job``: kind, status (queued | running | succeeded | failed | cancelled), progress (done / total and
  the current stage), parameters, result or error, who asked, and the replica running it with its
  heartbeat, so any replica can answer for a job and a stale one is recognised.
- ``job_log``: the job's log lines, in order.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, ForeignKey, Index, Integer, String, Table, Text

from llmops.store.tables import JsonValue, UtcDateTime, metadata

jobs = Table(
    "job",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("status", String(16), nullable=False),
    Column("stage", String(200), nullable=True),
    Column("progress_done", Integer, nullable=False),
    Column("progress_total", Integer, nullable=True),
    Column("params", JsonValue, nullable=True),
    Column("result", JsonValue, nullable=True),
    Column("error", Text, nullable=True),
    Column("cancel_requested", Boolean, nullable=False),
    Column("owner", String(100), nullable=True),
    Column("created_by", String(200), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("started_at", UtcDateTime(), nullable=True),
    Column("finished_at", UtcDateTime(), nullable=True),
    Column("heartbeat_at", UtcDateTime(), nullable=True),
    Index("ix_job_kind_created", "kind", "created_at"),
    Index("ix_job_status", "status"),
)

job_logs = Table(
    "job_log",
    metadata,
    Column("job_id", String(32), ForeignKey("job.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("level", String(10), nullable=False),
    Column("message", Text, nullable=False),
)

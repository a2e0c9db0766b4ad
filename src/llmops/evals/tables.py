"""The evaluation tables (migration 0005), on the shared metadata of :mod:`llmops.store.tables`.

- ``eval_run``: one run of a target over a dataset version (or over traces): its name, target, metrics,
  parameters, status, progress, the job running it, and its summary (aggregates per metric).
- ``eval_result``: one evaluated item: output, every score with its details (a judge's reasoning and
  raw answer), latency, tokens, cost, the trace of the call, or the error.
- ``eval_label``: names such as ``production`` pointing at one run, the baseline a CI gate compares with.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, ForeignKey, Index, Integer, String, Table, Text

from llmops.store.tables import JsonValue, UtcDateTime, metadata

eval_runs = Table(
    "eval_run",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=True, unique=True),
    Column("dataset", String(200), nullable=True),
    Column("dataset_version", Integer, nullable=True),
    Column("target", JsonValue, nullable=False),
    Column("metrics", JsonValue, nullable=False),
    Column("params", JsonValue, nullable=True),
    Column("status", String(16), nullable=False),
    Column("job_id", String(32), nullable=True),
    Column("items_total", Integer, nullable=True),
    Column("items_done", Integer, nullable=False),
    Column("summary", JsonValue, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_by", String(200), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("started_at", UtcDateTime(), nullable=True),
    Column("finished_at", UtcDateTime(), nullable=True),
    Column("team_id", String(40), nullable=True, index=True),
    Index("ix_eval_run_dataset", "dataset", "dataset_version"),
)

eval_results = Table(
    "eval_result",
    metadata,
    Column("run_id", String(32), ForeignKey("eval_run.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("row_hash", String(64), nullable=True),
    Column("output", Text, nullable=True),
    Column("scores", JsonValue, nullable=False),
    Column("details", JsonValue, nullable=True),
    Column("latency_ms", Float, nullable=True),
    Column("prompt_tokens", Integer, nullable=True),
    Column("completion_tokens", Integer, nullable=True),
    Column("cost", Float, nullable=True),
    Column("trace_id", String(32), nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
)

eval_labels = Table(
    "eval_label",
    metadata,
    Column("label", String(100), primary_key=True),
    Column("run_id", String(32), ForeignKey("eval_run.id", ondelete="CASCADE"), nullable=False),
    Column("updated_by", String(200), nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
)

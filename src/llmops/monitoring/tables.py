"""Trace rollups (migration 0011): what dashboards and alerts read instead of the traces.

One row holds the aggregates of the traces of one time bucket (a minute, ``granularity = "m"``, or an
hour, ``"h"``) and one combination of model, deployment, API key and prompt version, as written by one
``writer``: each trace writer (a process) owns its rows and overwrites them with its running totals, so
replicas never contend for a row; the feedback path adds to rows of its own with atomic increments.
A query merges the rows of its buckets (counts add up, latency sketches merge exactly).
Absent dimensions are stored as ``""`` (and version ``0``), so the key columns are never NULL.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table

from llmops.store.tables import JsonValue, UtcDateTime, metadata

trace_rollups = Table(
    "trace_rollup",
    metadata,
    Column("granularity", String(1), primary_key=True),
    Column("bucket_start", UtcDateTime(), primary_key=True),
    Column("writer", String(64), primary_key=True),
    Column("model", String(200), primary_key=True),
    Column("deployment", String(200), primary_key=True),
    Column("api_key_id", String(40), primary_key=True),
    Column("prompt_name", String(200), primary_key=True),
    Column("prompt_version", Integer, primary_key=True),
    Column("requests", Integer, nullable=False),
    Column("errors", Integer, nullable=False),
    Column("errors_by_type", JsonValue, nullable=True),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("cost", Float, nullable=False),
    Column("cache_lookups", Integer, nullable=False),
    Column("cache_hits", Integer, nullable=False),
    Column("guardrail_triggers", Integer, nullable=False),
    Column("latency_sketch", JsonValue, nullable=True),
    Column("ttft_sketch", JsonValue, nullable=True),
    Column("feedback_count", Integer, nullable=False),
    Column("feedback_score_sum", Float, nullable=False),
    Column("feedback_scored", Integer, nullable=False),
    Column("thumbs_up", Integer, nullable=False),
    Column("thumbs_down", Integer, nullable=False),
    Index("ix_trace_rollup_time", "granularity", "bucket_start"),
)

"""Stored drift checks (migration 0011): each run's score, per-check p-values and whole report.

One row per check run (``llmops drift report``, ``POST /api/drift``, or a scheduled score for an alert
rule). ``p_values`` maps check name to its p-value (null when skipped), so that alerts and history read
a row without parsing the report. ``model`` and ``prompt`` are null when the check covered every model
(or every prompt); ``team_id`` is the team of the caller who ran it (null: an admin or the CLI).
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Index, Integer, String, Table

from llmops.store.tables import JsonValue, UtcDateTime, metadata

drift_checks = Table(
    "drift_check",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("team_id", String(40), nullable=True),
    Column("model", String(200), nullable=True),
    Column("prompt", String(200), nullable=True),
    Column("reference", String(400), nullable=False),
    Column("current", String(400), nullable=False),
    Column("alpha", Float, nullable=False),
    Column("score", Float, nullable=False),
    Column("drifted", Boolean, nullable=False),
    Column("traces", Integer, nullable=False),
    Column("p_values", JsonValue, nullable=False),
    Column("report", JsonValue, nullable=False),
    Index("ix_drift_check_model_created", "model", "prompt", "created_at"),
    Index("ix_drift_check_created", "created_at"),
)

"""The deployment tables (migration 0007), on the shared metadata of :mod:`llmops.store.tables`.

- ``deployment``: one managed public model name: its stable and canary registry versions, the
  canary's share of traffic, the roll-out steps, the guard rules, and a ``revision`` that every
  change increments (changes are compare-and-set on it, so replicas never apply one twice). A
  row is never deleted: undeploying sets its status to ``undeployed``, so the sum of revisions
  only grows and replicas notice every change with one cheap query.
- ``deployment_event``: the append-only history: who did what to which deployment, when and why.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Index, Integer, String, Table, Text

from llmops.store.tables import JsonValue, UtcDateTime, metadata

deployments = Table(
    "deployment",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("stable", String(200), nullable=True),
    Column("canary", String(200), nullable=True),
    Column("canary_percent", Integer, nullable=False),
    Column("steps", JsonValue, nullable=False),
    Column("step_index", Integer, nullable=False),
    Column("guards", JsonValue, nullable=False),
    Column("window_seconds", Float, nullable=False),
    Column("step_seconds", Float, nullable=False),
    Column("manual", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("step_started_at", UtcDateTime(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("updated_by", String(200), nullable=True),
)

deployment_events = Table(
    "deployment_event",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(200), nullable=True),
    Column("action", String(20), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("from_state", JsonValue, nullable=True),
    Column("to_state", JsonValue, nullable=True),
    Column("reason", Text, nullable=True),
    Index("ix_deployment_event_name_at", "name", "at"),
)

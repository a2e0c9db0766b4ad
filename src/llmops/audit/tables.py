"""Audit table (migration 0009), on the shared metadata of :mod:`llmops.store.tables`.

``audit_event``: one change made through the admin API or the CLI: who, when, from where, what
action on which target, and the target before and after (secrets redacted). Append-only: the
migration adds triggers that refuse UPDATE and DELETE on both SQLite and Postgres.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, String, Table

from llmops.store.tables import JsonValue, UtcDateTime, metadata

audit_events = Table(
    "audit_event",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("actor_key_id", String(40), nullable=True),
    Column("source", String(8), nullable=False),
    Column("ip", String(64), nullable=True),
    Column("action", String(100), nullable=False),
    Column("target_type", String(40), nullable=False),
    Column("target", String(300), nullable=True),
    Column("team_id", String(40), nullable=True),
    Column("before", JsonValue, nullable=True),
    Column("after", JsonValue, nullable=True),
    Index("ix_audit_event_at", "at"),
    Index("ix_audit_event_target", "target_type", "target"),
)

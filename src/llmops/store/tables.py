"""The SQL tables, shared by SQLite and Postgres (JSON becomes JSONB on Postgres).

Alembic migrations in ``migrations/versions`` create these; a test checks that the
migrated schema and these definitions agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect

metadata = MetaData()

JsonValue = JSON().with_variant(JSONB(), "postgresql")


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime, stored and read back as UTC on both backends.

    SQLite keeps no zone: without this, a non-UTC value would be stored as its wall-clock time
    and compared wrongly, and values would come back naive there but aware on Postgres.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # naive values are taken to be UTC (not the session's zone)
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


api_keys = Table(
    "api_key",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("scope", String(20), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(20), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=True),
    # issue 9: a key's team, what it may use and spend, and its rotation (the old secret's grace)
    Column("team_id", String(40), nullable=True, index=True),
    Column("models", JsonValue, nullable=True),
    Column("expires_at", UtcDateTime(), nullable=True),
    Column("limits", JsonValue, nullable=True),
    Column("metadata", JsonValue, nullable=True),
    Column("previous_hash", String(64), nullable=True, unique=True),
    Column("previous_valid_until", UtcDateTime(), nullable=True),
    Column("rotated_at", UtcDateTime(), nullable=True),
)

traces = Table(
    "trace",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("ended_at", UtcDateTime(), nullable=False),
    Column("endpoint", String(40), nullable=False),
    Column("api_key_id", String(40), nullable=True),
    Column("requested_model", String(200), nullable=False),
    Column("provider", String(100), nullable=True),
    Column("upstream_model", String(200), nullable=True),
    Column("deployment", String(200), nullable=True),
    Column("cache_status", String(16), nullable=True),
    Column("stream", Boolean, nullable=False),
    Column("status", String(10), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("error_type", String(100), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("request", JsonValue, nullable=True),
    Column("response_text", Text, nullable=True),
    Column("finish_reason", String(40), nullable=True),
    Column("prompt_tokens", Integer, nullable=True),
    Column("completion_tokens", Integer, nullable=True),
    Column("usage_source", String(10), nullable=True),
    Column("cost", Float, nullable=True),
    Column("latency_ms", Float, nullable=False),
    Column("ttft_ms", Float, nullable=True),
    Column("attributes", JsonValue, nullable=True),
    Column("prompt_name", String(200), nullable=True),
    Column("prompt_version", Integer, nullable=True),
    Column("prompt_label", String(100), nullable=True),
    Column("experiment", String(40), nullable=True),
    Column("variant", String(100), nullable=True),
    # "|rule:action|...": the guardrails that triggered (blocked, redacted, flagged); NULL when none did
    Column("guardrail", Text, nullable=True),
    # OpenTelemetry (issue 11): the caller's trace (W3C traceparent) or the ingested span's ids;
    # NULL for a gateway request that named no parent (its OTel ids derive from ``id``)
    Column("otel_trace_id", String(32), nullable=True),
    Column("otel_span_id", String(16), nullable=True),
    Column("otel_parent_span_id", String(16), nullable=True),
    Index("ix_trace_started_at", "started_at", "id"),
    Index("ix_trace_model_started_at", "requested_model", "started_at"),
    Index("ix_trace_key_started_at", "api_key_id", "started_at"),
    Index("ix_trace_status_started_at", "status", "started_at"),
    Index("ix_trace_prompt_started_at", "prompt_name", "started_at"),
    Index("ix_trace_experiment_variant", "experiment", "variant"),
    Index(
        "ix_trace_otel_trace_id",
        "otel_trace_id",
        sqlite_where=text("otel_trace_id IS NOT NULL"),
        postgresql_where=text("otel_trace_id IS NOT NULL"),
    ),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("trace_id", String(32), ForeignKey("trace.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("score", Float, nullable=True),
    Column("thumb", String(4), nullable=True),
    Column("label", String(200), nullable=True),
    Column("comment", Text, nullable=True),
    Column("author", String(200), nullable=True),
)

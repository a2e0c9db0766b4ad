"""Monitoring: trace rollups for dashboards, alert rules and events, drift checks, OpenTelemetry ids.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_json = sa.JSON().with_variant(JSONB(), "postgresql")
_time = sa.DateTime(timezone=True)


def upgrade() -> None:
    _rollups()
    _alerts()
    _drift()
    _otel()


def downgrade() -> None:
    _drop_otel()
    _drop_drift()
    _drop_alerts()
    _drop_rollups()


def _rollups() -> None:
    """Per-minute and per-hour aggregates of traces, one row per writer (see llmops.monitoring.rollups)."""
    keys: list[sa.Column[object]] = [
        sa.Column("granularity", sa.String(1), primary_key=True),
        sa.Column("bucket_start", _time, primary_key=True),
        sa.Column("writer", sa.String(64), primary_key=True),
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("deployment", sa.String(200), primary_key=True),
        sa.Column("api_key_id", sa.String(40), primary_key=True),
        sa.Column("prompt_name", sa.String(200), primary_key=True),
        sa.Column("prompt_version", sa.Integer(), primary_key=True),
    ]
    op.create_table(
        "trace_rollup",
        *keys,
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("errors_by_type", _json, nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("cache_lookups", sa.Integer(), nullable=False),
        sa.Column("cache_hits", sa.Integer(), nullable=False),
        sa.Column("guardrail_triggers", sa.Integer(), nullable=False),
        sa.Column("latency_sketch", _json, nullable=True),
        sa.Column("ttft_sketch", _json, nullable=True),
        sa.Column("feedback_count", sa.Integer(), nullable=False),
        sa.Column("feedback_score_sum", sa.Float(), nullable=False),
        sa.Column("feedback_scored", sa.Integer(), nullable=False),
        sa.Column("thumbs_up", sa.Integer(), nullable=False),
        sa.Column("thumbs_down", sa.Integer(), nullable=False),
    )
    op.create_index("ix_trace_rollup_time", "trace_rollup", ["granularity", "bucket_start"])


def _drop_rollups() -> None:
    op.drop_table("trace_rollup")


def _alerts() -> None:
    """Alert rules, their state, events (history), silences and the evaluator's leader lease."""
    op.create_table(
        "alert_rule",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("config", _json, nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", _time, nullable=False),
        sa.Column("updated_at", _time, nullable=False),
    )
    op.create_table(
        "alert_state",
        sa.Column("rule", sa.String(100), primary_key=True),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("since", _time, nullable=False),
        sa.Column("active_at", _time, nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("evaluated_at", _time, nullable=False),
        sa.Column("notified_at", _time, nullable=True),
        sa.Column("silence_id", sa.String(40), nullable=True),
    )
    op.create_table(
        "alert_event",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("rule", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("at", _time, nullable=False),
        sa.Column("severity", sa.String(10), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("condition", sa.String(300), nullable=False),
        sa.Column("labels", _json, nullable=True),
        sa.Column("silence_id", sa.String(40), nullable=True),
        sa.Column("sent", sa.Boolean(), nullable=False),
        sa.Column("deliveries", _json, nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
    )
    op.create_index("ix_alert_event_rule_at", "alert_event", ["rule", "at"])
    op.create_table(
        "alert_silence",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("labels", _json, nullable=True),
        sa.Column("starts_at", _time, nullable=False),
        sa.Column("ends_at", _time, nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("created_at", _time, nullable=False),
    )
    op.create_index("ix_alert_silence_ends_at", "alert_silence", ["ends_at"])
    op.create_table(
        "alert_lease",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("expires_at", _time, nullable=False),
        sa.Column("acquired_at", _time, nullable=False),
    )


def _drop_alerts() -> None:
    for table in ("alert_lease", "alert_silence", "alert_event", "alert_state", "alert_rule"):
        op.drop_table(table)


def _drift() -> None:
    """Drift checks and their scores (see llmops.drift.tables)."""
    op.create_table(
        "drift_check",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("created_at", _time, nullable=False),
        sa.Column("team_id", sa.String(40), nullable=True),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("prompt", sa.String(200), nullable=True),
        sa.Column("reference", sa.String(400), nullable=False),
        sa.Column("current", sa.String(400), nullable=False),
        sa.Column("alpha", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("drifted", sa.Boolean(), nullable=False),
        sa.Column("traces", sa.Integer(), nullable=False),
        sa.Column("p_values", _json, nullable=False),
        sa.Column("report", _json, nullable=False),
    )
    op.create_index("ix_drift_check_model_created", "drift_check", ["model", "prompt", "created_at"])
    op.create_index("ix_drift_check_created", "drift_check", ["created_at"])


def _drop_drift() -> None:
    op.drop_table("drift_check")


def _otel() -> None:
    """OpenTelemetry ids on traces, and the spans ingested through /otlp/v1/traces that are not
    model calls (see llmops.tracing.otel)."""
    with op.batch_alter_table("trace") as batch:
        batch.add_column(sa.Column("otel_trace_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("otel_span_id", sa.String(16), nullable=True))
        batch.add_column(sa.Column("otel_parent_span_id", sa.String(16), nullable=True))
    where = sa.text("otel_trace_id IS NOT NULL")
    op.create_index(
        "ix_trace_otel_trace_id", "trace", ["otel_trace_id"], sqlite_where=where, postgresql_where=where
    )
    op.create_table(
        "span",
        sa.Column("otel_trace_id", sa.String(32), primary_key=True),
        sa.Column("span_id", sa.String(16), primary_key=True),
        sa.Column("parent_span_id", sa.String(16), nullable=True),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("service_name", sa.String(200), nullable=True),
        sa.Column("scope_name", sa.String(200), nullable=True),
        sa.Column("started_at", _time, nullable=False),
        sa.Column("ended_at", _time, nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=True),
        sa.Column("attributes", _json, nullable=True),
        sa.Column("events", _json, nullable=True),
        sa.Column("api_key_id", sa.String(40), nullable=True),
        sa.Column("received_at", _time, nullable=False),
    )
    op.create_index("ix_span_started_at", "span", ["started_at"])


def _drop_otel() -> None:
    op.drop_table("span")
    op.drop_index("ix_trace_otel_trace_id", table_name="trace")
    with op.batch_alter_table("trace") as batch:
        batch.drop_column("otel_parent_span_id")
        batch.drop_column("otel_span_id")
        batch.drop_column("otel_trace_id")

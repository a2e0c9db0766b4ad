"""API keys, traces and feedback.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_json = sa.JSON().with_variant(JSONB(), "postgresql")
_time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_key",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("scope", sa.String(20), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(20), nullable=False),
        sa.Column("created_at", _time, nullable=False),
        sa.Column("revoked_at", _time, nullable=True),
    )
    op.create_table(
        "trace",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("started_at", _time, nullable=False),
        sa.Column("ended_at", _time, nullable=False),
        sa.Column("endpoint", sa.String(40), nullable=False),
        sa.Column("api_key_id", sa.String(40), nullable=True),
        sa.Column("requested_model", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(100), nullable=True),
        sa.Column("upstream_model", sa.String(200), nullable=True),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("error_type", sa.String(100), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("request", _json, nullable=True),
        sa.Column("response_text", sa.Text, nullable=True),
        sa.Column("finish_reason", sa.String(40), nullable=True),
        sa.Column("prompt_tokens", sa.Integer, nullable=True),
        sa.Column("completion_tokens", sa.Integer, nullable=True),
        sa.Column("usage_source", sa.String(10), nullable=True),
        sa.Column("cost", sa.Float, nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("ttft_ms", sa.Float, nullable=True),
        sa.Column("attributes", _json, nullable=True),
    )
    op.create_index("ix_trace_started_at", "trace", ["started_at", "id"])
    op.create_index("ix_trace_model_started_at", "trace", ["requested_model", "started_at"])
    op.create_index("ix_trace_key_started_at", "trace", ["api_key_id", "started_at"])
    op.create_index("ix_trace_status_started_at", "trace", ["status", "started_at"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("trace_id", sa.String(32), sa.ForeignKey("trace.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", _time, nullable=False),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("thumb", sa.String(4), nullable=True),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("author", sa.String(200), nullable=True),
    )
    op.create_index("ix_feedback_trace_id", "feedback", ["trace_id"])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("trace")
    op.drop_table("api_key")

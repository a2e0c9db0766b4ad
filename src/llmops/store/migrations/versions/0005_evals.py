"""Evaluation runs, their per-item results, and labels naming baseline runs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_json = sa.JSON().with_variant(JSONB(), "postgresql")
_time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "eval_run",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=True, unique=True),
        sa.Column("dataset", sa.String(200), nullable=True),
        sa.Column("dataset_version", sa.Integer, nullable=True),
        sa.Column("target", _json, nullable=False),
        sa.Column("metrics", _json, nullable=False),
        sa.Column("params", _json, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("job_id", sa.String(32), nullable=True),
        sa.Column("items_total", sa.Integer, nullable=True),
        sa.Column("items_done", sa.Integer, nullable=False),
        sa.Column("summary", _json, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("created_at", _time, nullable=False),
        sa.Column("started_at", _time, nullable=True),
        sa.Column("finished_at", _time, nullable=True),
    )
    op.create_index("ix_eval_run_dataset", "eval_run", ["dataset", "dataset_version"])
    op.create_table(
        "eval_result",
        sa.Column(
            "run_id", sa.String(32), sa.ForeignKey("eval_run.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("row_hash", sa.String(64), nullable=True),
        sa.Column("output", sa.Text, nullable=True),
        sa.Column("scores", _json, nullable=False),
        sa.Column("details", _json, nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=True),
        sa.Column("prompt_tokens", sa.Integer, nullable=True),
        sa.Column("completion_tokens", sa.Integer, nullable=True),
        sa.Column("cost", sa.Float, nullable=True),
        sa.Column("trace_id", sa.String(32), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", _time, nullable=False),
    )
    op.create_table(
        "eval_label",
        sa.Column("label", sa.String(100), primary_key=True),
        sa.Column("run_id", sa.String(32), sa.ForeignKey("eval_run.id", ondelete="CASCADE"), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=True),
        sa.Column("updated_at", _time, nullable=False),
    )


def downgrade() -> None:
    for table in ("eval_label", "eval_result", "eval_run"):
        op.drop_table(table)

"""Prompt registry (prompts, versions, labels and their history, experiments) and prompt fields on traces.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_json = sa.JSON().with_variant(JSONB(), "postgresql")
_time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "registry_revision",
        sa.Column("area", sa.String(40), primary_key=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("updated_at", _time, nullable=False),
    )
    op.create_table(
        "prompt",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("tags", _json, nullable=True),
        sa.Column("latest_version", sa.Integer, nullable=False),
        sa.Column("created_at", _time, nullable=False),
        sa.Column("updated_at", _time, nullable=False),
    )
    op.create_table(
        "prompt_version",
        sa.Column(
            "prompt", sa.String(200), sa.ForeignKey("prompt.name", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("content", _json, nullable=False),
        sa.Column("message", sa.Text, nullable=True),
        sa.Column("author", sa.String(200), nullable=True),
        sa.Column("created_at", _time, nullable=False),
        sa.UniqueConstraint("prompt", "content_hash", name="uq_prompt_version_hash"),
    )
    op.create_table(
        "prompt_label",
        sa.Column(
            "prompt", sa.String(200), sa.ForeignKey("prompt.name", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("label", sa.String(100), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", _time, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=True),
    )
    op.create_table(
        "prompt_label_event",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("prompt", sa.String(200), sa.ForeignKey("prompt.name", ondelete="CASCADE"), nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("from_version", sa.Integer, nullable=True),
        sa.Column("to_version", sa.Integer, nullable=True),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("author", sa.String(200), nullable=True),
        sa.Column("created_at", _time, nullable=False),
    )
    op.create_index("ix_prompt_label_event_prompt", "prompt_label_event", ["prompt", "label", "id"])
    op.create_table(
        "experiment",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("prompt", sa.String(200), sa.ForeignKey("prompt.name", ondelete="CASCADE"), nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("sticky_by", sa.String(20), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("winner", sa.String(100), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("created_at", _time, nullable=False),
        sa.Column("ended_at", _time, nullable=True),
    )
    op.create_index("ix_experiment_prompt_status", "experiment", ["prompt", "status"])
    op.create_table(
        "experiment_variant",
        sa.Column(
            "experiment", sa.String(40), sa.ForeignKey("experiment.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("weight", sa.Float, nullable=False),
    )
    with op.batch_alter_table("trace") as batch:
        batch.add_column(sa.Column("prompt_name", sa.String(200), nullable=True))
        batch.add_column(sa.Column("prompt_version", sa.Integer, nullable=True))
        batch.add_column(sa.Column("prompt_label", sa.String(100), nullable=True))
        batch.add_column(sa.Column("experiment", sa.String(40), nullable=True))
        batch.add_column(sa.Column("variant", sa.String(100), nullable=True))
    op.create_index("ix_trace_prompt_started_at", "trace", ["prompt_name", "started_at"])
    op.create_index("ix_trace_experiment_variant", "trace", ["experiment", "variant"])


def downgrade() -> None:
    op.drop_index("ix_trace_experiment_variant", "trace")
    op.drop_index("ix_trace_prompt_started_at", "trace")
    with op.batch_alter_table("trace") as batch:
        for column in ("variant", "experiment", "prompt_label", "prompt_version", "prompt_name"):
            batch.drop_column(column)
    for table in (
        "experiment_variant",
        "experiment",
        "prompt_label_event",
        "prompt_label",
        "prompt_version",
        "prompt",
        "registry_revision",
    ):
        op.drop_table(table)

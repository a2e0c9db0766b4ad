"""Managed deployments (stable and canary registry versions behind a public model name) and their history.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_json = sa.JSON().with_variant(JSONB(), "postgresql")
_time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "deployment",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("stable", sa.String(200), nullable=True),
        sa.Column("canary", sa.String(200), nullable=True),
        sa.Column("canary_percent", sa.Integer, nullable=False),
        sa.Column("steps", _json, nullable=False),
        sa.Column("step_index", sa.Integer, nullable=False),
        sa.Column("guards", _json, nullable=False),
        sa.Column("window_seconds", sa.Float, nullable=False),
        sa.Column("step_seconds", sa.Float, nullable=False),
        sa.Column("manual", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("step_started_at", _time, nullable=True),
        sa.Column("created_at", _time, nullable=False),
        sa.Column("updated_at", _time, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=True),
    )
    op.create_table(
        "deployment_event",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("at", _time, nullable=False),
        sa.Column("actor", sa.String(200), nullable=True),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("from_state", _json, nullable=True),
        sa.Column("to_state", _json, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
    )
    op.create_index("ix_deployment_event_name_at", "deployment_event", ["name", "at"])


def downgrade() -> None:
    op.drop_index("ix_deployment_event_name_at", table_name="deployment_event")
    for table in ("deployment_event", "deployment"):
        op.drop_table(table)

"""The model registry: registered models, their versions (artefacts, lineage), aliases and events.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_json = sa.JSON().with_variant(JSONB(), "postgresql")
_time = sa.DateTime(timezone=True)


def _model_column(*, primary_key: bool = False) -> "sa.Column[str]":
    return sa.Column(
        "model",
        sa.String(200),
        sa.ForeignKey("registered_model.name", ondelete="CASCADE"),
        nullable=False,
        primary_key=primary_key,
    )


def upgrade() -> None:
    op.create_table(
        "registered_model",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("last_number", sa.Integer, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("created_at", _time, nullable=False),
        sa.Column("updated_at", _time, nullable=False),
    )
    op.create_table(
        "model_version",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _model_column(),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("base_model", sa.String(500), nullable=True),
        sa.Column("dataset", sa.String(200), nullable=True),
        sa.Column("dataset_version", sa.Integer, nullable=True),
        sa.Column("params", _json, nullable=False),
        sa.Column("metrics", _json, nullable=False),
        sa.Column("job_id", sa.String(32), nullable=True),
        sa.Column("source", _json, nullable=False),
        sa.Column("artefacts", _json, nullable=False),
        sa.Column("serving", _json, nullable=True),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("created_at", _time, nullable=False),
        sa.UniqueConstraint("model", "number", name="uq_model_version_number"),
    )
    op.create_index("ix_model_version_dataset", "model_version", ["dataset", "dataset_version"])
    op.create_table(
        "model_alias",
        _model_column(primary_key=True),
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=True),
        sa.Column("updated_at", _time, nullable=False),
    )
    op.create_table(
        "model_event",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _model_column(),
        sa.Column("alias", sa.String(64), nullable=True),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("from_version", sa.Integer, nullable=True),
        sa.Column("to_version", sa.Integer, nullable=True),
        sa.Column("author", sa.String(200), nullable=True),
        sa.Column("created_at", _time, nullable=False),
    )
    op.create_index("ix_model_event_model", "model_event", ["model", "id"])


def downgrade() -> None:
    for table in ("model_event", "model_alias", "model_version", "registered_model"):
        op.drop_table(table)

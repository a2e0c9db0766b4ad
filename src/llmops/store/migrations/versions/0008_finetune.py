"""Fine-tuning runs.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_json = sa.JSON().with_variant(JSONB(), "postgresql")
_time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "finetune_run",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=True, unique=True),
        sa.Column("base_model", sa.String(500), nullable=False),
        sa.Column("dataset", sa.String(200), nullable=True),
        sa.Column("dataset_version", sa.Integer, nullable=True),
        sa.Column("data_file", sa.Text, nullable=True),
        sa.Column("validation_file", sa.Text, nullable=True),
        sa.Column("params", _json, nullable=False),
        sa.Column("options", _json, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("job_id", sa.String(32), nullable=True),
        sa.Column("workdir", sa.Text, nullable=False),
        sa.Column("progress", _json, nullable=True),
        sa.Column("curves", _json, nullable=True),
        sa.Column("result", _json, nullable=True),
        sa.Column("model_version", sa.String(250), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("created_at", _time, nullable=False),
        sa.Column("started_at", _time, nullable=True),
        sa.Column("finished_at", _time, nullable=True),
    )
    op.create_index("ix_finetune_run_created_at", "finetune_run", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_finetune_run_created_at", table_name="finetune_run")
    op.drop_table("finetune_run")

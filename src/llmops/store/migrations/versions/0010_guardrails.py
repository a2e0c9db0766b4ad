"""Guardrails: rules managed through the admin API, and each trace's guardrail outcome.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_json = sa.JSON().with_variant(JSONB(), "postgresql")
_time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "guardrail",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("config", _json, nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", _time, nullable=False),
        sa.Column("updated_at", _time, nullable=False),
    )
    # "|rule:action|rule:action|" for the rules that triggered on the request; NULL when none did
    with op.batch_alter_table("trace") as batch:
        batch.add_column(sa.Column("guardrail", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trace") as batch:
        batch.drop_column("guardrail")
    op.drop_table("guardrail")

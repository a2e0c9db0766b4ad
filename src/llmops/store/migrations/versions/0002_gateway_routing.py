"""Traces record the deployment that answered and the response cache's verdict.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trace") as batch:
        batch.add_column(sa.Column("deployment", sa.String(200), nullable=True))
        batch.add_column(sa.Column("cache_status", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trace") as batch:
        batch.drop_column("cache_status")
        batch.drop_column("deployment")

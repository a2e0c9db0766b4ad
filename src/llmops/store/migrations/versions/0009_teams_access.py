"""Teams and access control: teams and members, key roles/limits/rotation, spend, credentials, audit.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_json = sa.JSON().with_variant(JSONB(), "postgresql")
_time = sa.DateTime(timezone=True)
_OWNED = ("prompt", "dataset", "eval_run")  # what a team owns besides its keys

_SQLITE_GUARDS = [
    "CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event "
    "BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END",
    "CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event "
    "BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END",
]
_POSTGRES_GUARDS = [
    "CREATE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'audit events are append-only'; END $$",
    "CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event "
    "FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()",
    "CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only()",
]


def upgrade() -> None:
    op.create_table(
        "team",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("models", _json, nullable=True),
        sa.Column("limits", _json, nullable=True),
        sa.Column("metadata", _json, nullable=True),
        sa.Column("created_at", _time, nullable=False),
    )
    op.create_table(
        "team_member",
        sa.Column("team_id", sa.String(40), sa.ForeignKey("team.id"), primary_key=True),
        sa.Column("user", sa.String(200), primary_key=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("added_at", _time, nullable=False),
    )
    with op.batch_alter_table("api_key") as batch:
        batch.add_column(sa.Column("team_id", sa.String(40), nullable=True))
        batch.add_column(sa.Column("models", _json, nullable=True))
        batch.add_column(sa.Column("expires_at", _time, nullable=True))
        batch.add_column(sa.Column("limits", _json, nullable=True))
        batch.add_column(sa.Column("metadata", _json, nullable=True))
        batch.add_column(sa.Column("previous_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("previous_valid_until", _time, nullable=True))
        batch.add_column(sa.Column("rotated_at", _time, nullable=True))
        batch.create_index("ix_api_key_team_id", ["team_id"])
        batch.create_unique_constraint("uq_api_key_previous_hash", ["previous_hash"])
    for table in _OWNED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("team_id", sa.String(40), nullable=True))
            batch.create_index(f"ix_{table}_team_id", ["team_id"])
    op.create_table(
        "spend",
        sa.Column("scope", sa.String(8), primary_key=True),
        sa.Column("scope_id", sa.String(40), primary_key=True),
        sa.Column("period", sa.String(8), primary_key=True),
        sa.Column("bucket", sa.String(10), primary_key=True),
        sa.Column("nano_usd", sa.BigInteger, nullable=False),
        sa.Column("updated_at", _time, nullable=False),
    )
    op.create_table(
        "credential",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("nonce", sa.LargeBinary, nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("created_at", _time, nullable=False),
        sa.Column("updated_at", _time, nullable=False),
    )
    op.create_table(
        "audit_event",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("at", _time, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("actor_key_id", sa.String(40), nullable=True),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("target_type", sa.String(40), nullable=False),
        sa.Column("target", sa.String(300), nullable=True),
        sa.Column("team_id", sa.String(40), nullable=True),
        sa.Column("before", _json, nullable=True),
        sa.Column("after", _json, nullable=True),
    )
    op.create_index("ix_audit_event_at", "audit_event", ["at"])
    op.create_index("ix_audit_event_target", "audit_event", ["target_type", "target"])
    guards = _POSTGRES_GUARDS if op.get_bind().dialect.name == "postgresql" else _SQLITE_GUARDS
    for statement in guards:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE audit_event")
        op.execute("DROP FUNCTION audit_event_append_only()")
    else:
        op.drop_table("audit_event")
    op.drop_table("credential")
    op.drop_table("spend")
    for table in _OWNED:
        with op.batch_alter_table(table) as batch:
            batch.drop_index(f"ix_{table}_team_id")
            batch.drop_column("team_id")
    with op.batch_alter_table("api_key") as batch:
        batch.drop_constraint("uq_api_key_previous_hash", type_="unique")
        batch.drop_index("ix_api_key_team_id")
        for column in (
            "rotated_at",
            "previous_valid_until",
            "previous_hash",
            "metadata",
            "limits",
            "expires_at",
            "models",
            "team_id",
        ):
            batch.drop_column(column)
    op.drop_table("team_member")
    op.drop_table("team")

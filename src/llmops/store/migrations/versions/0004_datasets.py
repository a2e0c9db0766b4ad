"""Datasets (versions with lineage, shared rows), jobs with logs, and annotation queues.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_json = sa.JSON().with_variant(JSONB(), "postgresql")
_time = sa.DateTime(timezone=True)


def upgrade() -> None:
    _datasets()
    _jobs()
    _annotation()


def _datasets() -> None:
    op.create_table(
        "dataset",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("latest_version", sa.Integer, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("created_at", _time, nullable=False),
        sa.Column("updated_at", _time, nullable=False),
    )
    op.create_table(
        "dataset_version",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "dataset", sa.String(200), sa.ForeignKey("dataset.name", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("row_count", sa.Integer, nullable=False),
        sa.Column("parents", _json, nullable=False),
        sa.Column("operation", sa.String(40), nullable=False),
        sa.Column("params", _json, nullable=True),
        sa.Column("report", _json, nullable=True),
        sa.Column("message", sa.Text, nullable=True),
        sa.Column("author", sa.String(200), nullable=True),
        sa.Column("created_at", _time, nullable=False),
        sa.UniqueConstraint("dataset", "number", name="uq_dataset_version_number"),
    )
    op.create_index("ix_dataset_version_hash", "dataset_version", ["content_hash"])
    op.create_table(
        "dataset_row",
        sa.Column("hash", sa.String(64), primary_key=True),
        sa.Column("data", _json, nullable=False),
    )
    op.create_table(
        "dataset_version_row",
        sa.Column(
            "version_id",
            sa.Integer,
            sa.ForeignKey("dataset_version.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("row_hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_dataset_version_row_hash", "dataset_version_row", ["row_hash"])


def _jobs() -> None:
    op.create_table(
        "job",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stage", sa.String(200), nullable=True),
        sa.Column("progress_done", sa.Integer, nullable=False),
        sa.Column("progress_total", sa.Integer, nullable=True),
        sa.Column("params", _json, nullable=True),
        sa.Column("result", _json, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("owner", sa.String(100), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("created_at", _time, nullable=False),
        sa.Column("started_at", _time, nullable=True),
        sa.Column("finished_at", _time, nullable=True),
        sa.Column("heartbeat_at", _time, nullable=True),
    )
    op.create_index("ix_job_kind_created", "job", ["kind", "created_at"])
    op.create_index("ix_job_status", "job", ["status"])
    op.create_table(
        "job_log",
        sa.Column("job_id", sa.String(32), sa.ForeignKey("job.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("at", _time, nullable=False),
        sa.Column("level", sa.String(10), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
    )


def _annotation() -> None:
    op.create_table(
        "annotation_queue",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("dataset", sa.String(200), nullable=True),
        sa.Column("dataset_version", sa.Integer, nullable=True),
        sa.Column("trace_filter", _json, nullable=True),
        sa.Column("label_schema", _json, nullable=False),
        sa.Column("annotators_per_item", sa.Integer, nullable=False),
        sa.Column("instructions", sa.Text, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result_dataset", sa.String(200), nullable=True),
        sa.Column("result_version", sa.Integer, nullable=True),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("created_at", _time, nullable=False),
    )
    op.create_table(
        "annotation_item",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "queue",
            sa.String(200),
            sa.ForeignKey("annotation_queue.name", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("row_hash", sa.String(64), nullable=True),
        sa.Column("trace_id", sa.String(32), nullable=True),
        sa.Column("data", _json, nullable=False),
        sa.UniqueConstraint("queue", "position", name="uq_annotation_item_position"),
    )
    op.create_table(
        "annotation_assignment",
        sa.Column(
            "item_id",
            sa.String(32),
            sa.ForeignKey("annotation_item.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("annotator", sa.String(200), primary_key=True),
        sa.Column("queue", sa.String(200), nullable=False),
        sa.Column("assigned_at", _time, nullable=False),
        sa.Column("expires_at", _time, nullable=False),
        sa.Column("skipped_at", _time, nullable=True),
    )
    op.create_index("ix_annotation_assignment_queue", "annotation_assignment", ["queue", "annotator"])
    op.create_table(
        "annotation",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "item_id",
            sa.String(32),
            sa.ForeignKey("annotation_item.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("queue", sa.String(200), nullable=False),
        sa.Column("annotator", sa.String(200), nullable=False),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("correction", sa.Text, nullable=True),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("created_at", _time, nullable=False),
        sa.UniqueConstraint("item_id", "annotator", name="uq_annotation_item_annotator"),
    )
    op.create_index("ix_annotation_queue", "annotation", ["queue", "annotator"])


def downgrade() -> None:
    for table in (
        "annotation",
        "annotation_assignment",
        "annotation_item",
        "annotation_queue",
        "job_log",
        "job",
        "dataset_version_row",
        "dataset_row",
        "dataset_version",
        "dataset",
    ):
        op.drop_table(table)

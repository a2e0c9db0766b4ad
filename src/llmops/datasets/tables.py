"""The dataset tables (migration 0004), on the shared metadata of :mod:`llmops.store.tables`.

- ``dataset``: one row per name, with the number of its latest version.
- ``dataset_version``: immutable, numbered 1, 2, 3 per dataset; ``content_hash`` is the SHA-256 over
  its rows' hashes in order; lineage: ``parents`` (``name@number`` strings), ``operation`` and its
  ``params``, ``author`` and ``created_at``; ``report`` holds what a cleaning run did, step by step.
- ``dataset_row``: each distinct row once, keyed by the SHA-256 of its canonical JSON; versions share rows.
- ``dataset_version_row``: which rows a version holds, in order.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint

from llmops.store.tables import JsonValue, UtcDateTime, metadata

datasets = Table(
    "dataset",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("description", Text, nullable=True),
    Column("latest_version", Integer, nullable=False),
    Column("created_by", String(200), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("team_id", String(40), nullable=True, index=True),
)

dataset_versions = Table(
    "dataset_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dataset", String(200), ForeignKey("dataset.name", ondelete="CASCADE"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("row_count", Integer, nullable=False),
    Column("parents", JsonValue, nullable=False),
    Column("operation", String(40), nullable=False),
    Column("params", JsonValue, nullable=True),
    Column("report", JsonValue, nullable=True),
    Column("message", Text, nullable=True),
    Column("author", String(200), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("dataset", "number", name="uq_dataset_version_number"),
    Index("ix_dataset_version_hash", "content_hash"),
)

dataset_rows = Table(
    "dataset_row",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("data", JsonValue, nullable=False),
)

dataset_version_rows = Table(
    "dataset_version_row",
    metadata,
    Column("version_id", Integer, ForeignKey("dataset_version.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("row_hash", String(64), nullable=False),
    Index("ix_dataset_version_row_hash", "row_hash"),
)

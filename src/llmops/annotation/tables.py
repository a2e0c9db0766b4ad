"""The annotation tables (migration 0004): queues of items that people label, score or correct.

- ``annotation_queue``: a name, where its items came from (a dataset version or a set of traces), the
  label schema (categories, a score range, whether a corrected output is asked for), how many
  annotators each item needs, and the dataset version its accepted annotations became.
- ``annotation_item``: one row or trace to annotate, in order, with the content shown.
- ``annotation_assignment``: which annotator was handed which item and when (an item handed out is
  "seen" even before it is answered, and a lease keeps two people from taking its last slot at once);
  ``skipped_at`` is set when the annotator passed on it (the slot is free again, the item stays seen).
- ``annotation``: one annotator's answer on one item (at most one each).
"""

from __future__ import annotations

from sqlalchemy import Column, Float, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint

from llmops.store.tables import JsonValue, UtcDateTime, metadata

annotation_queues = Table(
    "annotation_queue",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("source", String(20), nullable=False),  # dataset | traces
    Column("dataset", String(200), nullable=True),
    Column("dataset_version", Integer, nullable=True),
    Column("trace_filter", JsonValue, nullable=True),
    Column("label_schema", JsonValue, nullable=False),
    Column("annotators_per_item", Integer, nullable=False),
    Column("instructions", Text, nullable=True),
    Column("status", String(16), nullable=False),  # open | closed
    Column("result_dataset", String(200), nullable=True),
    Column("result_version", Integer, nullable=True),
    Column("created_by", String(200), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
)

annotation_items = Table(
    "annotation_item",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("queue", String(200), ForeignKey("annotation_queue.name", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("row_hash", String(64), nullable=True),
    Column("trace_id", String(32), nullable=True),
    Column("data", JsonValue, nullable=False),
    UniqueConstraint("queue", "position", name="uq_annotation_item_position"),
)

annotation_assignments = Table(
    "annotation_assignment",
    metadata,
    Column("item_id", String(32), ForeignKey("annotation_item.id", ondelete="CASCADE"), primary_key=True),
    Column("annotator", String(200), primary_key=True),
    Column("queue", String(200), nullable=False),
    Column("assigned_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("skipped_at", UtcDateTime(), nullable=True),
    Index("ix_annotation_assignment_queue", "queue", "annotator"),
)

annotation_answers = Table(
    "annotation",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("item_id", String(32), ForeignKey("annotation_item.id", ondelete="CASCADE"), nullable=False),
    Column("queue", String(200), nullable=False),
    Column("annotator", String(200), nullable=False),
    Column("label", String(200), nullable=True),
    Column("score", Float, nullable=True),
    Column("correction", Text, nullable=True),
    Column("comment", Text, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("item_id", "annotator", name="uq_annotation_item_annotator"),
    Index("ix_annotation_queue", "queue", "annotator"),
)

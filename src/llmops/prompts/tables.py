"""The prompt registry's tables (migration 0003), on the shared metadata of :mod:`llmops.store.tables`.

- ``prompt``: one row per name, with prompt-level metadata (description, tags).
- ``registry_revision``: one counter per area (``prompts``), bumped in the same transaction as every
  change, which each replica polls (one row, every few seconds) to drop what it cached.
- ``prompt_version``: immutable content, numbered 1, 2, 3 per prompt and unique by content hash.
- ``prompt_label``: where each label points now; ``prompt_label_event``: every move, with who and when.
- ``experiment`` / ``experiment_variant``: A/B/n tests between versions of one prompt.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from llmops.store.tables import JsonValue, UtcDateTime, metadata

registry_revisions = Table(
    "registry_revision",
    metadata,
    Column("area", String(40), primary_key=True),
    Column("revision", Integer, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

prompts = Table(
    "prompt",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("kind", String(10), nullable=False),
    Column("description", Text, nullable=True),
    Column("tags", JsonValue, nullable=True),
    Column("latest_version", Integer, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("team_id", String(40), nullable=True, index=True),
)

prompt_versions = Table(
    "prompt_version",
    metadata,
    Column("prompt", String(200), ForeignKey("prompt.name", ondelete="CASCADE"), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("content_hash", String(64), nullable=False),
    Column("content", JsonValue, nullable=False),
    Column("message", Text, nullable=True),
    Column("author", String(200), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("prompt", "content_hash", name="uq_prompt_version_hash"),
)

prompt_labels = Table(
    "prompt_label",
    metadata,
    Column("prompt", String(200), ForeignKey("prompt.name", ondelete="CASCADE"), primary_key=True),
    Column("label", String(100), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("updated_by", String(200), nullable=True),
)

prompt_label_events = Table(
    "prompt_label_event",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("prompt", String(200), ForeignKey("prompt.name", ondelete="CASCADE"), nullable=False),
    Column("label", String(100), nullable=False),
    Column("from_version", Integer, nullable=True),
    Column("to_version", Integer, nullable=True),
    Column("action", String(20), nullable=False),  # deploy | rollback | remove | promote
    Column("author", String(200), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_prompt_label_event_prompt", "prompt", "label", "id"),
)

experiments = Table(
    "experiment",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("prompt", String(200), ForeignKey("prompt.name", ondelete="CASCADE"), nullable=False),
    Column("label", String(100), nullable=False),  # requests for this label take part
    Column("status", String(20), nullable=False),  # running | promoted | stopped
    Column("sticky_by", String(20), nullable=False),  # user | header
    Column("description", Text, nullable=True),
    Column("winner", String(100), nullable=True),
    Column("created_by", String(200), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("ended_at", UtcDateTime(), nullable=True),
    Index("ix_experiment_prompt_status", "prompt", "status"),
)

experiment_variants = Table(
    "experiment_variant",
    metadata,
    Column("experiment", String(40), ForeignKey("experiment.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(100), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("weight", Float, nullable=False),
)

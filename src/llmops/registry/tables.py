"""The model registry's tables (migration 0006), on the shared metadata of :mod:`llmops.store.tables`.

- ``registered_model``: one row per model name; ``last_number`` is the last version number given out
  (numbers are never reused, so ``name@3`` always means the same artefacts, even after a deletion).
- ``model_version``: one immutable version: its artefacts (kind, URI, SHA-256, size), serving config,
  base model, dataset version, hyper-parameters, metrics and origin (job, fine-tuning run). A version
  is ``pending`` while its artefacts are copied and ``ready`` once they all are; readers skip pending ones.
- ``model_alias``: where each alias (``production``, ``candidate``) points now.
- ``model_event``: every alias move and version deletion, with who and when.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint

from llmops.store.tables import JsonValue, UtcDateTime, metadata

registered_models = Table(
    "registered_model",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("description", Text, nullable=True),
    Column("last_number", Integer, nullable=False),
    Column("created_by", String(200), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

model_versions = Table(
    "model_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(200), ForeignKey("registered_model.name", ondelete="CASCADE"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("status", String(10), nullable=False),  # pending | ready
    Column("description", Text, nullable=True),
    Column("base_model", String(500), nullable=True),
    Column("dataset", String(200), nullable=True),
    Column("dataset_version", Integer, nullable=True),
    Column("params", JsonValue, nullable=False),
    Column("metrics", JsonValue, nullable=False),
    Column("job_id", String(32), nullable=True),
    Column("source", JsonValue, nullable=False),
    Column("artefacts", JsonValue, nullable=False),
    Column("serving", JsonValue, nullable=True),
    Column("created_by", String(200), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("model", "number", name="uq_model_version_number"),
    Index("ix_model_version_dataset", "dataset", "dataset_version"),
)

model_aliases = Table(
    "model_alias",
    metadata,
    Column("model", String(200), ForeignKey("registered_model.name", ondelete="CASCADE"), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_by", String(200), nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
)

model_events = Table(
    "model_event",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),  # in the order the events happened
    Column("model", String(200), ForeignKey("registered_model.name", ondelete="CASCADE"), nullable=False),
    Column("alias", String(64), nullable=True),  # None: an event of a version (a deletion)
    Column("action", String(20), nullable=False),  # set | remove | delete
    Column("from_version", Integer, nullable=True),
    Column("to_version", Integer, nullable=True),
    Column("author", String(200), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_model_event_model", "model", "id"),
)

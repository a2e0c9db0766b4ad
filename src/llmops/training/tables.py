"""The fine-tuning table (migration 0008), on the shared metadata of :mod:`llmops.store.tables`.

``finetune_run``: one LoRA fine-tuning run: what it trains (base model, dataset version or files),
its hyper-parameters and options, status, the job running it, its working folder (checkpoints and
artefacts), the latest progress report, the loss curves, the result (before/after evaluation,
quantisation report, artefacts) and the registry version it produced.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Table, Text

from llmops.store.tables import JsonValue, UtcDateTime, metadata

finetune_runs = Table(
    "finetune_run",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=True, unique=True),
    Column("base_model", String(500), nullable=False),
    Column("dataset", String(200), nullable=True),
    Column("dataset_version", Integer, nullable=True),
    Column("data_file", Text, nullable=True),
    Column("validation_file", Text, nullable=True),
    Column("params", JsonValue, nullable=False),
    Column("options", JsonValue, nullable=False),
    Column("status", String(16), nullable=False),
    Column("job_id", String(32), nullable=True),
    Column("workdir", Text, nullable=False),
    Column("progress", JsonValue, nullable=True),
    Column("curves", JsonValue, nullable=True),
    Column("result", JsonValue, nullable=True),
    Column("model_version", String(250), nullable=True),
    Column("error", Text, nullable=True),
    Column("created_by", String(200), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("started_at", UtcDateTime(), nullable=True),
    Column("finished_at", UtcDateTime(), nullable=True),
    Index("ix_finetune_run_created_at", "created_at"),
)

"""The guardrail table (migration 0010): rules added through the admin API, beside llmops.yaml's.

A row holds one rule's whole configuration (:class:`~llmops.guardrails.config.GuardrailConfig` as
JSON) under its name; ``revision`` grows with every change, so replicas notice a change by reading
one number.
"""

from __future__ import annotations

from sqlalchemy import Column, Integer, String, Table

from llmops.store.tables import JsonValue, UtcDateTime, metadata

guardrail_rules = Table(
    "guardrail",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("config", JsonValue, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

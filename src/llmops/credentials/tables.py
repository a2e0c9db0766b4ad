"""Credential table (migration 0009), on the shared metadata of :mod:`llmops.store.tables`.

``credential``: a provider API key encrypted with AES-GCM under the master key; ``key_id`` names
the master key it was sealed with (a fingerprint, never the key), so a rotation knows what to redo.
"""

from __future__ import annotations

from sqlalchemy import Column, LargeBinary, String, Table

from llmops.store.tables import UtcDateTime, metadata

credentials = Table(
    "credential",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("nonce", LargeBinary, nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

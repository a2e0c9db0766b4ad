"""Spend table (migration 0009), on the shared metadata of :mod:`llmops.store.tables`.

``spend``: settled spend per key or team and budget period, in nano-USD (integers add up exactly).
``bucket`` names the period's instance: ``2026-11-26`` for a day, ``2026-11`` for a month, ``all``
for the total. The live counters are in memory or Redis; this table is what they start from after
a restart, and what ``llmops keys list`` shows.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, String, Table

from llmops.store.tables import UtcDateTime, metadata

spend = Table(
    "spend",
    metadata,
    Column("scope", String(8), primary_key=True),
    Column("scope_id", String(40), primary_key=True),
    Column("period", String(8), primary_key=True),
    Column("bucket", String(10), primary_key=True),
    Column("nano_usd", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

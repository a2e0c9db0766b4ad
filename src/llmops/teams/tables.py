"""Team tables (migration 0009), on the shared metadata of :mod:`llmops.store.tables`.

``team``: a group that owns API keys, prompts, datasets and evaluation runs, with the models its
keys may use, its own rate limits and budgets. ``team_member``: the people of a team and their role
there (what their keys get when a key is made for them).
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, String, Table

from llmops.store.tables import JsonValue, UtcDateTime, metadata

teams = Table(
    "team",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("models", JsonValue, nullable=True),
    Column("limits", JsonValue, nullable=True),
    Column("metadata", JsonValue, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
)

team_members = Table(
    "team_member",
    metadata,
    Column("team_id", String(40), ForeignKey("team.id"), primary_key=True),
    Column("user", String(200), primary_key=True),
    Column("role", String(20), nullable=False),
    Column("added_at", UtcDateTime(), nullable=False),
)

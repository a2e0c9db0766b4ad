"""Whose things a caller sees: a team scope, and the SQL conditions that keep a query inside it.

A scope is a team id (that team's things only), None (things of no team: what a key of no team sees)
or :data:`ALL_TEAMS` (everything: admin keys, and the CLI, which runs as the machine's owner). Services
take a scope with :data:`ALL_TEAMS` as the default, so a caller that says nothing sees everything, as
before teams existed. What a caller cannot see answers as if it did not exist (404 over the API).

Prompts, datasets and evaluation runs carry a ``team_id`` column; a trace belongs to the team of the
key that made it (a trace of no key, or of a key that is not in the table, belongs to no team).
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import ColumnElement, or_, select

from llmops.store.tables import api_keys, traces

ALL_TEAMS: Final = "*"
"""The scope of an admin: no team filter."""

TeamScope = str | None
"""A team id, None (no team) or :data:`ALL_TEAMS`."""


def sees(scope: TeamScope, owner: str | None) -> bool:
    """Whether a caller of ``scope`` sees a thing owned by team ``owner`` (None: no team)."""
    return scope == ALL_TEAMS or scope == owner


def owner_of_new(scope: TeamScope) -> str | None:
    """The team a thing created by a caller of ``scope`` belongs to (an admin's belongs to no team)."""
    return None if scope == ALL_TEAMS else scope


def owned_by(column: ColumnElement[Any], scope: TeamScope) -> list[ColumnElement[bool]]:
    """The WHERE conditions (none for :data:`ALL_TEAMS`) keeping rows whose ``team_id`` column is visible."""
    if scope == ALL_TEAMS:
        return []
    return [column.is_(None) if scope is None else column == scope]


def traces_of(scope: TeamScope) -> list[ColumnElement[bool]]:
    """The WHERE conditions keeping the traces a caller of ``scope`` sees: those of its team's keys
    (revoked ones too), or for no team those of no key or of a key of no team."""
    if scope == ALL_TEAMS:
        return []
    if scope is None:
        teamed = select(api_keys.c.id).where(api_keys.c.team_id.is_not(None))
        return [or_(traces.c.api_key_id.is_(None), traces.c.api_key_id.not_in(teamed))]
    return [traces.c.api_key_id.in_(select(api_keys.c.id).where(api_keys.c.team_id == scope))]

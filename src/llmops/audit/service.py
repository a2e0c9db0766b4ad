"""The audit log: one append-only row per change made through the admin API or the CLI.

:meth:`AuditService.record` is synchronous (one INSERT) and belongs to the admin path only, never
to the /v1 hot path. Nothing here updates or deletes a row, and the database refuses it anyway
(triggers of migration 0009). ``before`` and ``after`` go through :func:`redact` on the way in.

Errors: :class:`InvalidAuditQuery` (a bad filter, limit or cursor; HTTP 400) and
:class:`AuditEventNotFound` (HTTP 404).
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, or_, select
from sqlalchemy.sql.elements import ColumnElement

from llmops.audit.actor import Actor
from llmops.audit.redaction import redact
from llmops.audit.tables import audit_events
from llmops.errors import NotFoundError, UserError
from llmops.teams.tables import teams

MAX_PAGE_SIZE = 500
# Event ids and cursors: 32 lower-case hex digits, microseconds first so that they sort by time.
ID_PATTERN = r"^[0-9a-f]{32}$"
_ID = re.compile(ID_PATTERN.strip("^$"))
# column widths of migration 0009: longer values are cut rather than refused
_WIDTHS = {"actor": 200, "actor_key_id": 40, "ip": 64, "action": 100, "target_type": 40, "target": 300}


class InvalidAuditQuery(UserError):
    """A filter, limit or cursor that cannot be used."""


class AuditEventNotFound(NotFoundError):
    """No audit event has this id."""

    code = "audit_event_not_found"


@dataclass(frozen=True, slots=True)
class AuditPage:
    items: list[dict[str, Any]]
    next_cursor: str | None


def new_event_id() -> str:
    """Microseconds since the epoch (14 hex digits) and 72 random bits: later events sort after."""
    return f"{time.time_ns() // 1000:014x}{random.getrandbits(72):018x}"


class AuditService:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record(
        self,
        actor: Actor,
        action: str,
        target_type: str,
        target: str | None,
        *,
        before: Any = None,
        after: Any = None,
        team_id: str | None = None,
        secrets: Iterable[str] = (),
        connection: Connection | None = None,
    ) -> None:
        """Append one event; ``secrets`` are values to redact wherever they appear in it.

        With ``connection``, the event is written in the caller's transaction: it exists exactly
        when the change it describes does.
        """
        known = tuple(secrets)
        row = {
            "id": new_event_id(),
            "at": datetime.now(UTC),
            "actor": actor.name,
            "actor_key_id": actor.key_id,
            "source": actor.source,
            "ip": actor.ip,
            "action": action,
            "target_type": target_type,
            "target": target,
            "team_id": team_id if team_id is not None else actor.team_id,
            "before": _storable(redact(before, known)),
            "after": _storable(redact(after, known)),
        }
        for column, width in _WIDTHS.items():
            if isinstance(row[column], str):
                row[column] = _clean(row[column])[:width]
        if connection is not None:
            connection.execute(insert(audit_events).values(**row))
            return
        with self._engine.begin() as own:
            own.execute(insert(audit_events).values(**row))

    def list(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target_type: str | None = None,
        target: str | None = None,
        team_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> AuditPage:
        """Events newest first, ``limit`` at a time; pass ``next_cursor`` back for the older ones.

        ``actor`` matches the actor's name or its key id; ``team_id`` a team's id or name.
        """
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidAuditQuery(f"limit: expected 1 to {MAX_PAGE_SIZE}, got {limit}", param="limit")
        if cursor is not None and not _ID.fullmatch(cursor):
            raise InvalidAuditQuery(f"cursor: not an audit cursor: {cursor!r}", param="cursor")
        columns = audit_events.c
        conditions: list[ColumnElement[bool]] = []
        if actor is not None:
            conditions.append(or_(columns.actor == actor, columns.actor_key_id == actor))
        for column, value in (("action", action), ("target_type", target_type), ("target", target)):
            if value is not None:
                conditions.append(columns[column] == value)
        if team_id is not None:
            named = select(teams.c.id).where(teams.c.name == team_id).scalar_subquery()
            conditions.append(or_(columns.team_id == team_id, columns.team_id == named))
        if since is not None:
            conditions.append(columns.at >= since)
        if until is not None:
            conditions.append(columns.at < until)
        if cursor is not None:
            conditions.append(columns.id < cursor)
        query = select(audit_events).where(*conditions).order_by(columns.id.desc()).limit(limit + 1)
        with self._engine.connect() as connection:
            items = [dict(row._mapping) for row in connection.execute(query)]
        more = len(items) > limit
        items = items[:limit]
        return AuditPage(items, items[-1]["id"] if more else None)

    def get(self, event_id: str) -> dict[str, Any]:
        found = None
        if _ID.fullmatch(event_id):
            with self._engine.connect() as connection:
                found = connection.execute(select(audit_events).where(audit_events.c.id == event_id)).first()
        if found is None:
            raise AuditEventNotFound(f"audit event {event_id!r} not found", param="id")
        return dict(found._mapping)


def _clean(text: str) -> str:
    """No NUL (no Postgres text or JSONB value holds one) and no lone surrogate (not UTF-8)."""
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text.replace("\x00", "\ufffd")


def _storable(value: Any) -> Any:
    """JSON that both backends store: times as ISO text, anything else unknown as its text."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):  # JSON of both backends (and orjson) stops at 64 bits
        return value if -(2**63) <= value < 2**63 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # JSONB has no NaN or infinity
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, dict):
        return {_clean(str(key)): _storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return _clean(str(value))

"""Reading traces and attaching human feedback: the functions behind the CLI and /api/traces.

Errors: :class:`TraceNotFound` (no such trace), :class:`InvalidQuery` (bad filter, cursor or
feedback; the message says which field) and its kind :class:`UnknownKey` (the ``key`` filter names
no API key).

Each function takes an optional ``team`` scope (see :mod:`llmops.store.scope`): the traces made by
that team's keys only, another team's trace being "not found". The default is every trace (the CLI).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection

from llmops.ids import new_id
from llmops.store.keys import KeyRepository
from llmops.store.scope import ALL_TEAMS, TeamScope, sees
from llmops.store.traces import TraceFilter, TraceRepository

MAX_PAGE_SIZE = 500
FeedbackHook = Callable[[Connection, dict[str, Any], dict[str, Any]], None]
"""(connection, the trace's row, the feedback's row): run in the transaction that stores a feedback."""
TreeOf = Callable[[dict[str, Any], TeamScope], list[dict[str, Any]]]
"""(a trace, the caller's scope) -> the roots of its OTel trace's tree (llmops.tracing.otel.tree)."""
STATUSES = ("ok", "error")
GUARDRAIL_ACTIONS = ("block", "redact", "redact_trace", "flag")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Trace ids and cursors are ids from llmops.ids: 32 lower-case hex digits.
ID_PATTERN = r"^[0-9a-f]{32}$"
# A `since` duration: up to 12 digits (longer ones reach past year 1 anyway) and a unit.
DURATION_PATTERN = r"^[0-9]{1,12}[smhdwSMHDW]$"
_ID = re.compile(ID_PATTERN.strip("^$"))
_DURATION = re.compile(DURATION_PATTERN.strip("^$"))
_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)


class TraceNotFound(LookupError):
    pass


class InvalidQuery(ValueError):
    pass


class UnknownKey(InvalidQuery):
    pass


@dataclass(frozen=True, slots=True)
class TracePage:
    items: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class FeedbackInput:
    score: float | None = None
    thumb: Literal["up", "down"] | None = None
    label: str | None = None
    comment: str | None = None
    author: str | None = None


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """'30m', '2h', '7d' (ago) or an ISO 8601 timestamp (UTC when no zone is given), as UTC.

    A moment before year 1 or after year 9999 in UTC is clamped to that bound: it filters the same.
    """
    text = value.strip()
    duration = _DURATION.fullmatch(text)
    if duration is not None:
        seconds = int(text[:-1]) * _DURATION_UNITS[text[-1].lower()]
        try:
            return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
        except OverflowError:
            return _EARLIEST
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidQuery(
            f"since: expected a duration like 30m, 2h, 7d or an ISO time, got {value!r}"
        ) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return _EARLIEST if moment.year == 1 else _LATEST


class TraceService:
    def __init__(
        self,
        traces: TraceRepository,
        keys: KeyRepository,
        *,
        on_feedback: FeedbackHook | None = None,
        tree: TreeOf | None = None,
    ) -> None:
        self._traces = traces
        self._keys = keys
        self._tree = tree
        self._on_feedback = on_feedback  # the rollups count it, in the same transaction

    def list(
        self,
        *,
        model: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        key: str | None = None,
        guardrail: str | None = None,
        guardrail_action: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        team: TeamScope = ALL_TEAMS,
    ) -> TracePage:
        if status is not None and status not in STATUSES:
            raise InvalidQuery(f"status: expected one of {', '.join(STATUSES)}, got {status!r}")
        if guardrail_action is not None and guardrail_action not in GUARDRAIL_ACTIONS:
            raise InvalidQuery(
                f"guardrail_action: expected one of {', '.join(GUARDRAIL_ACTIONS)}, got {guardrail_action!r}"
            )
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidQuery(f"limit: expected 1 to {MAX_PAGE_SIZE}, got {limit}")
        if cursor is not None and not _ID.fullmatch(cursor):
            raise InvalidQuery(f"cursor: not a trace cursor: {cursor!r}")
        where = TraceFilter(
            model=model,
            status=status,
            since=since,
            api_key_id=self._key_id(key, team),
            guardrail=guardrail,
            guardrail_action=guardrail_action,
            team=team,
        )
        items = self._traces.list(where, limit + 1, before_id=cursor)
        more = len(items) > limit
        items = items[:limit]
        return TracePage(items, items[-1]["id"] if more else None)

    def _key_id(self, key: str | None, team: TeamScope) -> str | None:
        """Accept a key id or the name of a key the caller's team sees (another team's: unknown)."""
        if key is None or key.startswith("key_"):
            return key
        for row in self._keys.list(include_revoked=True):
            if row.name == key and sees(team, row.team_id):
                return row.id
        raise UnknownKey(f"key: no API key with id or name {key!r}")

    def get(self, trace_id: str, *, team: TeamScope = ALL_TEAMS) -> dict[str, Any]:
        trace = self._traces.get(trace_id, team) if _ID.fullmatch(trace_id) else None
        if trace is None:
            raise TraceNotFound(f"trace {trace_id!r} not found")
        if self._tree is not None:
            trace["tree"] = self._tree(trace, team)
        return trace

    def add_feedback(
        self, trace_id: str, feedback: FeedbackInput, *, team: TeamScope = ALL_TEAMS
    ) -> dict[str, Any]:
        if feedback.score is None and feedback.thumb is None and not feedback.label and not feedback.comment:
            raise InvalidQuery("feedback: give at least one of score, thumb, label or comment")
        if feedback.thumb not in (None, "up", "down"):
            raise InvalidQuery(f"thumb: expected up or down, got {feedback.thumb!r}")
        if not (_ID.fullmatch(trace_id) and self._traces.exists(trace_id, team)):
            raise TraceNotFound(f"trace {trace_id!r} not found")
        row = {
            "id": new_id(),
            "trace_id": trace_id,
            "created_at": datetime.now(UTC),
            "score": feedback.score,
            "thumb": feedback.thumb,
            "label": feedback.label,
            "comment": feedback.comment,
            "author": feedback.author,
        }
        self._traces.add_feedback(row, self._on_feedback)
        return row

"""Rows of the ``span`` table: stored once per (OTel trace id, span id), read back by OTel trace id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Engine, Executable, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from llmops.store.scope import ALL_TEAMS, TeamScope
from llmops.store.tables import api_keys, traces
from llmops.tracing.otel.tables import spans

NODE_COLUMNS = (
    "otel_trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "service_name",
    "started_at",
    "ended_at",
    "duration_ms",
    "status",
    "status_message",
)


def spans_of(scope: TeamScope) -> list[ColumnElement[bool]]:
    """The spans a caller of ``scope`` sees: those its team's keys sent (as for traces)."""
    if scope == ALL_TEAMS:
        return []
    if scope is None:
        teamed = select(api_keys.c.id).where(api_keys.c.team_id.is_not(None))
        return [or_(spans.c.api_key_id.is_(None), spans.c.api_key_id.not_in(teamed))]
    return [spans.c.api_key_id.in_(select(api_keys.c.id).where(api_keys.c.team_id == scope))]


class SpanRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def insert(self, rows: Sequence[dict[str, Any]]) -> None:
        """Store ``rows`` in one transaction; a span stored already (an exporter's retry) is skipped."""
        if not rows:
            return
        statement: Executable
        if self._engine.dialect.name == "postgresql":
            statement = postgresql.insert(spans).on_conflict_do_nothing()
        else:
            statement = sqlite.insert(spans).on_conflict_do_nothing()
        with self._engine.begin() as connection:
            connection.execute(statement, list(rows))

    def of_trace(
        self, otel_trace_id: str, team: TeamScope = ALL_TEAMS, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """The spans of one OTel trace (the tree's columns), earliest first, at most ``limit``."""
        columns = [spans.c[name] for name in NODE_COLUMNS]
        query = (
            select(*columns)
            .where(spans.c.otel_trace_id == otel_trace_id, *spans_of(team))
            .order_by(spans.c.started_at, spans.c.span_id)
            .limit(limit)
        )
        with self._engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def stored_traces(self, trace_ids: Sequence[str]) -> set[str]:
        """Those of ``trace_ids`` that the trace table holds already (a model call sent again)."""
        if not trace_ids:
            return set()
        query = select(traces.c.id).where(traces.c.id.in_(list(trace_ids)))
        with self._engine.connect() as connection:
            return set(connection.execute(query).scalars())

    def get(self, otel_trace_id: str, span_id: str) -> dict[str, Any] | None:
        query = select(spans).where(spans.c.otel_trace_id == otel_trace_id, spans.c.span_id == span_id)
        with self._engine.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else dict(row._mapping)

    def count(self) -> int:
        with self._engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(spans)).scalar_one())

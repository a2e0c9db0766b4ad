"""Trace and feedback rows: batched inserts from the trace writer, filtered keyset-paged reads.

The trace writer's own insert path (plain tuples, a statement per batch) is
:mod:`llmops.store.trace_rows`, reached through :meth:`TraceRepository.row_sink`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select
from sqlalchemy.sql.elements import ColumnElement

from llmops.store.scope import ALL_TEAMS, TeamScope, traces_of
from llmops.store.tables import feedback, traces
from llmops.store.trace_rows import TraceRowSink, row_sink

SUMMARY_COLUMNS = (
    "id",
    "started_at",
    "endpoint",
    "api_key_id",
    "requested_model",
    "provider",
    "upstream_model",
    "deployment",
    "cache_status",
    "prompt_name",
    "prompt_version",
    "prompt_label",
    "experiment",
    "variant",
    "stream",
    "status",
    "status_code",
    "error_type",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "latency_ms",
    "ttft_ms",
    "guardrail",
)

# what a node of an OTel trace's tree shows (llmops.tracing.otel.tree)
FAMILY_COLUMNS = (
    "id",
    "started_at",
    "endpoint",
    "requested_model",
    "status",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "latency_ms",
    "attributes",
    "otel_trace_id",
    "otel_span_id",
    "otel_parent_span_id",
)


@dataclass(frozen=True, slots=True)
class TraceFilter:
    model: str | None = None
    status: str | None = None
    since: datetime | None = None
    api_key_id: str | None = None
    guardrail: str | None = None  # a guardrail (rule name) that triggered on the request
    guardrail_action: str | None = None  # an action a guardrail took: block, redact, redact_trace, flag
    team: TeamScope = ALL_TEAMS  # only the traces this team's keys made (see llmops.store.scope)


def _like(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern (escape character: backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _row_dict(row: Any) -> dict[str, Any]:
    """Timestamps come back as aware UTC datetimes already (``UtcDateTime``)."""
    return dict(row._mapping)


class TraceRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def row_sink(self, statement_rows: int) -> TraceRowSink:
        """The fast insert path for the trace writer, ``statement_rows`` rows a statement."""
        return row_sink(self._engine, statement_rows)

    def insert_many(self, rows: Sequence[dict[str, Any]]) -> None:
        """Rows as dicts (``TraceRecord.to_row``), in one transaction, through SQLAlchemy Core."""
        if rows:
            with self._engine.begin() as connection:
                connection.execute(insert(traces), list(rows))

    def get(self, trace_id: str, team: TeamScope = ALL_TEAMS) -> dict[str, Any] | None:
        """A trace with its feedback; None when there is none, or ``team`` does not see it."""
        with self._engine.connect() as connection:
            row = connection.execute(select(traces).where(traces.c.id == trace_id, *traces_of(team))).first()
            if row is None:
                return None
            notes = connection.execute(
                select(feedback)
                .where(feedback.c.trace_id == trace_id)
                .order_by(feedback.c.created_at, feedback.c.id)  # ids only sort to the millisecond
            ).all()
        data = _row_dict(row)
        data["feedback"] = [_row_dict(note) for note in notes]
        return data

    def list(self, where: TraceFilter, limit: int, before_id: str | None = None) -> list[dict[str, Any]]:
        """Newest first; pass the last id of a page as ``before_id`` to get the next page."""
        conditions: list[ColumnElement[bool]] = []
        if where.model is not None:
            conditions.append(traces.c.requested_model == where.model)
        if where.status is not None:
            conditions.append(traces.c.status == where.status)
        if where.since is not None:
            conditions.append(traces.c.started_at >= where.since)
        if where.api_key_id is not None:
            conditions.append(traces.c.api_key_id == where.api_key_id)
        if where.guardrail is not None:
            conditions.append(traces.c.guardrail.like(f"%|{_like(where.guardrail)}:%", escape="\\"))
        if where.guardrail_action is not None:
            conditions.append(traces.c.guardrail.like(f"%:{_like(where.guardrail_action)}|%", escape="\\"))
        if before_id is not None:
            conditions.append(traces.c.id < before_id)
        conditions += traces_of(where.team)
        columns = [traces.c[name] for name in SUMMARY_COLUMNS]
        query = select(*columns).where(*conditions).order_by(traces.c.id.desc()).limit(limit)
        with self._engine.connect() as connection:
            return [_row_dict(row) for row in connection.execute(query)]

    def exists(self, trace_id: str, team: TeamScope = ALL_TEAMS) -> bool:
        query = select(traces.c.id).where(traces.c.id == trace_id, *traces_of(team))
        with self._engine.connect() as connection:
            return connection.execute(query).first() is not None

    def add_feedback(
        self,
        row: dict[str, Any],
        then: Callable[[Connection, dict[str, Any], dict[str, Any]], None] | None = None,
    ) -> None:
        """Store a feedback; ``then(connection, trace, feedback)`` runs in the same transaction."""
        with self._engine.begin() as connection:
            connection.execute(insert(feedback).values(**row))
            if then is not None:
                trace = connection.execute(select(traces).where(traces.c.id == row["trace_id"])).first()
                if trace is not None:
                    then(connection, dict(trace._mapping), row)

    def count(self) -> int:
        with self._engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(traces)).scalar_one())

    def family(
        self, otel_trace_id: str, team: TeamScope = ALL_TEAMS, limit: int = 1000
    ) -> Sequence[dict[str, Any]]:
        """The traces of one OTel trace (the tree's columns), earliest first, at most ``limit``."""
        columns = [traces.c[name] for name in FAMILY_COLUMNS]
        query = (
            select(*columns)
            .where(traces.c.otel_trace_id == otel_trace_id, *traces_of(team))
            .order_by(traces.c.started_at, traces.c.id)
            .limit(limit)
        )
        with self._engine.connect() as connection:
            return [_row_dict(row) for row in connection.execute(query)]


def spend_by_key(
    engine: Engine, key_ids: list[str], now: datetime | None = None
) -> dict[str, dict[str, float]]:
    """USD the traces of each key cost today, this month and in all (UTC): the spend of keys that no
    limit or budget counts (the limiter's ``spend`` table holds only those of limited keys)."""
    if not key_ids:
        return {}
    now = now or datetime.now(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    starts = {"day": day, "month": day.replace(day=1), "total": None}
    found: dict[str, dict[str, float]] = {key: {period: 0.0 for period in starts} for key in key_ids}
    c = traces.c
    with engine.connect() as connection:
        for period, start in starts.items():
            query = (
                select(c.api_key_id, func.coalesce(func.sum(c.cost), 0.0))
                .where(c.api_key_id.in_(key_ids))
                .group_by(c.api_key_id)
            )
            if start is not None:
                query = query.where(c.started_at >= start)
            for key_id, usd in connection.execute(query):
                found[key_id][period] = float(usd)
    return found


def spend_of_keys(engine: Engine, key_ids: list[str]) -> dict[str, float]:
    """What the traces of all these keys (a team's) cost today, this month and in all, together."""
    total = {"day": 0.0, "month": 0.0, "total": 0.0}
    for amounts in spend_by_key(engine, key_ids).values():
        for period, usd in amounts.items():
            total[period] += usd
    return total

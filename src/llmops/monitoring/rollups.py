"""Keeping the trace rollups as traces are written, and rebuilding them from the traces.

:class:`RollupWriter` lives in the trace writer's thread: after each trip to the database it adds the
rows it stored to running totals per time bucket (a minute, five minutes, an hour) and dimension
(model, deployment, API key, prompt name and version), then writes the totals it changed to its own
rows of ``trace_rollup`` (the writer's id is part of the key). Only this writer writes its rows, so an
upsert of the running totals is always right, across any number of replicas. Totals of buckets that
ended more than :data:`KEEP_SECONDS` ago leave memory; a late trace for such a bucket reads the stored
row back first, so nothing is lost or counted twice.

Time buckets come straight from the row's time text (``YYYY-MM-DD HH:MM``...), with no parsing on the
common path. Feedback is added by :func:`add_feedback` to rows of the writer ``feedback`` with atomic
increments. :func:`rebuild` recomputes the rollups of a time range from the traces (after an upgrade, or
to repair), which is also what the tests and the benchmark compare against.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, Engine, and_, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from llmops.monitoring.sketch import QuantileSketch, bucket_of
from llmops.monitoring.tables import trace_rollups
from llmops.store.tables import feedback, traces
from llmops.store.trace_rows import TRACE_COLUMNS, TraceRow

log = logging.getLogger("llmops.monitoring")

GRANULARITIES: dict[str, int] = {"m": 60, "f": 300, "h": 3600}
"""Rollup levels: a minute, five minutes, an hour (seconds each). Minutes are kept for the per-model rows
only: per combination of model, deployment, key and prompt, a minute holds about one trace at moderate
traffic, and its row would cost as much as the trace."""
FLUSH_SECONDS = 2.0  # the rollups of a busy writer are written at most this often
KEEP_SECONDS = 900  # totals of buckets that ended this long ago leave memory
FEEDBACK_WRITER = "feedback"
KEY_COLUMNS = ("model", "deployment", "api_key_id", "prompt_name", "prompt_version")
CACHE_HITS = frozenset({"hit", "semantic-hit"})
ALL = "*"
BY_MODEL = (ALL, ALL, ALL, -1)
"""The other dimensions of the per-model rows: every trace is also added to its model's row of each
bucket, so the most common question (by model, or everything) reads one row per model and bucket
instead of one per combination of model, deployment, key and prompt."""

_AT = {name: TRACE_COLUMNS.index(name) for name in TRACE_COLUMNS}
Key = tuple[str, str, str, str, str, str, int]  # granularity, bucket text, then KEY_COLUMNS


@dataclass(slots=True)
class Totals:
    """The aggregates of one rollup row."""

    requests: int = 0
    errors: int = 0
    errors_by_type: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    cache_lookups: int = 0
    cache_hits: int = 0
    guardrail_triggers: int = 0
    latency: QuantileSketch = field(default_factory=QuantileSketch)
    ttft: QuantileSketch = field(default_factory=QuantileSketch)
    needs_base: bool = False  # created after its bucket left memory: add the stored row first

    def add_row(self, row: TraceRow, latency: int | None, ttft: int | None | Literal[False]) -> None:
        """Add a stored trace; ``latency`` and ``ttft`` are its sketch buckets (False: no TTFT)."""
        self.requests += 1
        if row[_AT["status_code"]] >= 400:
            self.errors += 1
            kind = row[_AT["error_type"]] or "error"
            self.errors_by_type[kind] = self.errors_by_type.get(kind, 0) + 1
        self.prompt_tokens += row[_AT["prompt_tokens"]] or 0
        self.completion_tokens += row[_AT["completion_tokens"]] or 0
        self.cost += row[_AT["cost"]] or 0.0
        cache = row[_AT["cache_status"]]
        if cache is not None:
            self.cache_lookups += 1
            if cache in CACHE_HITS:
                self.cache_hits += 1
        if row[_AT["guardrail"]]:
            self.guardrail_triggers += 1
        self.latency.add_key(latency)
        if ttft is not False:
            self.ttft.add_key(ttft)

    def add_stored(self, stored: Any) -> None:
        """Add a row read back from the table (its running totals so far)."""
        self.requests += stored.requests
        self.errors += stored.errors
        for kind, count in (stored.errors_by_type or {}).items():
            self.errors_by_type[kind] = self.errors_by_type.get(kind, 0) + count
        self.prompt_tokens += stored.prompt_tokens
        self.completion_tokens += stored.completion_tokens
        self.cost += stored.cost
        self.cache_lookups += stored.cache_lookups
        self.cache_hits += stored.cache_hits
        self.guardrail_triggers += stored.guardrail_triggers
        self.latency.merge_json(stored.latency_sketch or {})
        self.ttft.merge_json(stored.ttft_sketch or {})

    def values(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "errors_by_type": self.errors_by_type or None,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost": self.cost,
            "cache_lookups": self.cache_lookups,
            "cache_hits": self.cache_hits,
            "guardrail_triggers": self.guardrail_triggers,
            "latency_sketch": self.latency.to_json() if self.latency.count else None,
            "ttft_sketch": self.ttft.to_json() if self.ttft.count else None,
        }


_FEEDBACK = ("feedback_count", "feedback_score_sum", "feedback_scored", "thumbs_up", "thumbs_down")
_EMPTY_FEEDBACK = {
    "feedback_count": 0,
    "feedback_score_sum": 0.0,
    "feedback_scored": 0,
    "thumbs_up": 0,
    "thumbs_down": 0,
}


def new_writer_id() -> str:
    """This process's rollup rows: host, process and a random part (a restart writes new rows)."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{secrets.token_hex(4)}"


def bucket_texts(time_text: str) -> tuple[str, str, str]:
    """The minute, five-minute and hour bucket of a row's time text ``YYYY-MM-DD HH:MM:SS...``."""
    minute = time_text[:16]
    return minute, f"{minute[:15]}{int(minute[15]) // 5 * 5}", time_text[:13] + ":00"


def bucket_start(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


class RollupWriter:
    """Running totals of the buckets this trace writer has stored rows for (see the module doc).

    Used from the trace writer's one thread only: no locks.
    """

    def __init__(
        self, engine: Engine, writer_id: str | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._engine = engine
        self.writer_id = writer_id or new_writer_id()
        self._clock = clock  # a benchmark replaying a past day gives its own
        self._totals: dict[Key, Totals] = {}
        self._dirty: set[Key] = set()
        self._horizon = _horizon_text(clock())
        self._flushed = clock()

    def add(self, rows: Iterable[TraceRow]) -> None:
        totals, dirty, horizon = self._totals, self._dirty, self._horizon
        for row in rows:
            version = row[_AT["prompt_version"]] or 0
            dims = (
                row[_AT["requested_model"]] or "",
                row[_AT["deployment"]] or "",
                row[_AT["api_key_id"]] or "",
                row[_AT["prompt_name"]] or "",
                version,
            )
            by_model = (dims[0], *BY_MODEL)
            minute, five, hour = bucket_texts(row[_AT["started_at"]])
            latency = bucket_of(row[_AT["latency_ms"]] or 0.0)
            ttft_ms = row[_AT["ttft_ms"]]
            ttft = bucket_of(ttft_ms) if ttft_ms is not None else False
            keys: tuple[Key, ...] = (
                ("m", minute, *by_model),
                ("f", five, *dims),
                ("f", five, *by_model),
                ("h", hour, *dims),
                ("h", hour, *by_model),
            )
            for key in keys:
                entry = totals.get(key)
                if entry is None:
                    entry = totals[key] = Totals(needs_base=key[1] < horizon)
                entry.add_row(row, latency, ttft)
                dirty.add(key)

    @property
    def pending(self) -> bool:
        """Totals changed since they were last written."""
        return bool(self._dirty)

    def flush(self, *, force: bool = False) -> None:
        """Write the changed totals, at most every FLUSH_SECONDS unless ``force`` (raises the database's
        error: the caller retries next trip; the totals stay in memory)."""
        if not force and self._clock() - self._flushed < FLUSH_SECONDS:
            return
        self._flushed = self._clock()
        if not self._dirty:
            self._prune()
            return
        keys = sorted(self._dirty)
        with self._engine.begin() as connection:
            for key in keys:
                entry = self._totals[key]
                if entry.needs_base:
                    stored = connection.execute(
                        select(trace_rollups).where(*_key_clause(key, self.writer_id))
                    ).first()
                    if stored is not None:
                        entry.add_stored(stored)
                    entry.needs_base = False
            _upsert(connection, [self._row(key) for key in keys], increments=False)
        self._dirty.clear()
        self._prune()

    def _row(self, key: Key) -> dict[str, Any]:
        granularity, text, model, deployment, api_key_id, prompt_name, version = key
        return {
            "granularity": granularity,
            "bucket_start": bucket_start(text),
            "writer": self.writer_id,
            "model": model,
            "deployment": deployment,
            "api_key_id": api_key_id,
            "prompt_name": prompt_name,
            "prompt_version": version,
            **self._totals[key].values(),
            **_EMPTY_FEEDBACK,
        }

    def _prune(self) -> None:
        """Forget the totals of buckets long ended (a late row for one reads the stored row back)."""
        self._horizon = horizon = _horizon_text(self._clock())
        if len(self._totals) < 64:
            return
        for key in [key for key in self._totals if key[1] < horizon and key not in self._dirty]:
            del self._totals[key]


def _horizon_text(now: float) -> str:
    """Bucket texts below this belong to buckets that ended at least KEEP_SECONDS ago (an hour bucket
    starts an hour before it ends: the horizon is an hour and KEEP_SECONDS back)."""
    moment = datetime.fromtimestamp(now - KEEP_SECONDS - 3600, UTC)
    return moment.strftime("%Y-%m-%d %H:%M")


def _key_clause(key: Key, writer: str) -> list[Any]:
    granularity, text, *dims = key
    clause = [
        trace_rollups.c.granularity == granularity,
        trace_rollups.c.bucket_start == bucket_start(text),
        trace_rollups.c.writer == writer,
    ]
    clause += [trace_rollups.c[name] == value for name, value in zip(KEY_COLUMNS, dims, strict=True)]
    return clause


_PRIMARY = ["granularity", "bucket_start", "writer", *KEY_COLUMNS]


def _upsert(connection: Connection, rows: Sequence[dict[str, Any]], *, increments: bool) -> None:
    """Insert rows, or on a key that exists: replace the totals (a writer's own row) or add to them."""
    if not rows:
        return
    dialect = connection.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(trace_rollups)
    columns = [name for name in rows[0] if name not in _PRIMARY]
    if increments:  # feedback: its counters add up; the trace totals (and sketches) stay as they are
        updates = {
            name: trace_rollups.c[name] + statement.excluded[name] for name in columns if name in _FEEDBACK
        }
    else:
        updates = {name: statement.excluded[name] for name in columns}
    connection.execute(statement.on_conflict_do_update(index_elements=_PRIMARY, set_=updates), list(rows))


def count_feedback(connection: Connection, trace: dict[str, Any], note: dict[str, Any]) -> None:
    """The feedback hook of :class:`~llmops.tracing.service.TraceService`."""
    add_feedback(connection, trace, note.get("score"), note.get("thumb"))


def add_feedback(
    connection: Connection, trace: dict[str, Any], score: float | None, thumb: str | None
) -> None:
    """Count one feedback on the buckets of its trace (atomic increments: replicas add at once)."""
    started = trace["started_at"]
    text = started.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    rows = []
    for granularity, bucket in zip(GRANULARITIES, bucket_texts(text), strict=True):
        if granularity == "m":
            continue  # minutes are per model only: added below
        rows.append(
            {
                "granularity": granularity,
                "bucket_start": bucket_start(bucket),
                "writer": FEEDBACK_WRITER,
                "model": trace.get("requested_model") or "",
                "deployment": trace.get("deployment") or "",
                "api_key_id": trace.get("api_key_id") or "",
                "prompt_name": trace.get("prompt_name") or "",
                "prompt_version": trace.get("prompt_version") or 0,
                **_ZERO_TOTALS,
                "feedback_count": 1,
                "feedback_score_sum": float(score) if score is not None else 0.0,
                "feedback_scored": 1 if score is not None else 0,
                "thumbs_up": 1 if thumb == "up" else 0,
                "thumbs_down": 1 if thumb == "down" else 0,
            }
        )
    minute = {**rows[0], "granularity": "m", "bucket_start": bucket_start(bucket_texts(text)[0])}
    rows += [
        {**row, "deployment": ALL, "api_key_id": ALL, "prompt_name": ALL, "prompt_version": -1}
        for row in (minute, *rows)
    ]
    _upsert(connection, rows, increments=True)


_ZERO_TOTALS = {
    "requests": 0,
    "errors": 0,
    "errors_by_type": None,
    "prompt_tokens": 0,
    "completion_tokens": 0,
    "cost": 0.0,
    "cache_lookups": 0,
    "cache_hits": 0,
    "guardrail_triggers": 0,
    "latency_sketch": None,
    "ttft_sketch": None,
}


def rebuild(engine: Engine, since: datetime, until: datetime, *, chunk: int = 20_000) -> int:
    """Recompute the rollups of whole hours covering [since, until) from the traces and their feedback
    (every writer's rows there are replaced by one writer ``rebuild:...``); the traces read.

    Live writers keep adding to the buckets under way: rebuild only ranges that ended.
    """
    start = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    end = until.astimezone(UTC)
    if end.minute or end.second or end.microsecond:
        end = end.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    writer = RollupWriter(engine, f"rebuild:{secrets.token_hex(4)}")
    columns = [traces.c[name] for name in TRACE_COLUMNS]
    count = 0
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=chunk).execute(
            select(*columns).where(traces.c.started_at >= start, traces.c.started_at < end)
        )
        for rows in result.partitions(chunk):
            writer.add(_as_row(row) for row in rows)
            count += len(rows)
    with engine.begin() as connection:
        connection.execute(
            delete(trace_rollups).where(
                and_(trace_rollups.c.bucket_start >= start, trace_rollups.c.bucket_start < end)
            )
        )
        for key in writer._totals:
            writer._totals[key].needs_base = False
        _upsert(connection, [writer._row(key) for key in sorted(writer._totals)], increments=False)
        notes = connection.execute(
            select(feedback.c.score, feedback.c.thumb, *(traces.c[name] for name in _FEEDBACK_KEYS))
            .join(traces, traces.c.id == feedback.c.trace_id)
            .where(traces.c.started_at >= start, traces.c.started_at < end)
        ).all()
        for note in notes:
            add_feedback(connection, dict(note._mapping), note.score, note.thumb)
    return count


_FEEDBACK_KEYS = (
    "started_at",
    "requested_model",
    "deployment",
    "api_key_id",
    "prompt_name",
    "prompt_version",
)


def _as_row(row: Any) -> TraceRow:
    """A stored trace as the writer's row tuple (its time as the writer's text, JSON as text)."""
    values = list(row)
    started = values[_AT["started_at"]]
    values[_AT["started_at"]] = started.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return tuple(values)


__all__ = ["GRANULARITIES", "RollupWriter", "Totals", "add_feedback", "rebuild"]

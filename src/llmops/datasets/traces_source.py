"""Production traces as dataset rows: real traffic becomes test or training data.

A chat trace becomes ``{"messages": [...], "expected": answer}``, a completion trace
``{"input": prompt, "expected": answer}``; a prompt-managed request also keeps its ``variables``
(when the server stored them) and ``metadata`` says where the row came from (trace id, model, prompt
and version, time, feedback). Traces stored without content (``trace_content: false``) have nothing
to learn from and are counted as skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, select
from sqlalchemy.sql.elements import ColumnElement

from llmops.datasets.rows import Row
from llmops.errors import UserError
from llmops.store.scope import ALL_TEAMS, TeamScope, traces_of
from llmops.store.tables import feedback, traces

PAGE = 500
THUMBS = ("up", "down")


class InvalidTraceSelection(UserError):
    """A trace filter that cannot be used (bad status, thumb, time or prompt reference)."""


@dataclass(frozen=True)
class TraceSelection:
    """Which traces to take; every field is optional and they combine with AND."""

    model: str | None = None
    prompt: str | None = None
    prompt_version: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    status: str | None = "ok"
    feedback: str | None = None  # up | down: at least one thumb of that kind
    min_score: float | None = None  # at least one feedback score >= this
    label: str | None = None  # at least one feedback with this label
    limit: int | None = None

    def to_params(self) -> dict[str, Any]:
        """For the version's lineage: the filters that were set, times as ISO text."""
        params = {key: value for key, value in asdict(self).items() if value is not None}
        for key in ("since", "until"):
            if key in params:
                params[key] = params[key].isoformat()
        return params


@dataclass
class TraceCounts:
    """How many traces matched and how many had no stored content to turn into a row."""

    matched: int = 0
    skipped_without_content: int = 0


def _conditions(selection: TraceSelection) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if selection.model is not None:
        conditions.append(traces.c.requested_model == selection.model)
    if selection.prompt is not None:
        conditions.append(traces.c.prompt_name == selection.prompt)
    if selection.prompt_version is not None:
        conditions.append(traces.c.prompt_version == selection.prompt_version)
    if selection.since is not None:
        conditions.append(traces.c.started_at >= selection.since)
    if selection.until is not None:
        conditions.append(traces.c.started_at < selection.until)
    if selection.status is not None:
        conditions.append(traces.c.status == selection.status)
    notes: list[ColumnElement[bool]] = []
    if selection.feedback is not None:
        notes.append(feedback.c.thumb == selection.feedback)
    if selection.min_score is not None:
        notes.append(feedback.c.score >= selection.min_score)
    if selection.label is not None:
        notes.append(feedback.c.label == selection.label)
    for note in notes:
        conditions.append(select(feedback.c.id).where((feedback.c.trace_id == traces.c.id) & note).exists())
    return conditions


def select_trace_rows(
    engine: Engine,
    selection: TraceSelection,
    counts: TraceCounts | None = None,
    *,
    team: TeamScope = ALL_TEAMS,
) -> Iterator[tuple[str, Row]]:
    """``(trace_id, row)`` for the matching traces, oldest first, a page per query; with ``team``,
    only the traces that team's keys made (see :mod:`llmops.store.scope`)."""
    counts = counts if counts is not None else TraceCounts()
    columns = [
        traces.c.id,
        traces.c.started_at,
        traces.c.endpoint,
        traces.c.requested_model,
        traces.c.prompt_name,
        traces.c.prompt_version,
        traces.c.status,
        traces.c.request,
        traces.c.response_text,
        traces.c.attributes,
        traces.c.latency_ms,
        traces.c.prompt_tokens,
        traces.c.completion_tokens,
        traces.c.cost,
    ]
    conditions = _conditions(selection) + traces_of(team)
    after: str | None = None
    taken = 0
    while selection.limit is None or taken < selection.limit:
        query = select(*columns).where(*conditions)
        if after is not None:
            query = query.where(traces.c.id > after)
        page = PAGE if selection.limit is None else min(PAGE, selection.limit - taken)
        with engine.connect() as connection:
            found = connection.execute(query.order_by(traces.c.id).limit(page)).all()
            scores = _feedback_of(connection, [row.id for row in found])
        for trace in found:
            counts.matched += 1
            row = trace_row(trace._mapping, scores.get(trace.id, []))
            if row is None:
                counts.skipped_without_content += 1
                continue
            taken += 1
            yield trace.id, row
        if len(found) < page:
            return
        after = found[-1].id


def _feedback_of(connection: Any, trace_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    if not trace_ids:
        return {}
    query = (
        select(feedback.c.trace_id, feedback.c.score, feedback.c.thumb, feedback.c.label)
        .where(feedback.c.trace_id.in_(trace_ids))
        .order_by(feedback.c.created_at, feedback.c.id)
    )
    found: dict[str, list[dict[str, Any]]] = {}
    for trace_id, score, thumb, label in connection.execute(query):
        note = {key: value for key, value in (("score", score), ("thumb", thumb), ("label", label)) if value}
        found.setdefault(trace_id, []).append(note)
    return found


def trace_row(trace: Any, notes: list[dict[str, Any]]) -> Row | None:
    """The dataset row of one trace (its columns as a mapping), or None when it stored no request."""
    request = _json(trace["request"])
    if not isinstance(request, dict):
        return None
    row: Row = {}
    if isinstance(request.get("messages"), list):
        row["messages"] = request["messages"]
    elif isinstance(request.get("prompt"), str):
        row["input"] = request["prompt"]
    elif isinstance(request.get("input"), str):
        row["input"] = request["input"]
    else:
        return None
    if trace["response_text"] is not None:
        row["expected"] = trace["response_text"]
    attributes = _json(trace["attributes"])
    if isinstance(attributes, dict) and isinstance(attributes.get("prompt_variables"), dict):
        row["variables"] = attributes["prompt_variables"]
    metadata: dict[str, Any] = {
        "trace_id": trace["id"],
        "model": trace["requested_model"],
        "started_at": trace["started_at"].isoformat(),
        "status": trace["status"],
    }
    if trace["prompt_name"] is not None:
        metadata["prompt"] = trace["prompt_name"]
        metadata["prompt_version"] = trace["prompt_version"]
    for key in ("latency_ms", "prompt_tokens", "completion_tokens", "cost"):
        if trace.get(key) is not None:
            metadata[key] = trace[key]
    if notes:
        metadata["feedback"] = notes
    row["metadata"] = metadata
    return row


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def selection_from_options(
    *,
    model: str | None = None,
    prompt: str | None = None,
    since: str | None = None,
    until: str | None = None,
    status: str | None = "ok",
    feedback: str | None = None,
    min_score: float | None = None,
    label: str | None = None,
    limit: int | None = None,
) -> TraceSelection:
    """A selection from text options as the CLI and the API take them; a bad one is a UserError."""
    from llmops.tracing.service import InvalidQuery, parse_since

    if status not in (None, "ok", "error", "any"):
        raise InvalidTraceSelection(f"status: expected ok, error or any, got {status!r}", param="status")
    if feedback not in (None, *THUMBS):
        raise InvalidTraceSelection(f"feedback: expected up or down, got {feedback!r}", param="feedback")
    if limit is not None and limit < 1:
        raise InvalidTraceSelection("limit: must be at least 1", param="limit")
    prompt_name, prompt_version = _prompt_option(prompt)
    try:
        since_at = None if since is None else parse_since(since)
        until_at = None if until is None else parse_since(until)
    except InvalidQuery as exc:
        raise InvalidTraceSelection(str(exc), param="since") from exc
    return TraceSelection(
        model=model,
        prompt=prompt_name,
        prompt_version=prompt_version,
        since=since_at,
        until=until_at,
        status=None if status == "any" else status,
        feedback=feedback,
        min_score=min_score,
        label=label,
        limit=limit,
    )


def _prompt_option(prompt: str | None) -> tuple[str | None, int | None]:
    if prompt is None:
        return None, None
    name, _, version = prompt.partition("@")
    if not name or (version and not version.isdigit()):
        raise InvalidTraceSelection(f"prompt: expected NAME or NAME@VERSION, got {prompt!r}", param="prompt")
    return name, int(version) if version else None

"""What drift checks read from traffic: windows of time, and a sample of each side's prompts and answers.

A side is either a window of traces (``7d..1d``: from seven days ago to one day ago; ``1d``: the last
day; ``2026-11-01..2026-11-08``: ISO dates or times, UTC when they have no offset), filtered by model,
prompt and the caller's team, or a dataset version (``NAME@V``: its rows' ``input``/``messages`` as
prompts and ``expected``/``completion`` as answers).

:func:`trace_sample` counts every trace of the window and its errors and thumbs with SQL aggregates,
then lets the database draw a seeded uniform sample of at most ``size`` trace ids (:func:`sample_ids`:
only those ids leave it, so a window of millions of traces costs a top-``size`` sort in the database,
not a pass in Python) and reads only their content. The same data and seed give the same sample. The text of
a prompt is the last user message (or the completion prompt, or the embedding input), so that a
constant system prompt or a repeated history does not hide what users ask; lengths are in characters.

Errors: :class:`InvalidWindow` (400) for a window that cannot be read or is empty.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine, and_, case, func, select
from sqlalchemy.sql.elements import ColumnElement

from llmops.datasets.rows import Row
from llmops.errors import UserError
from llmops.store.scope import ALL_TEAMS, TeamScope, traces_of
from llmops.store.tables import feedback, traces

__all__ = [
    "REFUSAL_PHRASES",
    "InvalidWindow",
    "Sample",
    "Window",
    "answer_of_row",
    "is_refusal",
    "parse_window",
    "prompt_of_request",
    "prompt_of_row",
    "sample_ids",
    "sample_rows",
    "trace_sample",
]

FETCH_CHUNK = 500  # ids per content query
_TAIL_START, _TAIL_BITS = 13, 80  # trace ids: 12 hex digits of time, then 20 random (or hashed) ones

# Openings of answers that decline (lower case, straight apostrophes); matched in the first 300 characters.
REFUSAL_PHRASES: tuple[str, ...] = (
    "i'm sorry, but i can",
    "i am sorry, but i can",
    "sorry, i can't",
    "sorry, but i can't",
    "i can't help with",
    "i cannot help with",
    "i can't assist with",
    "i cannot assist with",
    "i can't provide",
    "i cannot provide",
    "i'm not able to help",
    "i am not able to help",
    "i'm unable to",
    "i am unable to",
    "i won't be able to help",
    "i must decline",
    "i can't comply",
    "i cannot comply",
    "as an ai language model, i can",
    "as an ai, i can't",
    "i'm not allowed to",
    "that's not something i can help with",
)
_REFUSAL_WINDOW = 300


class InvalidWindow(UserError):
    """A window of time that cannot be read, or that is empty or inverted."""


@dataclass(frozen=True)
class Window:
    """``[since, until)`` in UTC, and the text it was read from."""

    since: datetime
    until: datetime
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {"window": self.text, "since": self.since, "until": self.until}


def parse_window(text: str, now: datetime | None = None, *, param: str = "window") -> Window:
    """``START..END`` or ``START`` (until now); each end a duration ago (``30m``, ``7d``), an ISO 8601
    date or time, or ``now``."""
    from llmops.tracing.service import InvalidQuery, parse_since

    now = now or datetime.now(UTC)
    start, dots, end = text.strip().partition("..")
    try:
        since = parse_since(start, now) if start and start != "now" else None
        until = now if not dots or end in ("", "now") else parse_since(end, now)
    except InvalidQuery:
        raise InvalidWindow(
            f"{param}: expected START..END or START, each a duration ago (7d, 12h), an ISO 8601 time or "
            f"'now', got {text!r}",
            param=param,
        ) from None
    if since is None:
        raise InvalidWindow(f"{param}: the window {text!r} has no start", param=param)
    if since >= until:
        raise InvalidWindow(f"{param}: the window {text!r} ends before it starts", param=param)
    return Window(since, until, text.strip())


@dataclass
class Sample:
    """What the checks read from one side: sampled texts, and counts over the whole side."""

    prompts: list[str] = field(default_factory=list)  # user texts of the sampled traces or rows
    answers: list[str] = field(default_factory=list)  # answers of the sampled successful traces
    total: int = 0  # traces in the window (rows of the dataset version)
    sampled: int = 0  # traces or rows drawn (with or without content)
    errors: int | None = None  # traces that failed (None: a dataset has no errors)
    thumbs_up: int | None = None
    thumbs_down: int | None = None
    without_content: int = 0  # sampled traces stored without their request

    @property
    def refusals(self) -> int:
        return sum(1 for answer in self.answers if is_refusal(answer))


def is_refusal(text: str) -> bool:
    """Whether an answer opens by declining (see :data:`REFUSAL_PHRASES`)."""
    head = text[:_REFUSAL_WINDOW].lower().replace("\u2019", "'")
    head = re.sub(r"\s+", " ", head)
    return any(phrase in head for phrase in REFUSAL_PHRASES)


# --- text of requests and rows ------------------------------------------------------------------------


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _last_of_role(messages: list[Any], role: str) -> str | None:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == role:
            return _content_text(message.get("content"))
    return None


def prompt_of_request(request: Any) -> str | None:
    """The user's text of a stored request: the last user message, the prompt or the input."""
    if isinstance(request, str | bytes):
        try:
            request = orjson.loads(request)
        except orjson.JSONDecodeError:
            return None
    if not isinstance(request, dict):
        return None
    messages = request.get("messages")
    if isinstance(messages, list):
        return _last_of_role(messages, "user")
    for key in ("prompt", "input"):
        value = request.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
            return "\n".join(value)
    return None


def prompt_of_row(row: Row) -> str | None:
    """A dataset row's prompt: ``input``, ``prompt``, or the last user message of ``messages``."""
    for key in ("input", "prompt"):
        if isinstance(row.get(key), str):
            return str(row[key])
    messages = row.get("messages")
    return _last_of_role(messages, "user") if isinstance(messages, list) else None


def answer_of_row(row: Row) -> str | None:
    """A dataset row's answer: ``expected``, ``completion``, or a last assistant message."""
    for key in ("expected", "completion"):
        if isinstance(row.get(key), str):
            return str(row[key])
    messages = row.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        if messages[-1].get("role") == "assistant":
            return _content_text(messages[-1].get("content"))
    return None


# --- samples ------------------------------------------------------------------------------------------


def _reservoir(items: Iterable[Any], size: int, rng: random.Random) -> tuple[list[Any], int]:
    """A uniform sample of at most ``size`` items (Algorithm R), and how many there were."""
    chosen: list[Any] = []
    seen = 0
    for item in items:
        if seen < size:
            chosen.append(item)
        else:
            slot = rng.randrange(seen + 1)
            if slot < size:
                chosen[slot] = item
        seen += 1
    return chosen, seen


def sample_rows(rows: Iterable[Row], size: int, seed: int) -> Sample:
    """The sample of a dataset version's rows (no errors, no feedback)."""
    chosen, total = _reservoir(rows, size, random.Random(seed))
    sample = Sample(total=total, sampled=len(chosen))
    for row in chosen:
        prompt, answer = prompt_of_row(row), answer_of_row(row)
        if prompt is None and answer is None:
            sample.without_content += 1
        if prompt is not None:
            sample.prompts.append(prompt)
        if answer is not None:
            sample.answers.append(answer)
    return sample


@dataclass(frozen=True)
class TraceFilter:
    """Which traces a side takes: a window, and optionally a model, a prompt (and version), a team."""

    window: Window
    model: str | None = None
    prompt: str | None = None
    prompt_version: int | None = None
    team: TeamScope = ALL_TEAMS

    def conditions(self) -> list[ColumnElement[bool]]:
        found = [traces.c.started_at >= self.window.since, traces.c.started_at < self.window.until]
        if self.model is not None:
            found.append(traces.c.requested_model == self.model)
        if self.prompt is not None:
            found.append(traces.c.prompt_name == self.prompt)
        if self.prompt_version is not None:
            found.append(traces.c.prompt_version == self.prompt_version)
        return found + traces_of(self.team)


def trace_sample(engine: Engine, where: TraceFilter, size: int, seed: int) -> Sample:
    """Counts over the window's traces, and the texts of a seeded sample of at most ``size`` of them."""
    conditions = where.conditions()
    with engine.connect() as connection:
        total, errors = connection.execute(
            select(func.count(), func.coalesce(func.sum(case((traces.c.status == "error", 1), else_=0)), 0))
            .select_from(traces)
            .where(*conditions)
        ).one()
        thumbs: dict[str, int] = {
            thumb: count
            for thumb, count in connection.execute(
                select(feedback.c.thumb, func.count())
                .select_from(feedback.join(traces, feedback.c.trace_id == traces.c.id))
                .where(and_(*conditions), feedback.c.thumb.in_(("up", "down")))
                .group_by(feedback.c.thumb)
            ).all()
        }
    sample = Sample(
        total=int(total),
        errors=int(errors),
        thumbs_up=int(thumbs.get("up", 0)),
        thumbs_down=int(thumbs.get("down", 0)),
    )
    ids = sample_ids(engine, conditions, size, seed)
    sample.sampled = len(ids)
    for request, response_text, status in _contents(engine, sorted(ids)):
        prompt = prompt_of_request(request)
        if prompt is None:
            sample.without_content += 1
            continue
        sample.prompts.append(prompt)
        if status == "ok" and response_text is not None:
            sample.answers.append(response_text)
    return sample


def sample_ids(engine: Engine, conditions: list[ColumnElement[bool]], size: int, seed: int) -> list[str]:
    """A seeded uniform sample of at most ``size`` ids of the traces matching ``conditions``, drawn by the
    database.

    A trace id ends in 20 hex digits that are random (:func:`llmops.ids.new_id`) or a hash (OTLP ingest),
    unrelated to what the trace holds. In the circular order of those tails, the ``size`` ids that follow
    a seeded random pivot are a uniform sample of the window: two ``ORDER BY tail LIMIT`` queries (at or
    after the pivot, then from the start) return them, and nothing else leaves the database.
    """
    pivot = f"{random.Random(seed).getrandbits(_TAIL_BITS):0{_TAIL_BITS // 4}x}"
    tail = func.substr(traces.c.id, _TAIL_START)
    chosen: list[str] = []
    with engine.connect() as connection:
        for part in (tail >= pivot, tail < pivot):
            if len(chosen) >= size:
                break
            query = select(traces.c.id).where(*conditions, part).order_by(tail, traces.c.id)
            chosen += connection.execute(query.limit(size - len(chosen))).scalars().all()
    return chosen


def _contents(engine: Engine, ids: list[str]) -> Iterator[tuple[Any, str | None, str]]:
    columns = (traces.c.request, traces.c.response_text, traces.c.status)
    for start in range(0, len(ids), FETCH_CHUNK):
        chunk = ids[start : start + FETCH_CHUNK]
        with engine.connect() as connection:
            rows = connection.execute(
                select(traces.c.id, *columns).where(traces.c.id.in_(chunk)).order_by(traces.c.id)
            ).all()
        for row in rows:
            yield row.request, row.response_text, row.status

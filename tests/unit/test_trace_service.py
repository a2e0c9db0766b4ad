"""The trace read service: filters, cursors, since parsing and feedback, on SQLite and Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine

from llmops.store import ApiKeyRow, KeyRepository, TraceRepository
from llmops.tracing.record import TraceRecord
from llmops.tracing.service import (
    MAX_PAGE_SIZE,
    FeedbackInput,
    InvalidQuery,
    TraceNotFound,
    TraceService,
    parse_since,
)

BASE = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
ALICE = "key_" + "a" * 32
BOB = "key_" + "b" * 32


def _trace_id(n: int) -> str:
    return f"{n:032x}"


def _row(n: int, **fields: Any) -> dict[str, Any]:
    started = (BASE + timedelta(minutes=n)).timestamp()
    record = TraceRecord(
        id=_trace_id(n),
        started_at=started,
        endpoint="chat.completions",
        requested_model=fields.pop("requested_model", "model-a"),
        stream=False,
        latency_ms=1.0,
    )
    for name, value in fields.items():
        setattr(record, name, value)
    return record.to_row()


@pytest.fixture
def service(db: Engine) -> TraceService:
    keys = KeyRepository(db)
    for key_id, name, revoked in ((ALICE, "alice", None), (BOB, "bob", BASE)):
        keys.add(
            ApiKeyRow(key_id, name, "inference", "sk-llmops-xxxx", BASE, revoked_at=revoked),
            key_id[-32:] * 2,
        )
    TraceRepository(db).insert_many(
        [
            _row(1, requested_model="model-a", api_key_id=ALICE),
            _row(2, requested_model="model-b", api_key_id=BOB, status_code=500),
            _row(3, requested_model="model-a", api_key_id=BOB),
            _row(4, requested_model="model-b", api_key_id=None, status_code=400),
            _row(5, requested_model="model-a", api_key_id=ALICE),
        ]
    )
    return TraceService(TraceRepository(db), keys)


def _ids(page_items: list[dict[str, Any]]) -> list[int]:
    return [int(item["id"], 16) for item in page_items]


def test_list_all_newest_first(service: TraceService) -> None:
    page = service.list()
    assert _ids(page.items) == [5, 4, 3, 2, 1]
    assert page.next_cursor is None


def test_list_filters(service: TraceService) -> None:
    assert _ids(service.list(model="model-b").items) == [4, 2]
    assert _ids(service.list(status="error").items) == [4, 2]
    assert _ids(service.list(status="ok", model="model-a").items) == [5, 3, 1]
    assert _ids(service.list(since=BASE + timedelta(minutes=4)).items) == [5, 4]
    assert service.list(model="nothing").items == []


def test_list_by_key_name_or_id(service: TraceService) -> None:
    assert _ids(service.list(key="alice").items) == [5, 1]
    assert _ids(service.list(key=ALICE).items) == [5, 1]
    assert _ids(service.list(key="bob").items) == [3, 2]  # a revoked key's traces stay findable
    assert _ids(service.list(key=BOB, status="error").items) == [2]
    assert service.list(key="key_" + "f" * 32).items == []  # an id is used as given


def test_unknown_key_name(service: TraceService) -> None:
    with pytest.raises(InvalidQuery, match="key: no API key with id or name 'carol'"):
        service.list(key="carol")


def test_cursor_paging(service: TraceService) -> None:
    first = service.list(limit=2)
    assert _ids(first.items) == [5, 4]
    assert first.next_cursor == _trace_id(4)
    second = service.list(limit=2, cursor=first.next_cursor)
    assert _ids(second.items) == [3, 2]
    assert second.next_cursor == _trace_id(2)
    third = service.list(limit=2, cursor=second.next_cursor)
    assert _ids(third.items) == [1]
    assert third.next_cursor is None


def test_cursor_paging_ends_exactly_on_a_full_page(service: TraceService) -> None:
    first = service.list(limit=5)
    assert len(first.items) == 5
    assert first.next_cursor is None  # no empty page to fetch
    page = service.list(model="model-a", limit=3)
    assert _ids(page.items) == [5, 3, 1]
    assert page.next_cursor is None


def test_cursor_paging_with_filter(service: TraceService) -> None:
    seen: list[int] = []
    cursor: str | None = None
    while True:
        page = service.list(model="model-a", limit=1, cursor=cursor)
        seen += _ids(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [5, 3, 1]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"status": "failed"}, "status"),
        ({"status": "OK"}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": -1}, "limit"),
        ({"limit": MAX_PAGE_SIZE + 1}, "limit"),
        ({"cursor": "nope"}, "cursor"),
        ({"cursor": "A" * 32}, "cursor"),
        ({"cursor": "0" * 31}, "cursor"),
        ({"cursor": "0" * 31 + "g"}, "cursor"),
    ],
)
def test_invalid_queries(service: TraceService, arguments: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidQuery) as exc:
        service.list(**arguments)
    assert str(exc.value).startswith(f"{field}: ")


def test_limit_bounds_accepted(service: TraceService) -> None:
    assert len(service.list(limit=1).items) == 1
    assert len(service.list(limit=MAX_PAGE_SIZE).items) == 5


def test_get_and_not_found(service: TraceService) -> None:
    trace = service.get(_trace_id(3))
    assert trace["id"] == _trace_id(3)
    assert trace["api_key_id"] == BOB
    assert trace["feedback"] == []
    with pytest.raises(TraceNotFound, match="not found"):
        service.get(_trace_id(99))


def test_feedback(service: TraceService) -> None:
    row = service.add_feedback(_trace_id(1), FeedbackInput(thumb="up", comment="good", author="qa"))
    assert row["trace_id"] == _trace_id(1)
    assert row["thumb"] == "up"
    service.add_feedback(_trace_id(1), FeedbackInput(score=0.25, label="relevant"))
    notes = service.get(_trace_id(1))["feedback"]
    assert [(note["thumb"], note["score"], note["label"]) for note in notes] == [
        ("up", None, None),
        (None, 0.25, "relevant"),
    ]
    assert notes[0]["comment"] == "good"
    assert notes[0]["author"] == "qa"
    assert notes[0]["id"] == row["id"]
    assert notes[0]["created_at"].tzinfo is not None


def test_feedback_score_zero_counts_as_given(service: TraceService) -> None:
    service.add_feedback(_trace_id(2), FeedbackInput(score=0.0))
    assert service.get(_trace_id(2))["feedback"][0]["score"] == 0.0


@pytest.mark.parametrize(
    "feedback", [FeedbackInput(), FeedbackInput(author="qa"), FeedbackInput(label="", comment="")]
)
def test_feedback_needs_something(service: TraceService, feedback: FeedbackInput) -> None:
    with pytest.raises(InvalidQuery, match="at least one of"):
        service.add_feedback(_trace_id(1), feedback)
    assert service.get(_trace_id(1))["feedback"] == []


def test_feedback_bad_thumb(service: TraceService) -> None:
    with pytest.raises(InvalidQuery, match="thumb: expected up or down, got 'sideways'"):
        service.add_feedback(_trace_id(1), FeedbackInput(thumb="sideways"))  # type: ignore[arg-type]


def test_feedback_on_missing_trace(service: TraceService) -> None:
    with pytest.raises(TraceNotFound):
        service.add_feedback(_trace_id(99), FeedbackInput(thumb="down"))


NOW = datetime(2026, 5, 10, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "ago"),
    [
        ("30s", timedelta(seconds=30)),
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("1w", timedelta(weeks=1)),
        (" 2H ", timedelta(hours=2)),
        ("0m", timedelta(0)),
    ],
)
def test_parse_since_durations(text: str, ago: timedelta) -> None:
    assert parse_since(text, now=NOW) == NOW - ago


def test_parse_since_defaults_to_now() -> None:
    before = datetime.now(UTC)
    moment = parse_since("1h")
    assert before - timedelta(hours=1, seconds=5) <= moment <= datetime.now(UTC) - timedelta(hours=1)


def test_parse_since_iso() -> None:
    assert parse_since("2026-05-01T12:30:00Z") == datetime(2026, 5, 1, 12, 30, tzinfo=UTC)
    naive = parse_since("2026-05-01T12:30:00")
    assert naive == datetime(2026, 5, 1, 12, 30, tzinfo=UTC)
    assert naive.tzinfo is not None
    offset = parse_since("2026-05-01T14:30:00+02:00")
    assert offset == datetime(2026, 5, 1, 12, 30, tzinfo=UTC)
    assert parse_since("2026-05-01") == datetime(2026, 5, 1, tzinfo=UTC)


def test_since_with_an_offset_filters_by_the_instant(service: TraceService) -> None:
    since = parse_since("2026-05-01T14:03:00+02:00")  # 12:03 UTC
    assert _ids(service.list(since=since).items) == [5, 4, 3]
    since = datetime(2026, 5, 1, 7, 4, tzinfo=timezone(timedelta(hours=-5)))  # 12:04 UTC
    assert _ids(service.list(since=since).items) == [5, 4]


@pytest.mark.parametrize("text", ["", "yesterday", "5x", "-5m", "m", "1.5h", "2026-13-01"])
def test_parse_since_invalid(text: str) -> None:
    with pytest.raises(InvalidQuery, match="since: expected a duration"):
        parse_since(text, now=NOW)

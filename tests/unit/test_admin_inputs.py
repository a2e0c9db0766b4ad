"""Input edges the schemathesis run found or probes, at the service level, on SQLite and Postgres.

Each case used to answer a 500, a wrong status, or to disagree with what the schema declares.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from llmops.gateway.keys import NAME_PATTERN, InvalidKeyRequest, KeyConflict, KeyNotFound, KeyService
from llmops.store import KeyRepository, TraceRepository
from llmops.tracing.service import (
    DURATION_PATTERN,
    FeedbackInput,
    TraceNotFound,
    TraceService,
    UnknownKey,
    parse_since,
)

EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("999999999999w", EARLIEST),  # past year 1: timedelta overflows
        ("99999999d", EARLIEST),  # datetime overflows
        ("0001-01-01T00:00:00+05:00", EARLIEST),  # before year 1 in UTC
        ("9999-12-31T23:59:59-05:00", LATEST),  # after year 9999 in UTC
        ("0001-01-01", datetime(1, 1, 1, tzinfo=UTC)),
        ("2026-05-01T12:30:00.5Z", datetime(2026, 5, 1, 12, 30, 0, 500_000, tzinfo=UTC)),
    ],
)
def test_parse_since_never_overflows(text: str, expected: datetime) -> None:
    assert parse_since(text, now=datetime(2026, 5, 1, tzinfo=UTC)) == expected


def test_parse_since_gives_utc() -> None:
    moment = parse_since("2026-05-01T14:30:00+02:00")
    assert moment.utcoffset() == timedelta(0)
    assert moment == datetime(2026, 5, 1, 12, 30, tzinfo=UTC)


@pytest.mark.parametrize("text", ["30m", "2H", "0s", "123456789012w", "1234567890123w", "1.5h", "5", "m"])
def test_duration_pattern_agrees_with_parse_since(text: str) -> None:
    declared = re.fullmatch(DURATION_PATTERN, text) is not None
    try:
        parse_since(text)
        accepted = True
    except ValueError:
        accepted = False
    assert declared == accepted


@pytest.fixture
def traces(db: Engine) -> TraceService:
    return TraceService(TraceRepository(db), KeyRepository(db))


@pytest.mark.parametrize("trace_id", ["\x00", "nope", "A" * 32, "0" * 31 + "\x00", ""])
def test_malformed_trace_ids_are_not_found(traces: TraceService, trace_id: str) -> None:
    """Never reaches the database, which would refuse a NUL (Postgres) instead of answering."""
    with pytest.raises(TraceNotFound):
        traces.get(trace_id)
    with pytest.raises(TraceNotFound):
        traces.add_feedback(trace_id, FeedbackInput(score=1))


def test_unknown_key_filter_is_its_own_error(traces: TraceService) -> None:
    with pytest.raises(UnknownKey, match="key: no API key with id or name 'nobody'"):
        traces.list(key="nobody")


@pytest.fixture
def keys(db: Engine) -> KeyService:
    return KeyService(KeyRepository(db))


def test_a_key_cannot_revoke_itself(keys: KeyService) -> None:
    me = keys.create("me", "admin").row
    other = keys.create("other", "admin").row
    with pytest.raises(KeyConflict, match="is the one making this request"):
        keys.revoke("me", acting_key_id=me.id)
    with pytest.raises(KeyConflict):
        keys.revoke(me.id, acting_key_id=me.id)
    assert [view.row.id for view in keys.list()] == [me.id, other.id]
    assert keys.revoke("me", acting_key_id=other.id).revoked_at is not None
    assert keys.revoke("other").revoked_at is not None  # the CLI acts as no key


def test_revoking_an_unknown_key_is_not_found(keys: KeyService) -> None:
    with pytest.raises(KeyNotFound, match="no active API key with id or name 'ghost'"):
        keys.revoke("ghost")


def test_a_taken_name_is_a_conflict(keys: KeyService) -> None:
    keys.create("ci", "inference")
    with pytest.raises(KeyConflict, match="exists already"):
        keys.create(" ci ", "admin")


NAMES = [
    "ci",
    " ci2 ",
    "a b",
    "é",
    "\u3000x",
    " ",
    "\u3000",
    "\u2028",
    "a\x00b",
    "\x1c",
    "tab\t",
    "a\nb",
    "\x7f",
    "",
]


def test_name_pattern_agrees_with_the_service(keys: KeyService) -> None:
    """The API declares NAME_PATTERN; the service (shared with the CLI) must accept exactly those names."""
    disagreements = []
    for name in NAMES:
        declared = re.fullmatch(NAME_PATTERN, name) is not None
        try:
            keys.create(name, "inference")
            accepted = True
        except InvalidKeyRequest:
            accepted = False
        if declared != accepted:
            disagreements.append((name, declared, accepted))
    assert disagreements == []
    assert len(keys.list()) == 5

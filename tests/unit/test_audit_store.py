"""The audit log on SQLite and Postgres: recorded redacted, filtered, paged, and never changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, select, text
from sqlalchemy.exc import DBAPIError

from llmops.audit import (
    REDACTED,
    Actor,
    AuditEventNotFound,
    AuditService,
    InvalidAuditQuery,
    cli_actor,
)
from llmops.audit.tables import audit_events
from llmops.teams.tables import teams

ADMIN = Actor(name="ops", source="api", key_id="key_1", ip="10.0.0.7", team_id="team_a")


def test_an_event_is_recorded_redacted_and_read_back(db: Engine) -> None:
    audit = AuditService(db)
    when = datetime.now(UTC)
    audit.record(
        ADMIN,
        "create_key",
        "key",
        "key_9",
        before=None,
        after={
            "name": "app",
            "secret": "sk-llmops-abcdef",
            "note": "made sk-llmops-XYZ for upstream-pass",
            "expires_at": when,
            "ratio": float("nan"),
            "text": "a\x00b",
            "lone": "x\ud800",
        },
        secrets=["upstream-pass"],
    )
    [listed] = audit.list().items
    event = audit.get(listed["id"])
    assert event == listed
    assert event["actor"] == "ops"
    assert event["actor_key_id"] == "key_1"
    assert event["source"] == "api"
    assert event["ip"] == "10.0.0.7"
    assert event["team_id"] == "team_a"  # the actor's team unless one is given
    assert event["action"] == "create_key"
    assert (event["target_type"], event["target"]) == ("key", "key_9")
    assert event["before"] is None
    assert event["after"] == {
        "name": "app",
        "secret": REDACTED,
        "note": f"made {REDACTED} for {REDACTED}",
        "expires_at": when.isoformat(),
        "ratio": "nan",
        "text": "a\ufffdb",
        "lone": "x?",
    }
    assert abs(event["at"] - when) < timedelta(seconds=5)
    with pytest.raises(AuditEventNotFound):
        audit.get("0" * 32)
    with pytest.raises(AuditEventNotFound):
        audit.get("not-an-id")


def test_events_are_listed_newest_first_filtered_and_paged(db: Engine) -> None:
    audit = AuditService(db)
    with db.begin() as connection:
        connection.execute(insert(teams).values(id="team_b", name="blue", created_at=datetime.now(UTC)))
    cli = cli_actor()
    audit.record(ADMIN, "create_key", "key", "key_1")
    audit.record(ADMIN, "revoke_key", "key", "key_1")
    audit.record(cli, "set_credential", "credential", "openai")
    audit.record(ADMIN, "create_team", "team", "team_b", team_id="team_b")
    audit.record(cli, "delete_credential", "credential", "openai")
    recorded = [event["id"] for event in reversed(audit.list().items)]
    assert [audit.get(event_id)["action"] for event_id in recorded] == [
        "create_key",
        "revoke_key",
        "set_credential",
        "create_team",
        "delete_credential",
    ]
    newest_first = list(reversed(recorded))
    assert [event["id"] for event in audit.list().items] == newest_first

    def ids(**filters: object) -> list[str]:
        return [event["id"] for event in audit.list(**filters).items]  # type: ignore[arg-type]

    assert ids(actor="ops") == [recorded[3], recorded[1], recorded[0]]
    assert ids(actor="key_1") == ids(actor="ops")  # the key id names the same actor
    assert ids(actor=cli.name) == [recorded[4], recorded[2]]
    assert ids(action="revoke_key") == [recorded[1]]
    assert ids(target_type="credential", target="openai") == [recorded[4], recorded[2]]
    assert ids(team_id="team_b") == [recorded[3]]
    assert ids(team_id="blue") == [recorded[3]]  # a team's name works too
    assert ids(team_id="team_a") == [recorded[1], recorded[0]]
    assert ids(since=datetime.now(UTC) + timedelta(minutes=1)) == []
    assert ids(until=datetime.now(UTC) - timedelta(minutes=1)) == []
    assert ids(since=datetime.now(UTC) - timedelta(minutes=1), action="create_key") == [recorded[0]]

    seen: list[str] = []
    cursor = None
    while True:
        page = audit.list(limit=2, cursor=cursor)
        seen += [event["id"] for event in page.items]
        if page.next_cursor is None:
            break
        assert len(page.items) == 2
        cursor = page.next_cursor
    assert seen == newest_first
    with pytest.raises(InvalidAuditQuery, match="limit"):
        audit.list(limit=0)
    with pytest.raises(InvalidAuditQuery, match="cursor"):
        audit.list(cursor="xyz")


def test_the_database_refuses_to_change_or_delete_events(db: Engine) -> None:
    audit = AuditService(db)
    audit.record(ADMIN, "create_key", "key", "key_1", after={"name": "app"})
    [event] = audit.list().items
    attempts = [
        "UPDATE audit_event SET actor = 'someone else'",
        "DELETE FROM audit_event",
    ]
    if db.dialect.name == "postgresql":
        attempts.append("TRUNCATE audit_event")
    for statement in attempts:
        with pytest.raises(DBAPIError, match="append-only"), db.begin() as connection:
            connection.execute(text(statement))
    with db.connect() as connection:
        rows = connection.execute(select(audit_events.c.id, audit_events.c.actor)).all()
    assert [tuple(row) for row in rows] == [(event["id"], "ops")]

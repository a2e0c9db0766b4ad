"""The store on SQLite and Postgres: migrations, schema, key and trace repositories, errors."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text

from llmops.schema import metadata
from llmops.store import (
    ApiKeyRow,
    KeyRepository,
    StoreError,
    TraceFilter,
    TraceRepository,
    create_database_engine,
    open_database,
)
from llmops.store.db import head_revision, normalise_url
from llmops.tracing.record import TraceRecord

BASE = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _trace_id(n: int) -> str:
    return f"{n:032x}"


def _row(n: int, **fields: Any) -> dict[str, Any]:
    """A trace row as the writer makes it, started ``n`` minutes after BASE, id ordered by ``n``."""
    started = (BASE + timedelta(minutes=n)).timestamp()
    record = TraceRecord(
        id=_trace_id(n),
        started_at=started,
        endpoint="chat.completions",
        requested_model=fields.pop("requested_model", "model-a"),
        stream=fields.pop("stream", False),
        ended_at=started + 0.5,
        latency_ms=500.0,
    )
    for name, value in fields.items():
        setattr(record, name, value)
    return record.to_row()


# --- database, migrations, schema -------------------------------------------------------------


def test_migrations_create_the_tables(db: Engine) -> None:
    tables = set(inspect(db).get_table_names())
    assert {"api_key", "trace", "feedback", "alembic_version"} <= tables
    with db.connect() as connection:
        assert (
            connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
            == head_revision()
        )


def test_open_database_twice_is_idempotent(database_url: str) -> None:
    first = open_database(database_url)
    try:
        TraceRepository(first).insert_many([_row(1)])
    finally:
        first.dispose()
    second = open_database(database_url)
    try:
        assert TraceRepository(second).count() == 1
        with second.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        assert [tuple(row) for row in versions] == [(head_revision(),)]
    finally:
        second.dispose()


def test_migrated_schema_matches_table_definitions(db: Engine) -> None:
    with db.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'llmops.db'}")
    try:
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
            assert connection.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
        assert (tmp_path / "nested" / "dir" / "llmops.db").is_file()
    finally:
        engine.dispose()


# --- errors and URLs --------------------------------------------------------------------------


def _store_error(url: str) -> str:
    with pytest.raises(StoreError) as exc:
        open_database(url)
    message = str(exc.value)
    assert message
    assert "\n" not in message
    return message


def test_bad_url() -> None:
    assert _store_error("not a url").startswith("invalid database URL")


def test_unsupported_scheme() -> None:
    message = _store_error("mysql://user@localhost/db")
    assert "unsupported database 'mysql'" in message
    assert "sqlite or postgresql" in message


def test_missing_driver_is_a_store_error() -> None:
    assert "psycopg2" in _store_error("postgresql+psycopg2://postgres@127.0.0.1:1/test")


def test_unreachable_postgres() -> None:
    message = _store_error("postgresql+psycopg://postgres@127.0.0.1:1/test")
    assert message.startswith("cannot connect to the database:")
    assert "port 1" in message


def test_sqlite_directory_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert "directory" in _store_error(f"sqlite:///{blocker / 'sub' / 'llmops.db'}")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///tmp/x.db", "sqlite:///tmp/x.db"),
    ],
)
def test_normalise_url(url: str, expected: str) -> None:
    assert normalise_url(url) == expected


def test_plain_postgres_url_uses_psycopg() -> None:
    engine = create_database_engine("postgres://u@127.0.0.1:1/db")
    try:
        assert engine.dialect.name == "postgresql"
        assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()


# --- keys -------------------------------------------------------------------------------------


def _key(name: str, *, seconds: int = 0, scope: str = "inference") -> ApiKeyRow:
    return ApiKeyRow(
        id=f"key_{name}",
        name=name,
        scope=scope,
        prefix="sk-llmops-abcd",
        created_at=BASE + timedelta(seconds=seconds),
        revoked_at=None,
    )


def test_key_add_and_find(db: Engine) -> None:
    keys = KeyRepository(db)
    row = _key("alice", scope="admin")
    keys.add(row, "a" * 64)
    found = keys.find_active_by_hash("a" * 64)
    assert found == row  # timestamps come back as the same aware UTC datetimes on both backends
    assert found is not None
    assert found.created_at.utcoffset() == timedelta(0)
    assert keys.find_active_by_hash("b" * 64) is None


def test_key_revoke(db: Engine) -> None:
    keys = KeyRepository(db)
    keys.add(_key("alice"), "a" * 64)
    keys.add(_key("bob", seconds=1), "b" * 64)
    assert keys.count_active() == 2
    when = BASE + timedelta(hours=1)
    assert keys.revoke("key_alice", when) is True
    assert keys.revoke("key_alice", when) is False  # already revoked
    assert keys.revoke("key_nobody", when) is False
    assert keys.find_active_by_hash("a" * 64) is None
    assert keys.count_active() == 1
    assert set(keys.active_by_hash()) == {"b" * 64}
    assert keys.active_by_hash()["b" * 64].name == "bob"
    assert [row.name for row in keys.list()] == ["bob"]
    everything = keys.list(include_revoked=True)
    assert [row.name for row in everything] == ["alice", "bob"]
    assert everything[0].revoked_at == when
    assert everything[1].revoked_at is None


def test_key_name_taken_only_by_active_keys(db: Engine) -> None:
    keys = KeyRepository(db)
    assert keys.name_taken("alice") is False
    keys.add(_key("alice"), "a" * 64)
    assert keys.name_taken("alice") is True
    assert keys.name_taken("Alice") is False
    keys.revoke("key_alice", BASE)
    assert keys.name_taken("alice") is False


def test_key_list_oldest_first(db: Engine) -> None:
    keys = KeyRepository(db)
    keys.add(_key("late", seconds=30), "c" * 64)
    keys.add(_key("early", seconds=10), "d" * 64)
    keys.add(_key("middle", seconds=20), "e" * 64)
    assert [row.name for row in keys.list()] == ["early", "middle", "late"]


# --- traces -----------------------------------------------------------------------------------


def test_trace_round_trip(db: Engine) -> None:
    repository = TraceRepository(db)
    request = {
        "model": "model-a",
        "messages": [{"role": "user", "content": 'héllo wörld, 你好, 🎉 "quoted" \\ back'}],
        "temperature": 0.5,
        "stop": ["\n"],
        "nested": {"list": [1, 2.5, None, True, False], "empty": {}},
    }
    repository.insert_many(
        [
            _row(
                1,
                api_key_id="key_alice",
                provider="echo",
                upstream_model="up",
                request=request,
                response_text="réponse ✓",
                finish_reason="stop",
                prompt_tokens=10,
                completion_tokens=3,
                usage_source="upstream",
                cost=0.000123,
                ttft_ms=12.5,
                attributes={"choices": ["a", "b"], "ü": 1},
            )
        ]
    )
    trace = repository.get(_trace_id(1))
    assert trace is not None
    assert trace["request"] == request
    assert trace["response_text"] == "réponse ✓"
    assert trace["attributes"] == {"choices": ["a", "b"], "ü": 1}
    assert trace["started_at"] == BASE + timedelta(minutes=1)
    assert trace["started_at"].utcoffset() == timedelta(0)
    assert trace["ended_at"] == BASE + timedelta(minutes=1, seconds=0.5)
    assert trace["status"] == "ok"
    assert trace["status_code"] == 200
    assert trace["stream"] is False
    assert trace["cost"] == pytest.approx(0.000123)
    assert trace["feedback"] == []
    assert repository.get("f" * 32) is None
    assert repository.exists(_trace_id(1)) is True
    assert repository.exists("f" * 32) is False


def test_trace_get_with_feedback(db: Engine) -> None:
    repository = TraceRepository(db)
    repository.insert_many([_row(1), _row(2)])
    for n, thumb in ((2, "down"), (1, "up")):
        repository.add_feedback(
            {
                "id": _trace_id(100 + n),
                "trace_id": _trace_id(1),
                "created_at": BASE + timedelta(days=n),
                "score": 0.5 * n,
                "thumb": thumb,
                "label": None,
                "comment": f"note {n}",
                "author": "qa",
            }
        )
    trace = repository.get(_trace_id(1))
    assert trace is not None
    notes = trace["feedback"]
    assert [note["thumb"] for note in notes] == ["up", "down"]  # oldest first
    assert notes[0]["comment"] == "note 1"
    assert notes[0]["score"] == 0.5
    assert notes[0]["created_at"] == BASE + timedelta(days=1)
    assert notes[0]["created_at"].utcoffset() == timedelta(0)
    other = repository.get(_trace_id(2))
    assert other is not None
    assert other["feedback"] == []


def test_feedback_in_creation_order_even_within_one_millisecond(db: Engine) -> None:
    """Ids sort by time only to the millisecond; notes added faster than that keep their order."""
    repository = TraceRepository(db)
    repository.insert_many([_row(1)])
    for n, micros in ((9, 1), (3, 2), (7, 3)):  # ids in another order than the creation times
        repository.add_feedback(
            {
                "id": _trace_id(n),
                "trace_id": _trace_id(1),
                "created_at": BASE + timedelta(microseconds=micros),
                "label": f"note {micros}",
            }
        )
    trace = repository.get(_trace_id(1))
    assert trace is not None
    assert [note["label"] for note in trace["feedback"]] == ["note 1", "note 2", "note 3"]


def test_feedback_removed_with_its_trace(db: Engine) -> None:
    from llmops.store.tables import feedback, traces

    repository = TraceRepository(db)
    repository.insert_many([_row(1)])
    repository.add_feedback({"id": _trace_id(9), "trace_id": _trace_id(1), "created_at": BASE, "thumb": "up"})
    with db.begin() as connection:
        connection.execute(traces.delete().where(traces.c.id == _trace_id(1)))
    with db.connect() as connection:
        assert connection.execute(select(feedback.c.id)).all() == []


def test_list_newest_first_with_summary_columns(db: Engine) -> None:
    repository = TraceRepository(db)
    repository.insert_many([_row(n, request={"big": "x" * 100}) for n in (3, 1, 2)])
    items = repository.list(TraceFilter(), limit=10)
    assert [item["id"] for item in items] == [_trace_id(3), _trace_id(2), _trace_id(1)]
    assert "request" not in items[0]
    assert "response_text" not in items[0]
    assert items[0]["started_at"] == BASE + timedelta(minutes=3)
    assert repository.list(TraceFilter(), limit=2)[-1]["id"] == _trace_id(2)
    assert repository.count() == 3


def test_list_filters(db: Engine) -> None:
    repository = TraceRepository(db)
    repository.insert_many(
        [
            _row(1, requested_model="model-a", api_key_id="key_a"),
            _row(2, requested_model="model-b", api_key_id="key_a", status_code=500),
            _row(3, requested_model="model-a", api_key_id="key_b", status_code=429),
            _row(4, requested_model="model-b", api_key_id=None),
            _row(5, requested_model="model-a", api_key_id="key_b"),
        ]
    )

    def ids(where: TraceFilter) -> list[int]:
        return [int(item["id"], 16) for item in repository.list(where, limit=100)]

    assert ids(TraceFilter(model="model-a")) == [5, 3, 1]
    assert ids(TraceFilter(model="model-c")) == []
    assert ids(TraceFilter(status="error")) == [3, 2]
    assert ids(TraceFilter(status="ok")) == [5, 4, 1]
    assert ids(TraceFilter(api_key_id="key_b")) == [5, 3]
    assert ids(TraceFilter(since=BASE + timedelta(minutes=3))) == [5, 4, 3]
    naive_utc = (BASE + timedelta(minutes=3)).replace(tzinfo=None)
    assert ids(TraceFilter(since=naive_utc)) == [5, 4, 3]  # naive means UTC on both backends
    assert ids(TraceFilter(model="model-a", status="ok", api_key_id="key_b")) == [5]
    assert ids(TraceFilter(model="model-a", since=BASE + timedelta(minutes=2))) == [5, 3]


def test_since_in_another_time_zone(db: Engine) -> None:
    """An aware ``since`` means the same instant on both backends, whatever its offset."""
    repository = TraceRepository(db)
    repository.insert_many([_row(n) for n in (0, 60, 120)])  # 12:00, 13:00, 14:00 UTC
    plus_two = timezone(timedelta(hours=2))
    since = datetime(2026, 5, 1, 14, 30, tzinfo=plus_two)  # 12:30 UTC
    assert [int(item["id"], 16) for item in repository.list(TraceFilter(since=since), 10)] == [120, 60]
    minus_five = timezone(timedelta(hours=-5))
    since = datetime(2026, 5, 1, 8, 30, tzinfo=minus_five)  # 13:30 UTC
    assert [int(item["id"], 16) for item in repository.list(TraceFilter(since=since), 10)] == [120]


def test_keyset_pagination_has_no_duplicates_or_gaps(db: Engine) -> None:
    repository = TraceRepository(db)
    repository.insert_many([_row(n, requested_model="model-a" if n % 3 else "model-b") for n in range(1, 31)])
    for where, expected in (
        (TraceFilter(), list(range(30, 0, -1))),
        (TraceFilter(model="model-a"), [n for n in range(30, 0, -1) if n % 3]),
    ):
        seen: list[int] = []
        before: str | None = None
        pages = 0
        while True:
            page = repository.list(where, limit=7, before_id=before)
            if not page:
                break
            assert len(page) <= 7
            seen += [int(item["id"], 16) for item in page]
            before = page[-1]["id"]
            pages += 1
        assert seen == expected
        assert pages == -(-len(expected) // 7)


def test_insert_many_is_one_transaction(db: Engine) -> None:
    from sqlalchemy.exc import IntegrityError

    repository = TraceRepository(db)
    repository.insert_many([_row(1)])
    with pytest.raises(IntegrityError):
        repository.insert_many([_row(2), _row(1)])  # duplicate id: the whole batch is refused
    assert repository.count() == 1
    repository.insert_many([])
    assert repository.count() == 1


def test_many_rows_in_one_batch(db: Engine) -> None:
    repository = TraceRepository(db)
    started = time.perf_counter()
    repository.insert_many(
        [_row(n, request={"messages": [{"role": "user", "content": "hi"}]}) for n in range(1000)]
    )
    assert repository.count() == 1000
    assert time.perf_counter() - started < 10


# --- the trace writer's insert path (trace_rows) -----------------------------------------------


def _values(engine: Engine, n: int, **fields: Any) -> tuple[Any, ...]:
    """Row ``n`` as the trace writer queues it for this backend."""
    started = (BASE + timedelta(minutes=n)).timestamp()
    record = TraceRecord(
        id=_trace_id(n),
        started_at=started,
        endpoint="chat.completions",
        requested_model=fields.pop("requested_model", "model-a"),
        stream=False,
        ended_at=started + 0.5,
        latency_ms=500.0,
    )
    for name, value in fields.items():
        setattr(record, name, value)
    return record.values(TraceRepository(engine).row_sink(1).format_time)


@pytest.mark.parametrize(
    ("count", "max_rows", "sizes"),
    [
        (0, 100, []),
        (100, 100, [100]),
        (250, 100, [100, 100, 32, 16, 2]),
        (7, 100, [4, 2, 1]),
        (64, 100, [64]),
        (3, 1, [1, 1, 1]),
    ],
)
def test_statement_sizes(count: int, max_rows: int, sizes: list[int]) -> None:
    from llmops.store.trace_rows import _statement_sizes

    assert _statement_sizes(count, max_rows) == sizes
    assert sum(sizes) == count


def test_row_sink_stores_what_insert_many_stores(db: Engine) -> None:
    repository = TraceRepository(db)
    fields: dict[str, Any] = {
        "request": {"messages": [{"role": "user", "content": "é 🎉"}], "temperature": 0.1},
        "attributes": {"choices": ["a", "b"]},
        "response_text": "answer",
        "prompt_tokens": 3,
        "cost": 1e-6,
    }
    repository.insert_many([_row(1, **dict(fields))])
    with repository.row_sink(100).session() as session:
        session.insert([_values(db, 2, **dict(fields)), _values(db, 3)])
    first, second = repository.get(_trace_id(1)), repository.get(_trace_id(2))
    assert first is not None
    assert second is not None
    for key in ("id", "started_at", "ended_at"):
        first.pop(key), second.pop(key)
    assert first == second
    third = repository.get(_trace_id(3))
    assert third is not None
    assert third["request"] is None
    assert third["started_at"] == BASE + timedelta(minutes=3)


def test_row_sink_batch_is_all_or_nothing(db: Engine) -> None:
    """Seven rows go as 4 + 2 + 1 on SQLite (one transaction) and one COPY on Postgres: a duplicate
    in the last part refuses them all, and the session stays usable."""
    from llmops.store.trace_rows import RowsRefused

    repository = TraceRepository(db)
    sink = repository.row_sink(100)
    with sink.session() as session:
        session.insert([_values(db, 1)])
        with pytest.raises(RowsRefused):
            session.insert([_values(db, n) for n in (2, 3, 4, 5, 6, 7, 1)])
        assert repository.count() == 1
        session.insert([_values(db, n) for n in (2, 3, 4, 5, 6, 7)])
    assert repository.count() == 7


def test_row_sink_nul_is_refused_by_postgres_only(db: Engine) -> None:
    from llmops.store.trace_rows import RowsRefused

    repository = TraceRepository(db)
    row = _values(db, 1, response_text="a\x00b")
    with repository.row_sink(100).session() as session:
        if db.dialect.name == "postgresql":
            with pytest.raises(RowsRefused):
                session.insert([row])
        else:
            session.insert([row])
    assert repository.count() == (0 if db.dialect.name == "postgresql" else 1)


def test_row_sink_unreachable_postgres_is_unavailable() -> None:
    from llmops.store.trace_rows import DatabaseUnavailable

    engine = create_database_engine("postgresql+psycopg://postgres@127.0.0.1:1/nothing")
    try:
        with pytest.raises(DatabaseUnavailable), TraceRepository(engine).row_sink(10).session():
            pass
    finally:
        engine.dispose()


def test_row_sink_locked_sqlite_is_unavailable(tmp_path: Path) -> None:
    import sqlite3

    from sqlalchemy import event

    from llmops.store.trace_rows import DatabaseUnavailable

    engine = open_database(f"sqlite:///{tmp_path / 'locked.db'}")
    event.listen(engine, "connect", lambda connection, _: connection.execute("PRAGMA busy_timeout=50"))
    engine.dispose()
    locker = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        with TraceRepository(engine).row_sink(10).session() as session, pytest.raises(DatabaseUnavailable):
            session.insert([_values(engine, 1)])
        locker.execute("COMMIT")
        with TraceRepository(engine).row_sink(10).session() as session:
            session.insert([_values(engine, 1)])
        assert TraceRepository(engine).count() == 1
    finally:
        locker.close()
        engine.dispose()

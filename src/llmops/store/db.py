"""The database: engine per URL (SQLite in WAL mode or Postgres), migrations applied at start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

_MIGRATION_LOCK_ID = 7_201_314  # Postgres advisory lock: one replica migrates at a time


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


# orjson for JSON columns: the trace writer serialises every request body it stores
_JSON_CODEC: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}


class StoreError(Exception):
    """The database cannot be reached or used; the message is one readable line."""


def normalise_url(url: str) -> str:
    """Accept plain postgres URLs and point them at the psycopg 3 driver we ship."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _enable_sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_database_engine(url: str) -> Engine:
    url = normalise_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"invalid database URL {url!r}") from exc
    try:
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(parsed, connect_args={"check_same_thread": False}, **_JSON_CODEC)
            event.listen(engine, "connect", _enable_sqlite_wal)
            return engine
        if parsed.get_backend_name() != "postgresql":
            raise StoreError(f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql")
        return create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=5, **_JSON_CODEC)
    except OSError as exc:  # the SQLite file's directory cannot be created
        raise StoreError(f"cannot create the database directory: {exc}") from exc
    except (ImportError, ArgumentError) as exc:  # e.g. postgresql+psycopg2 without psycopg2
        raise StoreError(f"unsupported database driver in {parsed.drivername!r}: {exc}") from exc


def _alembic_config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    return config


def head_revision() -> str:
    """The newest migration: what a migrated database's ``alembic_version`` holds."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return str(head)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (safe when several replicas start at once)."""
    from alembic import command

    config = _alembic_config()
    try:
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot migrate the database: {_first_line(exc)}") from exc


def ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def open_database(url: str) -> Engine:
    """Engine for ``url`` with migrations applied; raises StoreError with a readable line."""
    engine = create_database_engine(url)
    try:
        ping(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StoreError(f"cannot connect to the database: {_first_line(exc)}") from exc
    migrate(engine)
    return engine


def _first_line(exc: BaseException) -> str:
    message = str(getattr(exc, "orig", None) or exc)
    return message.strip().splitlines()[0] if message.strip() else type(exc).__name__

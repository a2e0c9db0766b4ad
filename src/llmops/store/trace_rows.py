"""The trace writer's insert path: plain tuples straight to the database driver, many rows a statement.

A trace row is a tuple of plain values in :data:`TRACE_COLUMNS` order: timestamps already in the
backend's text form (:meth:`TraceRowSink.format_time`), JSON columns already serialised to text,
``None`` for SQL NULL. No ORM, no per-row bind processors.

- **SQLite**: one multi-row ``INSERT ... VALUES (...), (...)`` per batch through the raw
  ``sqlite3`` connection, in autocommit mode (one statement, one transaction). The driver releases
  the GIL only while SQLite works on a statement, and a thread that gave the GIL away waits up to
  the interpreter's switch interval (5 ms) to get it back from a busy event loop: one statement
  for a whole batch instead of one step per row (``executemany``) is what lets the writer keep
  pace with the gateway.
- **Postgres**: one ``COPY trace (...) FROM STDIN`` per batch through psycopg 3, in autocommit mode.

A session (:meth:`TraceRowSink.session`) holds one pooled connection for one trip of the writer.

Errors: :class:`RowsRefused` (the database refused the batch: a value it cannot store, a
constraint; retry the rows one by one), :class:`DatabaseUnavailable` (the database cannot be
reached, is locked or went away: keep the rows and retry later).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import chain
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import PoolProxiedConnection

from llmops.store.tables import traces

TraceRow = tuple[Any, ...]

TRACE_COLUMNS: tuple[str, ...] = tuple(column.name for column in traces.columns)
JSON_COLUMNS = frozenset({"request", "attributes"})
_COLUMN_LIST = ", ".join(TRACE_COLUMNS)


class RowsRefused(Exception):
    """The database refused the rows (a value it cannot hold, a constraint): try them one by one."""


class DatabaseUnavailable(Exception):
    """The database cannot take rows now (unreachable, locked, gone away): keep them, retry later."""


def utc_text(suffix: str) -> Callable[[float], str]:
    """Unix seconds as UTC text, ``YYYY-MM-DD HH:MM:SS.ffffff`` then ``suffix``: the same digits as
    ``datetime.fromtimestamp(seconds, UTC)`` (microseconds rounded half to even) at a third of its
    cost, because the text of the last whole second is kept. Runs on the event loop for every trace.
    """
    last = (-1, "")  # (whole second, its text): replaced whole, never torn

    def format_time(seconds: float) -> str:
        nonlocal last
        if seconds < 0:  # before 1970: no fast path
            return datetime.fromtimestamp(seconds, UTC).isoformat(" ", "microseconds")[:26] + suffix
        whole = int(seconds)
        micro = round((seconds - whole) * 1e6)
        if micro >= 1_000_000:
            whole += 1
            micro -= 1_000_000
        cached = last
        if cached[0] != whole:
            cached = last = (whole, datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%d %H:%M:%S."))
        return cached[1] + str(1_000_000 + micro)[1:] + suffix

    return format_time


class TraceRowSession:
    """One connection, checked out for one trip of the writer; every :meth:`insert` is one transaction."""

    def insert(self, rows: Sequence[TraceRow]) -> None:
        raise NotImplementedError


class TraceRowSink:
    """Writes trace rows to one database; one per writer (its sessions are used by one thread at a time)."""

    format_time: Callable[[float], str]
    # rows that go to the database as one statement and transaction (None: a whole trip at once)
    rows_per_statement: int | None

    def __init__(self, engine: Engine, statement_rows: int) -> None:
        """``statement_rows``: the writer's batch size."""
        self._engine = engine
        self._statement_rows = statement_rows
        # what checking out a connection raises when the database cannot be reached: SQLAlchemy's
        # wrappers, and the driver's own errors (a failed connect reaches us unwrapped)
        self._connect_errors: tuple[type[BaseException], ...] = (
            SQLAlchemyError,
            OSError,
            engine.dialect.loaded_dbapi.Error,
        )

    @contextmanager
    def session(self) -> Iterator[TraceRowSession]:
        """A pooled connection in autocommit mode for the rows of one trip.

        A connection that failed is invalidated, never handed back to the pool.
        """
        try:
            connection = self._engine.raw_connection()
        except self._connect_errors as exc:
            raise DatabaseUnavailable(_first_line(exc)) from exc
        healthy = False
        try:
            with self._autocommit(connection) as session:
                yield session
            healthy = True
        finally:
            if healthy:
                connection.close()
            else:
                connection.invalidate()

    @contextmanager
    def _autocommit(self, connection: PoolProxiedConnection) -> Iterator[TraceRowSession]:
        raise NotImplementedError


class SqliteRowSink(TraceRowSink):
    """A statement per batch: binding its values holds the GIL, so batches stay a few hundred rows."""

    def __init__(self, engine: Engine, statement_rows: int) -> None:
        super().__init__(engine, statement_rows)
        self.format_time = utc_text("")  # how SQLAlchemy stores a UTC DateTime on SQLite
        self.rows_per_statement = statement_rows
        self._statements: dict[int, str] = {}

    def statement(self, rows: int) -> str:
        sql = self._statements.get(rows)
        if sql is None:
            values = "(" + ", ".join("?" * len(TRACE_COLUMNS)) + ")"
            sql = f"INSERT INTO trace ({_COLUMN_LIST}) VALUES " + ", ".join([values] * rows)
            self._statements[rows] = sql
        return sql

    @contextmanager
    def _autocommit(self, connection: PoolProxiedConnection) -> Iterator[TraceRowSession]:
        driver = connection.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        limit = driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(TRACE_COLUMNS)
        previous = driver.isolation_level
        try:
            driver.rollback()  # nothing may be pending on a pooled connection; autocommit from here
            driver.isolation_level = None
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(_first_line(exc)) from exc
        try:
            yield _SqliteSession(self, driver, max(1, min(limit, self._statement_rows)))
        finally:
            driver.isolation_level = previous


class _SqliteSession(TraceRowSession):
    def __init__(self, sink: SqliteRowSink, driver: sqlite3.Connection, max_rows: int) -> None:
        self._sink = sink
        self._driver = driver
        self._max_rows = max_rows

    def insert(self, rows: Sequence[TraceRow]) -> None:
        sizes = _statement_sizes(len(rows), self._max_rows)
        if not sizes:
            return
        driver = self._driver
        try:
            if len(sizes) == 1:  # the usual case: a full batch, one statement, one transaction
                driver.execute(self._sink.statement(sizes[0]), list(chain.from_iterable(rows)))
                return
            driver.execute("BEGIN")
            start = 0
            for size in sizes:
                chunk = rows[start : start + size]
                driver.execute(self._sink.statement(size), list(chain.from_iterable(chunk)))
                start += size
            driver.execute("COMMIT")
        except sqlite3.OperationalError as exc:  # locked, busy, I/O, cannot open the file
            _rollback(driver)
            raise DatabaseUnavailable(_first_line(exc)) from exc
        except sqlite3.Error as exc:  # a constraint, a value the driver cannot bind
            _rollback(driver)
            raise RowsRefused(_first_line(exc)) from exc
        except (ValueError, TypeError, OverflowError) as exc:  # e.g. an int over 64 bits
            _rollback(driver)
            raise RowsRefused(_first_line(exc)) from exc


def _rollback(driver: sqlite3.Connection) -> None:
    if driver.in_transaction:
        try:
            driver.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the statement that failed already ended the transaction


def _statement_sizes(count: int, max_rows: int) -> list[int]:
    """Full statements of ``max_rows`` rows, then the rest as powers of two: few distinct SQL texts,
    each prepared once and kept by the driver's statement cache (a text per row count would fill it
    with large prepared statements)."""
    sizes = [max_rows] * (count // max_rows)
    rest = count % max_rows
    bit = 1 << rest.bit_length()
    while rest:
        bit >>= 1
        if rest & bit:
            sizes.append(bit)
            rest -= bit
    return sizes


class PostgresRowSink(TraceRowSink):
    """One COPY for a whole trip: each COPY waits on the server two or three times, and each wait
    gives the GIL away; rows are formatted into the COPY stream in C while it is held."""

    _COPY = f"COPY trace ({_COLUMN_LIST}) FROM STDIN"

    def __init__(self, engine: Engine, statement_rows: int) -> None:
        super().__init__(engine, statement_rows)
        self.format_time = utc_text("+00:00")  # with its offset: the session's time zone plays no part
        self.rows_per_statement = None

    @contextmanager
    def _autocommit(self, connection: PoolProxiedConnection) -> Iterator[TraceRowSession]:
        import psycopg

        driver = connection.driver_connection
        assert isinstance(driver, psycopg.Connection)
        try:
            driver.rollback()
            driver.autocommit = True
        except psycopg.Error as exc:
            raise DatabaseUnavailable(_first_line(exc)) from exc
        yield _PostgresSession(driver)
        try:
            driver.autocommit = False  # as the pool hands it out
        except psycopg.Error as exc:
            raise DatabaseUnavailable(_first_line(exc)) from exc


class _PostgresSession(TraceRowSession):
    def __init__(self, driver: Any) -> None:
        self._driver = driver

    def insert(self, rows: Sequence[TraceRow]) -> None:
        import psycopg

        if not rows:
            return
        try:
            with self._driver.cursor() as cursor, cursor.copy(PostgresRowSink._COPY) as copy:
                for row in rows:
                    copy.write_row(row)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise DatabaseUnavailable(_first_line(exc)) from exc
        except psycopg.Error as exc:  # NUL in text, a value too long, a constraint, a type it cannot adapt
            if self._driver.closed or self._driver.broken:
                raise DatabaseUnavailable(_first_line(exc)) from exc
            raise RowsRefused(_first_line(exc)) from exc
        except (ValueError, TypeError, OverflowError) as exc:
            raise RowsRefused(_first_line(exc)) from exc


def row_sink(engine: Engine, statement_rows: int) -> TraceRowSink:
    if engine.dialect.name == "postgresql":
        return PostgresRowSink(engine, statement_rows)
    if engine.dialect.name == "sqlite":
        return SqliteRowSink(engine, statement_rows)
    raise ValueError(f"no trace row sink for {engine.dialect.name!r}")


def _first_line(exc: BaseException) -> str:
    original = getattr(exc, "orig", None)  # SQLAlchemy's wrapper around the driver's error
    message = str(original if isinstance(original, BaseException) else exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__

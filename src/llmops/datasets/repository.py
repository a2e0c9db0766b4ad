"""SQL for datasets: versions written in one streaming transaction, rows read back in pages.

A version is written row by row inside one transaction: each distinct row goes into ``dataset_row``
once (an existing hash is skipped), and ``dataset_version_row`` lists the version's rows in order.
Nothing is visible until the commit, so a failed import leaves no trace, and memory stays flat however
many rows stream through. Rows are inserted with the driver's own ``executemany`` on JSON text that
was already serialised to hash it, which keeps a million-row import to seconds rather than minutes.

A dataset belongs to the team it was created for (``team_id``; None: no team); reads and writes that
take a ``team`` scope (:mod:`llmops.store.scope`) leave other teams' datasets out.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from llmops.datasets.rows import Row, canonical_json
from llmops.datasets.tables import dataset_version_rows, dataset_versions, datasets
from llmops.store.scope import ALL_TEAMS, TeamScope, owned_by, owner_of_new, sees

BATCH_ROWS = 20_000  # rows per short transaction: fewer commits, far less WAL rewriting of the hash index
ANALYZE_AFTER_ROWS = 10_000  # Postgres: refresh the planner's statistics after a write this large
PENDING = ""  # the content hash of a version still being written: readers skip it
PAGE_ROWS = 1000


@dataclass(frozen=True)
class VersionInfo:
    """One immutable dataset version and its lineage."""

    dataset: str
    number: int
    id: int
    content_hash: str
    row_count: int
    parents: list[str]
    operation: str
    params: dict[str, Any] | None
    report: list[Any] | None
    message: str | None
    author: str | None
    created_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.number}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "version": self.number,
            "ref": self.ref,
            "content_hash": self.content_hash,
            "rows": self.row_count,
            "parents": self.parents,
            "operation": self.operation,
            "params": self.params,
            "report": self.report,
            "message": self.message,
            "author": self.author,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class NewVersion:
    """What describes a version besides its rows."""

    operation: str
    params: dict[str, Any] | None = None
    parents: Sequence[str] = ()
    report: list[Any] | None = None
    message: str | None = None
    author: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class WriteResult:
    version: VersionInfo
    created: bool  # False: the rows equal the latest version's, which is returned instead


RowCounted = Callable[[int], None]


class ForeignDataset(LookupError):
    """The dataset exists but belongs to a team the writer does not see."""


def _version(row: Any) -> VersionInfo:
    data = row._mapping
    return VersionInfo(
        dataset=data["dataset"],
        number=data["number"],
        id=data["id"],
        content_hash=data["content_hash"],
        row_count=data["row_count"],
        parents=list(data["parents"] or []),
        operation=data["operation"],
        params=data["params"],
        report=data["report"],
        message=data["message"],
        author=data["author"],
        created_at=data["created_at"],
    )


class DatasetRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"

    # -- reading -------------------------------------------------------------------------------

    def list_datasets(self, team: TeamScope = ALL_TEAMS) -> list[dict[str, Any]]:
        query = (
            select(datasets, dataset_versions.c.row_count, dataset_versions.c.content_hash)
            .join(
                dataset_versions,
                (dataset_versions.c.dataset == datasets.c.name)
                & (dataset_versions.c.number == datasets.c.latest_version),
            )
            .where(*owned_by(datasets.c.team_id, team))
            .order_by(datasets.c.name)
        )
        with self._engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def get_dataset(self, name: str) -> dict[str, Any] | None:
        with self._engine.connect() as connection:
            row = connection.execute(select(datasets).where(datasets.c.name == name)).first()
        return None if row is None else dict(row._mapping)

    def version(self, name: str, number: int | None) -> VersionInfo | None:
        """Version ``number`` of ``name``, or its latest when ``number`` is None."""
        query = select(dataset_versions).where(
            (dataset_versions.c.dataset == name) & (dataset_versions.c.content_hash != PENDING)
        )
        if number is None:
            query = query.order_by(dataset_versions.c.number.desc()).limit(1)
        else:
            query = query.where(dataset_versions.c.number == number)
        with self._engine.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else _version(row)

    def versions(self, name: str) -> list[VersionInfo]:
        query = (
            select(dataset_versions)
            .where((dataset_versions.c.dataset == name) & (dataset_versions.c.content_hash != PENDING))
            .order_by(dataset_versions.c.number)
        )
        with self._engine.connect() as connection:
            return [_version(row) for row in connection.execute(query)]

    def iter_rows(
        self, version_id: int, *, offset: int = 0, limit: int | None = None
    ) -> Iterator[tuple[int, str, Row]]:
        """``(position, row_hash, row)`` in order, a page per query (no cursor held between pages)."""
        sql = (
            "SELECT vr.position, vr.row_hash, r.data FROM dataset_version_row vr "
            "JOIN dataset_row r ON r.hash = vr.row_hash "
            "WHERE vr.version_id = :version AND vr.position >= :start ORDER BY vr.position LIMIT :page"
        )
        from sqlalchemy import text

        start, remaining = offset, limit
        while remaining is None or remaining > 0:
            page = PAGE_ROWS if remaining is None else min(PAGE_ROWS, remaining)
            with self._engine.connect() as connection:
                fetched = connection.execute(
                    text(sql), {"version": version_id, "start": start, "page": page}
                ).all()
            for position, row_hash, data in fetched:
                yield position, row_hash, orjson.loads(data) if isinstance(data, str | bytes) else data
            if len(fetched) < page:
                return
            start = fetched[-1][0] + 1
            if remaining is not None:
                remaining -= len(fetched)

    def hash_counts(self, version_id: int) -> Counter[str]:
        """How many times each row hash occurs in a version (for diffs)."""
        query = (
            select(dataset_version_rows.c.row_hash, func.count())
            .where(dataset_version_rows.c.version_id == version_id)
            .group_by(dataset_version_rows.c.row_hash)
        )
        with self._engine.connect() as connection:
            return Counter({row_hash: count for row_hash, count in connection.execute(query)})

    def rows_by_hash(self, hashes: Sequence[str]) -> dict[str, Row]:
        from sqlalchemy import text

        found: dict[str, Row] = {}
        for start in range(0, len(hashes), PAGE_ROWS):
            chunk = list(hashes[start : start + PAGE_ROWS])
            with self._engine.connect() as connection:
                statement = text("SELECT hash, data FROM dataset_row WHERE hash IN :hashes").bindparams(
                    _expanding("hashes")
                )
                for row_hash, data in connection.execute(statement, {"hashes": chunk}):
                    found[row_hash] = orjson.loads(data) if isinstance(data, str | bytes) else data
        return found

    # -- writing -------------------------------------------------------------------------------

    def write_version(
        self,
        name: str,
        rows: Iterable[Row],
        meta: NewVersion,
        counted: RowCounted | None = None,
        team: TeamScope = ALL_TEAMS,
    ) -> WriteResult:
        """Write ``rows`` as the next version of ``name`` (created if new), all or nothing.

        Rows go in as a pending version (hidden from readers: no content hash yet), a batch per short
        transaction, so a long import never holds SQLite's write lock for long (the trace writer keeps
        writing). The version gets its number and hash in one last transaction; if anything fails
        before, the pending version and its membership rows are deleted.

        A new dataset belongs to ``team`` (no team for :data:`ALL_TEAMS`); writing to one ``team`` does
        not see raises :class:`ForeignDataset` before any row is written.
        """
        now = datetime.now(UTC)
        self._ensure_dataset(name, meta, now, owner_of_new(team))
        if team != ALL_TEAMS:
            found = self.get_dataset(name)
            if found is None or not sees(team, found["team_id"]):
                raise ForeignDataset(name)
        version_id = self._insert_pending(name, meta, now)
        try:
            digest, count = self._write_rows(version_id, rows, counted)
            return self._finish(name, version_id, digest, count, meta, now)
        except BaseException:
            self._discard(name, version_id)
            raise

    def _ensure_dataset(self, name: str, meta: NewVersion, now: datetime, team_id: str | None) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                _insert_ignore(self._engine, datasets).values(
                    name=name,
                    description=meta.description,
                    latest_version=0,
                    created_by=meta.author,
                    created_at=now,
                    updated_at=now,
                    team_id=team_id,
                )
            )

    def _insert_pending(self, name: str, meta: NewVersion, now: datetime) -> int:
        with self._engine.begin() as connection:
            inserted = connection.execute(
                insert(dataset_versions).values(
                    dataset=name,
                    number=-secrets.randbelow(2**31 - 1) - 1,  # replaced by the real number at the end
                    content_hash=PENDING,
                    row_count=0,
                    parents=list(meta.parents),
                    operation=meta.operation,
                    params=meta.params,
                    report=meta.report,
                    message=meta.message,
                    author=meta.author,
                    created_at=now,
                )
            ).inserted_primary_key
        assert inserted is not None
        return int(inserted[0])

    def _finish(
        self, name: str, version_id: int, digest: str, count: int, meta: NewVersion, now: datetime
    ) -> WriteResult:
        with self._engine.begin() as connection:
            # write first: that takes the lock (the row's on Postgres, the database's on SQLite) before the
            # latest number is read, so two versions finishing at once never get the same number
            connection.execute(update(datasets).where(datasets.c.name == name).values(updated_at=now))
            query = select(datasets.c.latest_version).where(datasets.c.name == name)
            latest: int = connection.execute(query).scalar_one()
            if latest and self._hash_of(connection, name, latest) == digest:
                connection.execute(delete(dataset_versions).where(dataset_versions.c.id == version_id))
                unchanged = True
            else:
                unchanged = False
                connection.execute(
                    update(dataset_versions)
                    .where(dataset_versions.c.id == version_id)
                    .values(
                        number=latest + 1,
                        content_hash=digest,
                        row_count=count,
                        params=meta.params,  # what the run learned while streaming (e.g. rows skipped)
                        report=meta.report,
                        created_at=now,
                    )
                )
                connection.execute(
                    update(datasets)
                    .where(datasets.c.name == name)
                    .values(latest_version=latest + 1, updated_at=now)
                )
        if self._postgres and count >= ANALYZE_AFTER_ROWS:
            self._analyze()
        found = self.version(name, latest if unchanged else latest + 1)
        assert found is not None
        return WriteResult(found, created=not unchanged)

    def _analyze(self) -> None:
        """Fresh planner statistics after a large write: with the stale ones (tables "empty"), Postgres
        plans each page of :meth:`iter_rows` as a scan of every stored row, and reading a million-row
        version takes twenty minutes instead of seconds."""
        with self._engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE dataset_row, dataset_version_row")

    def _discard(self, name: str, version_id: int) -> None:
        """Remove a pending version (and the dataset, if that was all it had)."""
        with self._engine.begin() as connection:
            connection.execute(
                delete(dataset_version_rows).where(dataset_version_rows.c.version_id == version_id)
            )
            connection.execute(delete(dataset_versions).where(dataset_versions.c.id == version_id))
            others = select(dataset_versions.c.id).where(dataset_versions.c.dataset == name).exists()
            connection.execute(delete(datasets).where((datasets.c.name == name) & ~others))

    @staticmethod
    def _hash_of(connection: Connection, name: str, number: int) -> str | None:
        return connection.execute(
            select(dataset_versions.c.content_hash).where(
                (dataset_versions.c.dataset == name) & (dataset_versions.c.number == number)
            )
        ).scalar_one_or_none()

    def _write_rows(
        self, version_id: int, rows: Iterable[Row], counted: RowCounted | None
    ) -> tuple[str, int]:
        digest = hashlib.sha256()
        count = 0
        distinct: dict[str, str] = {}
        members: list[tuple[int, int, str]] = []
        for row in rows:
            row_hash = hashlib.sha256(canonical_json(row)).hexdigest()
            digest.update(row_hash.encode("ascii") + b"\n")
            distinct.setdefault(row_hash, orjson.dumps(row).decode())
            members.append((version_id, count, row_hash))
            count += 1
            if len(members) >= BATCH_ROWS:
                self._flush(distinct, members)
                if counted is not None:
                    counted(count)
        self._flush(distinct, members)
        if counted is not None:
            counted(count)
        return digest.hexdigest(), count

    def _statements(self) -> tuple[str, str]:
        if self._postgres:
            return (
                "INSERT INTO dataset_row (hash, data) VALUES (%s, %s::jsonb) ON CONFLICT (hash) DO NOTHING",
                "INSERT INTO dataset_version_row (version_id, position, row_hash) VALUES (%s, %s, %s)",
            )
        return (
            "INSERT OR IGNORE INTO dataset_row (hash, data) VALUES (?, ?)",
            "INSERT INTO dataset_version_row (version_id, position, row_hash) VALUES (?, ?, ?)",
        )

    def _flush(self, distinct: dict[str, str], members: list[tuple[int, int, str]]) -> None:
        """One short transaction: the batch's new rows (existing hashes skipped) and its memberships."""
        if members:
            insert_row, insert_member = self._statements()
            with self._engine.begin() as connection:
                raw = connection.connection.driver_connection
                assert raw is not None
                cursor = raw.cursor()
                try:
                    cursor.executemany(insert_row, list(distinct.items()))
                    cursor.executemany(insert_member, members)
                finally:
                    cursor.close()
        distinct.clear()
        members.clear()


def _insert_ignore(engine: Engine, table: Any) -> Any:
    """INSERT that does nothing when the primary key exists, in each dialect's own words."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()


def _expanding(name: str) -> Any:
    from sqlalchemy import bindparam

    return bindparam(name, expanding=True)

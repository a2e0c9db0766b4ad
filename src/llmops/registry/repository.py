"""SQL for the model registry: versions numbered under a lock, aliases moved with their history.

Every transaction that changes a model writes its ``registered_model`` row first: that takes the lock
(the row's on Postgres, the database's on SQLite) before anything is read, so two registrations at
once get different numbers and two alias moves never lose one. A version is inserted ``pending`` with
its number reserved, and becomes ``ready`` when its artefacts are stored; readers see ready ones only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError, NoResultFound

from llmops.registry.errors import ModelNotFound, aliased
from llmops.registry.tables import model_aliases, model_events, model_versions, registered_models

PENDING = "pending"
READY = "ready"


@dataclass(frozen=True)
class Artefact:
    """One stored file or directory of a version: what it is, where, and its checksum."""

    kind: str
    uri: str
    sha256: str
    bytes: int
    is_dir: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "uri": self.uri,
            "sha256": self.sha256,
            "bytes": self.bytes,
            "is_dir": self.is_dir,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Artefact:
        return cls(
            kind=str(data["kind"]),
            uri=str(data["uri"]),
            sha256=str(data["sha256"]),
            bytes=int(data["bytes"]),
            is_dir=bool(data["is_dir"]),
        )


@dataclass(frozen=True)
class ModelVersionInfo:
    """One immutable registered version, with where it came from and the aliases pointing at it."""

    model: str
    version: int
    ref: str
    created_at: datetime
    created_by: str | None
    description: str | None
    base_model: str | None
    dataset: str | None
    dataset_version: int | None
    params: dict[str, Any]
    metrics: dict[str, Any]
    job_id: str | None
    source: dict[str, Any]
    artefacts: tuple[Artefact, ...]
    serving: dict[str, Any] | None
    aliases: tuple[str, ...] = field(default=())

    @property
    def dataset_ref(self) -> str | None:
        if self.dataset is None:
            return None
        return self.dataset if self.dataset_version is None else f"{self.dataset}@{self.dataset_version}"

    def artefact(self, kind: str) -> Artefact | None:
        return next((item for item in self.artefacts if item.kind == kind), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "ref": self.ref,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "description": self.description,
            "base_model": self.base_model,
            "dataset": self.dataset,
            "dataset_version": self.dataset_version,
            "params": self.params,
            "metrics": self.metrics,
            "job_id": self.job_id,
            "source": self.source,
            "artefacts": [item.to_dict() for item in self.artefacts],
            "serving": self.serving,
            "aliases": list(self.aliases),
        }


@dataclass(frozen=True)
class NewVersion:
    """What a registration records besides its artefacts."""

    description: str | None = None
    base_model: str | None = None
    dataset: str | None = None
    dataset_version: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    job_id: str | None = None
    source: dict[str, Any] = field(default_factory=dict)
    serving: dict[str, Any] | None = None
    author: str | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def _info(row: Any, aliases: Sequence[str]) -> ModelVersionInfo:
    data = row._mapping
    return ModelVersionInfo(
        model=data["model"],
        version=data["number"],
        ref=f"{data['model']}@{data['number']}",
        created_at=data["created_at"],
        created_by=data["created_by"],
        description=data["description"],
        base_model=data["base_model"],
        dataset=data["dataset"],
        dataset_version=data["dataset_version"],
        params=dict(data["params"] or {}),
        metrics=dict(data["metrics"] or {}),
        job_id=data["job_id"],
        source=dict(data["source"] or {}),
        artefacts=tuple(Artefact.from_dict(item) for item in data["artefacts"] or []),
        serving=data["serving"],
        aliases=tuple(sorted(aliases)),
    )


def _event(row: Any) -> dict[str, Any]:
    data = row._mapping
    return {
        "model": data["model"],
        "alias": data["alias"],
        "action": data["action"],
        "from_version": data["from_version"],
        "to_version": data["to_version"],
        "at": data["created_at"],
        "by": data["author"],
    }


class RegistryRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- reading ----------------------------------------------------------------------------------

    def get_model(self, name: str) -> dict[str, Any] | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(registered_models).where(registered_models.c.name == name)
            ).first()
        return None if row is None else dict(row._mapping)

    def list_models(self) -> list[dict[str, Any]]:
        ready = model_versions.c.status == READY
        counts = (
            select(
                model_versions.c.model,
                func.max(model_versions.c.number).label("latest_version"),
                func.count().label("versions"),
            )
            .where(ready)
            .group_by(model_versions.c.model)
            .subquery()
        )
        query = (
            select(registered_models, counts.c.latest_version, counts.c.versions)
            .join(counts, counts.c.model == registered_models.c.name)
            .order_by(registered_models.c.name)
        )
        with self._engine.connect() as connection:
            rows = [dict(row._mapping) for row in connection.execute(query)]
            aliases = connection.execute(select(model_aliases).order_by(model_aliases.c.alias)).all()
        by_model: dict[str, dict[str, int]] = {}
        for alias in aliases:
            by_model.setdefault(alias.model, {})[alias.alias] = alias.version
        for row in rows:
            row.pop("last_number", None)
            row["aliases"] = by_model.get(row["name"], {})
        return rows

    def version(self, name: str, number: int | None) -> ModelVersionInfo | None:
        """Version ``number`` of ``name`` (ready ones only), or its latest when ``number`` is None."""
        query = select(model_versions).where(model_versions.c.model == name, model_versions.c.status == READY)
        if number is None:
            query = query.order_by(model_versions.c.number.desc()).limit(1)
        else:
            query = query.where(model_versions.c.number == number)
        with self._engine.connect() as connection:
            row = connection.execute(query).first()
            if row is None:
                return None
            aliases = self._aliases_of(connection, name)
        return _info(row, [alias for alias, version in aliases.items() if version == row.number])

    def versions(self, name: str) -> list[ModelVersionInfo]:
        query = (
            select(model_versions)
            .where(model_versions.c.model == name, model_versions.c.status == READY)
            .order_by(model_versions.c.number)
        )
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
            aliases = self._aliases_of(connection, name)
        return [
            _info(row, [alias for alias, version in aliases.items() if version == row.number]) for row in rows
        ]

    def aliases(self, name: str) -> dict[str, int]:
        with self._engine.connect() as connection:
            return self._aliases_of(connection, name)

    @staticmethod
    def _aliases_of(connection: Connection, name: str) -> dict[str, int]:
        rows = connection.execute(
            select(model_aliases.c.alias, model_aliases.c.version)
            .where(model_aliases.c.model == name)
            .order_by(model_aliases.c.alias)
        ).all()
        return {alias: version for alias, version in rows}

    def events(
        self, name: str, *, alias: str | None = None, aliases_only: bool = False
    ) -> list[dict[str, Any]]:
        """Oldest first."""
        query = select(model_events).where(model_events.c.model == name)
        if alias is not None:
            query = query.where(model_events.c.alias == alias)
        elif aliases_only:
            query = query.where(model_events.c.alias.is_not(None))
        with self._engine.connect() as connection:
            return [_event(row) for row in connection.execute(query.order_by(model_events.c.id))]

    # -- registering --------------------------------------------------------------------------------

    def reserve_version(self, name: str, meta: NewVersion) -> tuple[int, int]:
        """Create the model if new and a pending version with the next number: ``(row id, number)``."""
        now = _now()
        for attempt in (1, 2):
            self._ensure_model(name, meta, now)
            try:
                with self._engine.begin() as connection:
                    number = self._lock(connection, name, now, bump=True)
                    inserted = connection.execute(
                        insert(model_versions).values(
                            model=name,
                            number=number,
                            status=PENDING,
                            description=meta.description,
                            base_model=meta.base_model,
                            dataset=meta.dataset,
                            dataset_version=meta.dataset_version,
                            params=meta.params,
                            metrics=meta.metrics,
                            job_id=meta.job_id,
                            source=meta.source,
                            artefacts=[],
                            serving=meta.serving,
                            created_by=meta.author,
                            created_at=now,
                        )
                    ).inserted_primary_key
                break
            except NoResultFound:  # a failed registration's clean-up removed the new model meanwhile
                if attempt == 2:
                    raise
        assert inserted is not None
        return int(inserted[0]), number

    def _ensure_model(self, name: str, meta: NewVersion, now: datetime) -> None:
        if self.get_model(name) is not None:
            return
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    insert(registered_models).values(
                        name=name,
                        description=meta.description,
                        last_number=0,
                        created_by=meta.author,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:  # another registration created it at the same moment
            pass

    @staticmethod
    def _lock(connection: Connection, name: str, now: datetime, *, bump: bool = False) -> int:
        """Write the model's row (taking its lock) and return its last number (after the bump);
        :class:`NoResultFound` when the model is gone."""
        values: dict[str, Any] = {"updated_at": now}
        if bump:
            values["last_number"] = registered_models.c.last_number + 1
        connection.execute(update(registered_models).where(registered_models.c.name == name).values(**values))
        number = connection.execute(
            select(registered_models.c.last_number).where(registered_models.c.name == name)
        ).scalar_one()
        return int(number)

    def _lock_version(self, connection: Connection, name: str, number: int, now: datetime) -> None:
        """Take the model's lock, then make sure the version is still there (a deletion may have won)."""
        try:
            self._lock(connection, name, now)
        except NoResultFound:
            raise ModelNotFound(f"no model named {name!r}", param="name") from None
        found = connection.execute(
            select(model_versions.c.id).where(
                model_versions.c.model == name,
                model_versions.c.number == number,
                model_versions.c.status == READY,
            )
        ).first()
        if found is None:
            raise ModelNotFound(f"model {name!r} has no version {number}", param="version")

    def finish_version(self, version_id: int, artefacts: Sequence[Artefact]) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                update(model_versions)
                .where(model_versions.c.id == version_id)
                .values(status=READY, artefacts=[item.to_dict() for item in artefacts])
            )

    def discard_version(self, name: str, version_id: int) -> None:
        """Remove a pending version, and the model if that was all it had."""
        with self._engine.begin() as connection:
            connection.execute(delete(model_versions).where(model_versions.c.id == version_id))
            others = select(model_versions.c.id).where(model_versions.c.model == name).exists()
            connection.execute(delete(registered_models).where((registered_models.c.name == name) & ~others))

    def fill_description(self, name: str, description: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                update(registered_models)
                .where(registered_models.c.name == name, registered_models.c.description.is_(None))
                .values(description=description)
            )

    def merge_metrics(self, name: str, number: int, metrics: dict[str, Any]) -> None:
        with self._engine.begin() as connection:
            self._lock(connection, name, _now())
            where = (model_versions.c.model == name) & (model_versions.c.number == number)
            current = connection.execute(select(model_versions.c.metrics).where(where)).scalar_one()
            connection.execute(
                update(model_versions).where(where).values(metrics={**(current or {}), **metrics})
            )

    # -- aliases and deletion -------------------------------------------------------------------------

    def move_alias(self, name: str, alias: str, version: int | None, *, author: str | None) -> dict[str, Any]:
        """Point ``alias`` at ``version`` (None removes it) and record the move; returns the event
        (``changed`` False, and nothing recorded, when it already points there)."""
        now = _now()
        with self._engine.begin() as connection:
            if version is None:
                self._lock(connection, name, now)
            else:
                self._lock_version(connection, name, version, now)
            where = (model_aliases.c.model == name) & (model_aliases.c.alias == alias)
            current = connection.execute(select(model_aliases.c.version).where(where)).scalar()
            if version is None and current is None:
                raise ModelNotFound(f"model {name!r} has no alias {alias!r}", param="alias")
            if current == version:
                return {
                    "model": name,
                    "alias": alias,
                    "action": "set",
                    "from_version": current,
                    "to_version": version,
                    "at": now,
                    "by": author,
                    "changed": False,
                }
            if version is None:
                connection.execute(delete(model_aliases).where(where))
            elif current is None:
                connection.execute(
                    insert(model_aliases).values(
                        model=name, alias=alias, version=version, updated_by=author, updated_at=now
                    )
                )
            else:
                connection.execute(
                    update(model_aliases)
                    .where(where)
                    .values(version=version, updated_by=author, updated_at=now)
                )
            event = self._record(
                connection, name, alias, "set" if version else "remove", current, version, author, now
            )
        return {**event, "changed": True}

    @staticmethod
    def _record(
        connection: Connection,
        name: str,
        alias: str | None,
        action: str,
        from_version: int | None,
        to_version: int | None,
        author: str | None,
        now: datetime,
    ) -> dict[str, Any]:
        connection.execute(
            insert(model_events).values(
                model=name,
                alias=alias,
                action=action,
                from_version=from_version,
                to_version=to_version,
                author=author,
                created_at=now,
            )
        )
        return {
            "model": name,
            "alias": alias,
            "action": action,
            "from_version": from_version,
            "to_version": to_version,
            "at": now,
            "by": author,
        }

    def delete_version(self, name: str, number: int, *, author: str | None, force: bool) -> list[str]:
        """Delete a version and, with ``force``, the aliases on it (recorded); returns those aliases.
        Checked under the lock: an alias set since the caller looked still refuses the deletion."""
        now = _now()
        with self._engine.begin() as connection:
            self._lock_version(connection, name, number, now)
            removed = [
                alias for alias, version in self._aliases_of(connection, name).items() if version == number
            ]
            if removed and not force:
                raise aliased(f"{name}@{number}", removed)
            for alias in removed:
                connection.execute(
                    delete(model_aliases).where(model_aliases.c.model == name, model_aliases.c.alias == alias)
                )
                self._record(connection, name, alias, "remove", number, None, author, now)
            connection.execute(
                delete(model_versions).where(
                    model_versions.c.model == name, model_versions.c.number == number
                )
            )
            self._record(connection, name, None, "delete", number, None, author, now)
        return removed

    def delete_model(self, name: str) -> None:
        with self._engine.begin() as connection:
            for table in (model_events, model_aliases, model_versions):
                connection.execute(delete(table).where(table.c.model == name))
            connection.execute(delete(registered_models).where(registered_models.c.name == name))

"""API key rows: only a SHA-256 hash of each secret is stored.

A rotated key keeps the hash of its previous secret, accepted until ``previous_valid_until`` (the
grace period that lets clients switch over); a revoked key's hashes are never accepted again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, and_, func, insert, or_, select, update

from llmops.store.tables import api_keys


@dataclass(frozen=True, slots=True)
class ApiKeyRow:
    id: str
    name: str
    scope: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    team_id: str | None = None
    models: list[str] | None = None
    expires_at: datetime | None = None
    limits: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    rotated_at: datetime | None = None
    previous_valid_until: datetime | None = None


class KeyRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, row: ApiKeyRow, key_hash: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(insert(api_keys).values(key_hash=key_hash, **asdict(row)))

    def find_active_by_hash(self, key_hash: str, now: datetime | None = None) -> ApiKeyRow | None:
        """The active key whose current secret, or previous secret still in its grace, has this hash."""
        now = now or datetime.now(UTC)
        c = api_keys.c
        query = select(*_columns()).where(
            c.revoked_at.is_(None),
            or_(c.key_hash == key_hash, and_(c.previous_hash == key_hash, c.previous_valid_until > now)),
        )
        with self._engine.connect() as connection:
            found = connection.execute(query).first()
        return ApiKeyRow(*found) if found else None

    def hash_exists(self, key_hash: str) -> bool:
        """Whether any key, revoked or not, has this hash now or had it (a secret is never reused)."""
        c = api_keys.c
        query = select(c.id).where(or_(c.key_hash == key_hash, c.previous_hash == key_hash))
        with self._engine.connect() as connection:
            return connection.execute(query).first() is not None

    def active_by_hash(self, now: datetime | None = None) -> dict[str, ApiKeyRow]:
        """Every usable secret's hash and its key (the gateway's in-memory cache is built from this)."""
        now = now or datetime.now(UTC)
        c = api_keys.c
        query = select(c.key_hash, c.previous_hash, *_columns()).where(c.revoked_at.is_(None))
        found: dict[str, ApiKeyRow] = {}
        with self._engine.connect() as connection:
            for key_hash, previous_hash, *fields in connection.execute(query):
                row = ApiKeyRow(*fields)
                found[key_hash] = row
                if previous_hash and row.previous_valid_until and row.previous_valid_until > now:
                    found[previous_hash] = row
        return found

    def get(self, key_id: str) -> ApiKeyRow | None:
        with self._engine.connect() as connection:
            found = connection.execute(select(*_columns()).where(api_keys.c.id == key_id)).first()
        return ApiKeyRow(*found) if found else None

    def rotate(self, key_id: str, new_hash: str, prefix: str, when: datetime, valid_until: datetime) -> bool:
        """Give an active key a new secret; its current one stays valid until ``valid_until``."""
        c = api_keys.c
        statement = (
            update(api_keys)
            .where(c.id == key_id, c.revoked_at.is_(None))
            .values(
                previous_hash=c.key_hash,
                previous_valid_until=valid_until,
                key_hash=new_hash,
                prefix=prefix,
                rotated_at=when,
            )
        )
        with self._engine.begin() as connection:
            return connection.execute(statement).rowcount == 1

    def update(self, key_id: str, values: dict[str, Any]) -> bool:
        """Change an active key's settings (team, models, expiry, limits, metadata, role)."""
        statement = update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        with self._engine.begin() as connection:
            return connection.execute(statement.values(**values)).rowcount == 1

    def ids_of_team(self, team_id: str) -> list[str]:
        """Every key of a team, revoked ones too (their traces still belong to the team)."""
        with self._engine.connect() as connection:
            return list(
                connection.execute(select(api_keys.c.id).where(api_keys.c.team_id == team_id)).scalars()
            )

    def count_active(self) -> int:
        query = select(func.count()).select_from(api_keys).where(api_keys.c.revoked_at.is_(None))
        with self._engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def list(self, include_revoked: bool = False, team_id: str | None = None) -> list[ApiKeyRow]:
        query = select(*_columns()).order_by(api_keys.c.created_at, api_keys.c.id)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        if team_id is not None:
            query = query.where(api_keys.c.team_id == team_id)
        with self._engine.connect() as connection:
            return [ApiKeyRow(*row) for row in connection.execute(query)]

    def revoke(self, key_id: str, when: datetime) -> bool:
        """Mark a key revoked; False when no active key has this id."""
        statement = (
            update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=when)
        )
        with self._engine.begin() as connection:
            return connection.execute(statement).rowcount == 1

    def find_active(self, id_or_name: str) -> ApiKeyRow | None:
        """The active key with this id or name (the oldest, should a name equal another key's id)."""
        c = api_keys.c
        query = (
            select(*_columns())
            .where(c.revoked_at.is_(None), or_(c.id == id_or_name, c.name == id_or_name))
            .order_by(c.created_at, c.id)
            .limit(1)
        )
        with self._engine.connect() as connection:
            found = connection.execute(query).first()
        return ApiKeyRow(*found) if found else None

    def name_taken(self, name: str) -> bool:
        query = select(api_keys.c.id).where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
        with self._engine.connect() as connection:
            return connection.execute(query).first() is not None


def _columns() -> tuple[Any, ...]:
    c = api_keys.c
    return (
        c.id,
        c.name,
        c.scope,
        c.prefix,
        c.created_at,
        c.revoked_at,
        c.team_id,
        c.models,
        c.expires_at,
        c.limits,
        c.metadata,
        c.rotated_at,
        c.previous_valid_until,
    )

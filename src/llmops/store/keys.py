"""API key rows: only a SHA-256 hash of each secret is stored."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, insert, select, update

from llmops.store.tables import api_keys


@dataclass(frozen=True, slots=True)
class ApiKeyRow:
    id: str
    name: str
    scope: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class KeyRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, row: ApiKeyRow, key_hash: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(insert(api_keys).values(key_hash=key_hash, **asdict(row)))

    def find_active_by_hash(self, key_hash: str) -> ApiKeyRow | None:
        query = select(*_columns()).where(api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None))
        with self._engine.connect() as connection:
            found = connection.execute(query).first()
        return ApiKeyRow(*found) if found else None

    def hash_exists(self, key_hash: str) -> bool:
        """Whether any key, revoked or not, has this hash (a revoked secret is never reused)."""
        with self._engine.connect() as connection:
            return (
                connection.execute(select(api_keys.c.id).where(api_keys.c.key_hash == key_hash)).first()
                is not None
            )

    def active_by_hash(self) -> dict[str, ApiKeyRow]:
        """Every usable key, keyed by hash (the gateway's in-memory cache is built from this)."""
        query = select(api_keys.c.key_hash, *_columns()).where(api_keys.c.revoked_at.is_(None))
        with self._engine.connect() as connection:
            return {row[0]: ApiKeyRow(*row[1:]) for row in connection.execute(query)}

    def count_active(self) -> int:
        query = select(func.count()).select_from(api_keys).where(api_keys.c.revoked_at.is_(None))
        with self._engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def list(self, include_revoked: bool = False) -> list[ApiKeyRow]:
        query = select(*_columns()).order_by(api_keys.c.created_at, api_keys.c.id)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
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

    def name_taken(self, name: str) -> bool:
        query = select(api_keys.c.id).where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
        with self._engine.connect() as connection:
            return connection.execute(query).first() is not None


def _columns() -> tuple[Any, ...]:
    c = api_keys.c
    return (c.id, c.name, c.scope, c.prefix, c.created_at, c.revoked_at)

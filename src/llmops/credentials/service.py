"""Stored provider credentials: set, list, delete, reveal (to build providers) and re-key.

A credential is a secret (an upstream API key) kept encrypted in the ``credential`` table under
the master key (:mod:`llmops.credentials.keyfile`). Nothing here returns a secret except
:meth:`CredentialService.reveal` and :meth:`CredentialService.reveal_many`, which only the model
catalog calls when it builds providers. Every change writes, in its own transaction, an audit
event naming the credential and the master key's fingerprint, never the value. Errors:
:mod:`llmops.credentials.errors`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from llmops.audit import Actor, AuditService
from llmops.credentials.crypto import MasterKey
from llmops.credentials.errors import (
    CredentialInUse,
    CredentialNotFound,
    CredentialUnreadable,
    InvalidCredential,
    MasterKeyError,
)
from llmops.credentials.keyfile import MasterKeySource
from llmops.credentials.tables import credentials

# a name goes in llmops.yaml and in URLs: letters, digits, and . _ - after the first character
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"
_NAME = re.compile(NAME_PATTERN.strip("^$"))
MAX_SECRET_CHARS = 16_384


@dataclass(frozen=True, slots=True)
class CredentialInfo:
    """What may be shown about a credential: never its value."""

    name: str
    key_id: str
    created_at: datetime
    updated_at: datetime

    def audit_view(self) -> dict[str, Any]:
        return {"name": self.name, "key_id": self.key_id}


UsedBy = Callable[[], Mapping[str, Iterable[str]]]


class CredentialService:
    """``used_by`` maps a credential name to the configured models that need it (deletion refuses)."""

    def __init__(
        self, engine: Engine, source: MasterKeySource, audit: AuditService, used_by: UsedBy | None = None
    ) -> None:
        self._engine = engine
        self._source = source
        self._audit = audit
        self._used_by = used_by
        self._rotated: MasterKey | None = None  # the key this process re-keyed everything to

    # --- changes (audited) ------------------------------------------------------------------

    def set(self, name: str, secret: str, actor: Actor) -> CredentialInfo:
        """Store ``secret`` under ``name``, replacing any earlier value."""
        _check_name(name)
        _check_secret(secret)
        key = self._sealing_key()
        nonce, ciphertext = key.seal(name, secret)
        now = datetime.now(UTC)
        sealed = {"nonce": nonce, "ciphertext": ciphertext, "key_id": key.key_id, "updated_at": now}
        with self._engine.begin() as connection:
            before = _info(connection, name)
            connection.execute(_upsert(connection, {"name": name, "created_at": now, **sealed}))
            info = CredentialInfo(name, key.key_id, before.created_at if before else now, now)
            self._audit.record(
                actor,
                "set_credential",
                "credential",
                name,
                before=before.audit_view() if before else None,
                after=info.audit_view(),
                secrets=(secret,),
                connection=connection,
            )
        return info

    def delete(self, name: str, actor: Actor) -> CredentialInfo:
        users = sorted((self._used_by() if self._used_by else {}).get(name, ()))
        if users:
            raise CredentialInUse(
                f"credential {name!r} is used by model {users[0]!r}: take it out of the configuration first",
                param="name",
            )
        with self._engine.begin() as connection:
            before = _info(connection, name)
            if before is None:
                raise CredentialNotFound(f"no credential named {name!r}", param="name")
            connection.execute(delete(credentials).where(credentials.c.name == name))
            self._audit.record(
                actor,
                "delete_credential",
                "credential",
                name,
                before=before.audit_view(),
                connection=connection,
            )
        return before

    def rotate(self, new_key: MasterKey, actor: Actor) -> int:
        """Re-seal every credential under ``new_key`` in one transaction; returns how many.

        The current key must open every row, else nothing changes (:class:`CredentialUnreadable`).
        The caller then makes ``new_key`` the configured key (:func:`rotate_master_key` does both).
        """
        old = self.master_key()
        if old is not None and old == new_key:
            raise InvalidCredential("the new master key is the current one")
        with self._engine.begin() as connection:
            rows = connection.execute(
                select(credentials).order_by(credentials.c.name).with_for_update()
            ).all()
            if rows and old is None:
                raise self._no_key(rows[0].key_id)
            secrets = [_open(old, row) for row in rows] if old is not None else []
            now = datetime.now(UTC)
            for row, secret in zip(rows, secrets, strict=True):
                nonce, ciphertext = new_key.seal(row.name, secret)
                connection.execute(
                    update(credentials)
                    .where(credentials.c.name == row.name)
                    .values(nonce=nonce, ciphertext=ciphertext, key_id=new_key.key_id, updated_at=now)
                )
            self._audit.record(
                actor,
                "rotate_master_key",
                "master_key",
                new_key.key_id,
                before={"key_id": old.key_id if old else None},
                after={"key_id": new_key.key_id, "count": len(rows)},
                connection=connection,
            )
        self._rotated = new_key
        return len(rows)

    # --- reading ----------------------------------------------------------------------------

    def list(self) -> list[CredentialInfo]:
        """Every credential by name, with the fingerprint of the key that sealed it (no values)."""
        query = select(*_INFO_COLUMNS).order_by(credentials.c.name)
        with self._engine.connect() as connection:
            return [CredentialInfo(*row) for row in connection.execute(query)]

    def get(self, name: str) -> CredentialInfo:
        with self._engine.connect() as connection:
            found = _info(connection, name)
        if found is None:
            raise CredentialNotFound(f"no credential named {name!r}", param="name")
        return found

    def reveal(self, name: str) -> str:
        """The decrypted secret (internal: for building providers only)."""
        found = self.reveal_many([name])
        if name not in found:
            raise CredentialNotFound(f"no credential named {name!r}", param="name")
        return found[name]

    def reveal_many(self, names: Iterable[str]) -> dict[str, str]:
        """The decrypted secrets of those of ``names`` that exist, read in one query."""
        wanted = sorted(set(names))
        if not wanted:
            return {}
        with self._engine.connect() as connection:
            rows = connection.execute(select(credentials).where(credentials.c.name.in_(wanted))).all()
        if not rows:
            return {}
        key = self.master_key()
        if key is None:
            raise self._no_key(rows[0].key_id)
        return {row.name: _open(key, row) for row in rows}

    def master_key(self) -> MasterKey | None:
        """The current master key (its file is read again each time); None when there is none yet."""
        return self._rotated if self._rotated is not None else self._source.load()

    def _sealing_key(self) -> MasterKey:
        """The master key, created on first need, but never while rows sealed by a lost key exist."""
        key = self.master_key()
        if key is not None:
            return key
        with self._engine.connect() as connection:
            sealed_with = connection.execute(select(credentials.c.key_id).limit(1)).scalar()
        if sealed_with is not None:
            raise self._no_key(sealed_with)
        return self._source.load_or_create()

    @property
    def source(self) -> MasterKeySource:
        return self._source

    def _no_key(self, key_id: str) -> MasterKeyError:
        return MasterKeyError(
            f"no master key: stored credentials were sealed with key {key_id}; set LLMOPS_MASTER_KEY "
            f"or restore the key file {self._source.path}"
        )


_INFO_COLUMNS = (credentials.c.name, credentials.c.key_id, credentials.c.created_at, credentials.c.updated_at)


def _upsert(connection: Connection, values: dict[str, Any]) -> Any:
    """Insert the row, or replace all but its creation time (one statement: no race, no savepoint)."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(credentials).values(**values)
    replaced = {name: statement.excluded[name] for name in values if name not in ("name", "created_at")}
    return statement.on_conflict_do_update(index_elements=[credentials.c.name], set_=replaced)


def _info(connection: Connection, name: str) -> CredentialInfo | None:
    found = connection.execute(select(*_INFO_COLUMNS).where(credentials.c.name == name)).first()
    return CredentialInfo(*found) if found else None


def _open(key: MasterKey, row: Any) -> str:
    if row.key_id != key.key_id:
        raise CredentialUnreadable(
            f"credential {row.name!r} was sealed with master key {row.key_id}, but the master key is "
            f"{key.key_id}: configure the key it was sealed with (or set the credential again)"
        )
    return key.open(row.name, row.nonce, row.ciphertext)


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise InvalidCredential(
            "name: 1 to 200 letters, digits, '.', '_' or '-', starting with a letter or digit",
            param="name",
        )


def _check_secret(secret: str) -> None:
    if not secret.strip():
        raise InvalidCredential("secret: must not be empty", param="secret")
    if len(secret) > MAX_SECRET_CHARS:
        raise InvalidCredential(f"secret: at most {MAX_SECRET_CHARS} characters", param="secret")
    if any(char in secret for char in "\r\n\x00"):
        raise InvalidCredential("secret: must be one line (no line breaks or NUL)", param="secret")
    try:
        secret.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidCredential("secret: not valid text (a lone surrogate)", param="secret") from None

"""API keys: create (the secret is shown once, only its SHA-256 is stored), list, revoke.

Errors: :class:`InvalidKeyRequest` (a ``ValueError`` with a readable message), and its kinds
:class:`KeyNotFound` (no active key has this id or name) and :class:`KeyConflict` (the name is
taken, or the key to revoke is the one the request is made with).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

from llmops.ids import new_id
from llmops.store.keys import ApiKeyRow, KeyRepository

Scope = Literal["inference", "admin"]
SCOPES: tuple[Scope, ...] = ("inference", "admin")
SECRET_PREFIX = "sk-llmops-"
_MIN_IMPORTED_SECRET = 20
_MAX_NAME = 200


# A name is printable (no control characters) and not only spaces; the API declares the same rule.
NAME_PATTERN = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"


class InvalidKeyRequest(ValueError):
    pass


class KeyNotFound(InvalidKeyRequest):
    pass


class KeyConflict(InvalidKeyRequest):
    pass


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class CreatedKey:
    row: ApiKeyRow
    secret: str


class KeyService:
    def __init__(self, keys: KeyRepository) -> None:
        self._keys = keys

    def create(self, name: str, scope: str, secret: str | None = None) -> CreatedKey:
        """A new key; ``secret`` imports a known secret (e.g. one already deployed to clients)."""
        if any(ch < " " or ch == "\x7f" for ch in name):
            raise InvalidKeyRequest("name: control characters are not allowed")
        name = name.strip()
        if not name or len(name) > _MAX_NAME:
            raise InvalidKeyRequest(f"name: needs 1 to {_MAX_NAME} characters")
        if scope not in SCOPES:
            raise InvalidKeyRequest(f"scope: expected one of {', '.join(SCOPES)}, got {scope!r}")
        if self._keys.name_taken(name):
            raise KeyConflict(f"name: an active key named {name!r} exists already")
        if secret is None:
            secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        elif len(secret) < _MIN_IMPORTED_SECRET or any(ch.isspace() for ch in secret):
            raise InvalidKeyRequest(f"secret: needs at least {_MIN_IMPORTED_SECRET} characters and no spaces")
        key_hash = hash_secret(secret)
        if self._keys.hash_exists(key_hash):
            raise InvalidKeyRequest(
                "secret: this secret belongs to another key (revoked secrets stay retired)"
            )
        row = ApiKeyRow(
            id=f"key_{new_id()}",
            name=name,
            scope=scope,
            prefix=secret[: len(SECRET_PREFIX) + 4] if secret.startswith(SECRET_PREFIX) else secret[:6],
            created_at=datetime.now(UTC),
            revoked_at=None,
        )
        self._keys.add(row, key_hash)
        return CreatedKey(row, secret)

    def list(self, include_revoked: bool = False) -> list[ApiKeyRow]:
        return self._keys.list(include_revoked)

    def revoke(self, key: str, *, acting_key_id: str | None = None) -> ApiKeyRow:
        """Revoke by id or name; the gateway stops accepting it within ``key_cache_seconds``.

        ``acting_key_id`` is the key making the request: it cannot revoke itself, so that an admin
        cannot lock themselves out by mistake (another admin key or the CLI can revoke it).
        """
        for row in self._keys.list():
            if key in (row.id, row.name):
                if row.id == acting_key_id:
                    raise KeyConflict(
                        f"key {row.name!r} is the one making this request; revoke it with another admin key "
                        "or `llmops keys revoke`"
                    )
                when = datetime.now(UTC)
                self._keys.revoke(row.id, when)
                return replace(row, revoked_at=when)
        raise KeyNotFound(f"no active API key with id or name {key!r}")

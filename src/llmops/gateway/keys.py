"""API keys: create (the secret is shown once, only its SHA-256 is stored), list, rotate, revoke.

A key has a role, may belong to a team, may be limited to some models (glob patterns), may
expire, and carries its own rate limits and budgets; every change is written to the audit log
when an actor is given (the CLI and the admin API always give one).

Errors: :class:`InvalidKeyRequest` (a ``ValueError`` with a readable message), and its kinds
:class:`KeyNotFound` (no active key has this id or name) and :class:`KeyConflict` (the name is
taken, or the key to revoke is the one the request is made with).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from llmops.audit.actor import Actor
from llmops.errors import UserError
from llmops.ids import new_id
from llmops.limits.policy import NO_LIMITS, Limits
from llmops.store.keys import ApiKeyRow, KeyRepository
from llmops.teams.repository import TeamRepository
from llmops.teams.roles import ROLES, Role
from llmops.teams.service import UNSET, AuditSink, SpendReader, check_models, check_name

Scope = Role
SCOPES: tuple[Scope, ...] = ROLES
SECRET_PREFIX = "sk-llmops-"
_MIN_IMPORTED_SECRET = 20


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


@dataclass(frozen=True, slots=True)
class KeyView:
    """A key as listings show it: its row, its team's name and what it spent (USD per period)."""

    row: ApiKeyRow
    team: str | None
    spend: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {**key_fields(self.row), "team": self.team, "spend": self.spend}


def key_fields(row: ApiKeyRow) -> dict[str, Any]:
    """A key's public fields (never a hash or a secret)."""
    limits = Limits.from_json(row.limits)
    return {
        "id": row.id,
        "name": row.name,
        "role": row.scope,
        "scope": row.scope,
        "prefix": row.prefix,
        "team_id": row.team_id,
        "models": row.models,
        "expires_at": row.expires_at,
        "rpm": limits.rpm,
        "tpm": limits.tpm,
        "budget": limits.budgets(),
        "metadata": row.metadata or {},
        "created_at": row.created_at,
        "revoked_at": row.revoked_at,
        "rotated_at": row.rotated_at,
        "previous_valid_until": row.previous_valid_until,
    }


class KeyService:
    def __init__(
        self,
        keys: KeyRepository,
        teams: TeamRepository | None = None,
        *,
        audit: AuditSink | None = None,
        spend: SpendReader | None = None,
        trace_spend: Callable[[list[str]], dict[str, dict[str, float]]] | None = None,
    ) -> None:
        self._keys = keys
        self._teams = teams
        self.audit = audit
        self.spend = spend
        self._trace_spend = trace_spend  # for keys no limit counts: what their traces cost

    def create(
        self,
        name: str,
        scope: str,
        secret: str | None = None,
        *,
        team: str | None = None,
        models: list[str] | None = None,
        expires_at: datetime | None = None,
        limits: Limits = NO_LIMITS,
        metadata: dict[str, Any] | None = None,
        actor: Actor | None = None,
    ) -> CreatedKey:
        """A new key; ``secret`` imports a known secret (e.g. one already deployed to clients).

        ``scope`` is the key's role (inference, viewer, editor, admin).
        """
        try:
            name = check_name(name)
        except UserError as exc:
            raise InvalidKeyRequest(exc.message) from None
        if scope not in SCOPES:
            raise InvalidKeyRequest(f"role: expected one of {', '.join(SCOPES)}, got {scope!r}")
        try:
            models = check_models(models)
        except UserError as exc:
            raise InvalidKeyRequest(exc.message) from None
        if expires_at is not None and expires_at <= datetime.now(UTC):
            raise InvalidKeyRequest("expires: the expiry must be in the future")
        team_id = self._team_id(team) if team is not None else None
        if self._keys.name_taken(name):
            raise KeyConflict(f"name: an active key named {name!r} exists already")
        secret = self._new_secret(secret)
        row = ApiKeyRow(
            id=f"key_{new_id()}",
            name=name,
            scope=scope,
            prefix=_prefix_of(secret),
            created_at=datetime.now(UTC),
            revoked_at=None,
            team_id=team_id,
            models=models,
            expires_at=expires_at,
            limits=limits.to_json() or None,
            metadata=metadata or None,
        )
        self._keys.add(row, hash_secret(secret))
        self._record(actor, "create_key", row, after=key_fields(row))
        return CreatedKey(row, secret)

    def view(self, key: str) -> KeyView:
        """One active key (by id or name) as listings show it."""
        return self._views([self.find(key)])[0]

    def _views(self, rows: list[ApiKeyRow]) -> list[KeyView]:
        spend = (
            {key: dict(amounts) for key, amounts in self.spend("key", [row.id for row in rows]).items()}
            if self.spend and rows
            else {}
        )
        uncounted = [row.id for row in rows if not any(spend.get(row.id, {}).values())]
        if self._trace_spend is not None and uncounted:
            spend.update(self._trace_spend(uncounted))
        names = {row.id: row.name for row in self._teams.ordered()} if self._teams else {}
        return [KeyView(row, names.get(row.team_id or ""), spend.get(row.id, {})) for row in rows]

    def list(self, include_revoked: bool = False, *, team: str | None = None) -> list[KeyView]:
        """Keys, oldest first, with their spend; ``team`` keeps one team's."""
        team_id = self._team_id(team) if team is not None else None
        return self._views(self._keys.list(include_revoked, team_id=team_id))

    def find(self, key: str) -> ApiKeyRow:
        """The active key with this id or name."""
        row = self._keys.find_active(key)
        if row is None:
            raise KeyNotFound(f"no active API key with id or name {key!r}")
        return row

    def revoke(self, key: str, *, acting_key_id: str | None = None, actor: Actor | None = None) -> ApiKeyRow:
        """Revoke by id or name; the gateway stops accepting it within ``key_cache_seconds``.

        ``acting_key_id`` is the key making the request: it cannot revoke itself, so that an admin
        cannot lock themselves out by mistake (another admin key or the CLI can revoke it).
        """
        row = self.find(key)
        if row.id == acting_key_id:
            raise KeyConflict(
                f"key {row.name!r} is the one making this request; revoke it with another admin key "
                "or `llmops keys revoke`"
            )
        when = datetime.now(UTC)
        self._keys.revoke(row.id, when)
        revoked = replace(row, revoked_at=when)
        self._record(actor, "revoke_key", revoked, before=key_fields(row), after=key_fields(revoked))
        return revoked

    def rotate(
        self,
        key: str,
        *,
        grace_seconds: float = 86_400.0,
        secret: str | None = None,
        acting_key_id: str | None = None,
        actor: Actor | None = None,
    ) -> CreatedKey:
        """A new secret for the same key (id, team, limits, spend); the old one works ``grace_seconds``.

        Like :meth:`revoke`, a key cannot rotate itself: should the answer carrying the new secret
        be lost, its caller would be locked out when the grace ends.
        """
        if grace_seconds < 0 or grace_seconds > 366 * 86_400:
            raise InvalidKeyRequest("grace: expected 0 seconds to 366 days")
        row = self.find(key)
        if row.id == acting_key_id:
            raise KeyConflict(
                f"key {row.name!r} is the one making this request; rotate it with another admin key "
                "or `llmops keys rotate`"
            )
        secret = self._new_secret(secret)
        when = datetime.now(UTC)
        if not self._keys.rotate(
            row.id, hash_secret(secret), _prefix_of(secret), when, when + timedelta(seconds=grace_seconds)
        ):
            raise KeyNotFound(f"no active API key with id or name {key!r}")
        rotated = self._keys.get(row.id) or row
        self._record(actor, "rotate_key", rotated, before=key_fields(row), after=key_fields(rotated))
        return CreatedKey(rotated, secret)

    def update(
        self,
        key: str,
        *,
        models: Any = UNSET,
        expires_at: Any = UNSET,
        limits: Limits | None = None,
        metadata: dict[str, Any] | None = None,
        actor: Actor | None = None,
    ) -> ApiKeyRow:
        """Change what is given of a key's allowed models, expiry, limits and metadata."""
        row = self.find(key)
        values: dict[str, Any] = {}
        if models is not UNSET:
            try:
                values["models"] = check_models(models)
            except UserError as exc:
                raise InvalidKeyRequest(exc.message) from None
        if expires_at is not UNSET:
            if expires_at is not None and expires_at <= datetime.now(UTC):
                raise InvalidKeyRequest("expires: the expiry must be in the future")
            values["expires_at"] = expires_at
        if limits is not None:
            values["limits"] = limits.to_json() or None
        if metadata is not None:
            values["metadata"] = metadata or None
        if values:
            self._keys.update(row.id, values)
        updated = self._keys.get(row.id) or row
        self._record(actor, "update_key", updated, before=key_fields(row), after=key_fields(updated))
        return updated

    def _team_id(self, team: str) -> str:
        found = self._teams.find(team) if self._teams is not None else None
        if found is None:
            raise KeyNotFound(f"team: no team with id or name {team!r}")
        return found.id

    def _new_secret(self, secret: str | None) -> str:
        if secret is None:
            return SECRET_PREFIX + secrets.token_urlsafe(32)
        if len(secret) < _MIN_IMPORTED_SECRET or any(ch.isspace() for ch in secret):
            raise InvalidKeyRequest(f"secret: needs at least {_MIN_IMPORTED_SECRET} characters and no spaces")
        if self._keys.hash_exists(hash_secret(secret)):
            raise InvalidKeyRequest(
                "secret: this secret belongs to another key (revoked secrets stay retired)"
            )
        return secret

    def _record(self, actor: Actor | None, action: str, row: ApiKeyRow, **change: Any) -> None:
        if self.audit is not None and actor is not None:
            self.audit.record(actor, action, "key", row.name, team_id=row.team_id, **change)


def _prefix_of(secret: str) -> str:
    return secret[: len(SECRET_PREFIX) + 4] if secret.startswith(SECRET_PREFIX) else secret[:6]

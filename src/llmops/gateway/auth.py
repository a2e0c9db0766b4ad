"""Who is calling: Bearer keys checked against an in-memory cache of key hashes.

Keys are never compared as secrets: the SHA-256 digest of the presented secret is looked up
(which tells an attacker nothing about stored secrets), so no comparison's timing depends on a
secret. Failed attempts are counted in /metrics by reason and limited per client address.

The cache holds every active key (and its team) and is reloaded every ``key_cache_seconds`` by a background
task, so revocations take effect within that time and the request path reads no database.
An unknown key is looked up once (a key created a moment ago) and remembered as unknown for
the same time. With no keys at all the gateway is open, which the server allows only on a
loopback address.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase

from llmops.gateway.errors import GatewayError
from llmops.gateway.keys import hash_secret
from llmops.limits.policy import NO_LIMITS, Limits
from llmops.store.keys import ApiKeyRow, KeyRepository
from llmops.teams.repository import TeamRepository, TeamRow
from llmops.tracing.metrics import Counter

log = logging.getLogger("llmops.auth")

_MAX_UNKNOWN = 10_000
_MAX_ADDRESSES = 100_000


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request, as the key cache knows it (no database read on the hot path).

    ``scope`` is the key's role: ``inference``, ``viewer``, ``editor`` or ``admin``. ``models``
    holds the allow-lists of the key and of its team (glob patterns; a model must pass both).
    ``limits`` and ``team_limits`` are enforced by the gateway's limiter.
    """

    key_id: str | None
    name: str
    scope: str
    team_id: str | None = None
    team_name: str | None = None
    models: tuple[tuple[str, ...], ...] = ()
    expires_at: float | None = None  # epoch seconds
    limits: Limits = NO_LIMITS
    team_limits: Limits = NO_LIMITS

    @property
    def is_admin(self) -> bool:
        return self.scope == "admin"

    @property
    def role(self) -> str:
        return self.scope

    @property
    def limited(self) -> bool:
        """Whether any rate limit or budget applies (the gateway skips the limiter otherwise)."""
        return not (self.limits.empty and self.team_limits.empty)

    def may_use(self, model: str) -> bool:
        """Whether every allow-list that applies (the key's, its team's) admits ``model``."""
        return all(any(fnmatchcase(model, pattern) for pattern in patterns) for patterns in self.models)


ANONYMOUS = Principal(key_id=None, name="anonymous", scope="admin")


class FailedLogins:
    """Failed authentications per client address in the last minute, to slow down key guessing.

    Past ``per_minute`` failures an address gets 429 for every attempt (right or wrong) until its
    oldest failure is a minute old. Bounded: past ``_MAX_ADDRESSES`` addresses the oldest are forgotten.
    """

    def __init__(self, per_minute: int) -> None:
        self._per_minute = per_minute
        self._failures: dict[str, deque[float]] = {}

    def blocked_for(self, address: str | None, now: float) -> float:
        """Seconds this address must wait (0: it may try)."""
        if address is None or self._per_minute <= 0:
            return 0.0
        times = self._failures.get(address)
        if not times:
            return 0.0
        while times and times[0] <= now - 60.0:
            times.popleft()
        if len(times) < self._per_minute:
            return 0.0
        return times[0] + 60.0 - now

    def note(self, address: str | None, now: float) -> None:
        if address is None or self._per_minute <= 0:
            return
        times = self._failures.get(address)
        if times is None:
            if len(self._failures) >= _MAX_ADDRESSES:
                del self._failures[next(iter(self._failures))]
            times = self._failures[address] = deque(maxlen=self._per_minute)
        times.append(now)


class Authenticator:
    def __init__(
        self,
        keys: KeyRepository,
        *,
        cache_seconds: float,
        open_allowed: bool,
        teams: TeamRepository | None = None,
        failures_per_minute: int = 0,
        failure_counter: Counter | None = None,
    ) -> None:
        self._keys = keys
        self._teams = teams
        self._cache_seconds = cache_seconds
        self._open_allowed = open_allowed
        self._by_hash: dict[str, Principal] = {}
        self._unknown: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._failed = FailedLogins(failures_per_minute)
        self._failure_counter = failure_counter

    @property
    def keys_required(self) -> bool:
        return bool(self._by_hash) or not self._open_allowed

    def load(self) -> None:
        """Read every usable key and its team (blocking; at start and from the refresh task's thread)."""
        teams = self._teams.all() if self._teams is not None else {}
        self._by_hash = {
            key_hash: _principal(row, teams.get(row.team_id or ""))
            for key_hash, row in self._keys.active_by_hash(datetime.now(UTC)).items()
        }
        self._unknown = {}

    def start(self) -> None:
        self._task = asyncio.create_task(self._refresh_forever(), name="llmops-key-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._cache_seconds)
            try:
                await asyncio.to_thread(self.load)
            except Exception:  # instrumentation boundary: keep serving with the last good cache
                log.exception("could not refresh API keys; keeping the cached ones")

    async def authenticate(self, authorization: bytes | None, client: str | None = None) -> Principal:
        """The caller of a request; ``client`` is its address (for the per-address limit on failures)."""
        if not self._by_hash and self._open_allowed:
            return ANONYMOUS
        now = time.monotonic()
        wait = self._failed.blocked_for(client, now)
        if wait > 0:
            self._count_failure("blocked")
            raise GatewayError(
                429,
                "too many failed authentication attempts from this address; retry later",
                error_type="rate_limit_error",
                code="too_many_failed_logins",
                headers=[(b"retry-after", str(max(1, math.ceil(wait))).encode())],
            )
        if not authorization or not authorization[:7].lower() == b"bearer ":
            self._fail(client, now, "missing")
            raise GatewayError(
                401, "missing API key: send 'Authorization: Bearer <key>'", code="invalid_api_key"
            )
        key_hash = hash_secret(authorization[7:].strip().decode("latin-1"))
        principal = self._by_hash.get(key_hash)
        if principal is None:
            principal = await self._look_up(key_hash, client, now)
        if principal.expires_at is not None and principal.expires_at <= time.time():
            self._fail(client, now, "expired")
            raise GatewayError(401, f"the API key {principal.name!r} has expired", code="invalid_api_key")
        return principal

    async def _look_up(self, key_hash: str, client: str | None, now: float) -> Principal:
        if self._unknown.get(key_hash, 0.0) > now:
            self._fail(client, now, "invalid")
            raise GatewayError(401, "invalid API key", code="invalid_api_key")
        row = await asyncio.to_thread(self._keys.find_active_by_hash, key_hash, datetime.now(UTC))
        if row is None:
            if len(self._unknown) >= _MAX_UNKNOWN:
                self._unknown.clear()
            self._unknown[key_hash] = now + self._cache_seconds
            self._fail(client, now, "invalid")
            raise GatewayError(401, "invalid API key", code="invalid_api_key")
        team = await asyncio.to_thread(self._teams.find, row.team_id) if self._teams and row.team_id else None
        principal = _principal(row, team)
        self._by_hash[key_hash] = principal
        return principal

    def _fail(self, client: str | None, now: float, reason: str) -> None:
        self._failed.note(client, now)
        self._count_failure(reason)

    def _count_failure(self, reason: str) -> None:
        if self._failure_counter is not None:
            self._failure_counter.inc((reason,))


def _principal(row: ApiKeyRow, team: TeamRow | None) -> Principal:
    """What the request path needs to know of a key and its team, computed once per cache load."""
    allow_lists = tuple(
        tuple(models) for models in (row.models, team.models if team else None) if models is not None
    )
    return Principal(
        key_id=row.id,
        name=row.name,
        scope=row.scope,
        team_id=row.team_id,
        team_name=team.name if team else None,
        models=allow_lists,
        expires_at=row.expires_at.timestamp() if row.expires_at else None,
        limits=Limits.from_json(row.limits),
        team_limits=Limits.from_json(team.limits) if team else NO_LIMITS,
    )


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise GatewayError(403, f"this API key has role {principal.role!r}; this needs role 'admin'")

"""Who is calling: Bearer keys checked against an in-memory cache of key hashes.

The cache holds every active key and is reloaded every ``key_cache_seconds`` by a background
task, so revocations take effect within that time and the request path reads no database.
An unknown key is looked up once (a key created a moment ago) and remembered as unknown for
the same time. With no keys at all the gateway is open, which the server allows only on a
loopback address.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from llmops.gateway.errors import GatewayError
from llmops.gateway.keys import hash_secret
from llmops.store.keys import KeyRepository

log = logging.getLogger("llmops.auth")

_MAX_UNKNOWN = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str | None
    name: str
    scope: str

    @property
    def is_admin(self) -> bool:
        return self.scope == "admin"


ANONYMOUS = Principal(key_id=None, name="anonymous", scope="admin")


class Authenticator:
    def __init__(self, keys: KeyRepository, *, cache_seconds: float, open_allowed: bool) -> None:
        self._keys = keys
        self._cache_seconds = cache_seconds
        self._open_allowed = open_allowed
        self._by_hash: dict[str, Principal] = {}
        self._unknown: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def keys_required(self) -> bool:
        return bool(self._by_hash) or not self._open_allowed

    def load(self) -> None:
        """Read every active key (blocking; at start and from the refresh task's thread)."""
        self._by_hash = {
            key_hash: Principal(row.id, row.name, row.scope)
            for key_hash, row in self._keys.active_by_hash().items()
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

    async def authenticate(self, authorization: bytes | None) -> Principal:
        if not self._by_hash and self._open_allowed:
            return ANONYMOUS
        if not authorization or not authorization[:7].lower() == b"bearer ":
            raise GatewayError(
                401, "missing API key: send 'Authorization: Bearer <key>'", code="invalid_api_key"
            )
        key_hash = hash_secret(authorization[7:].strip().decode("latin-1"))
        principal = self._by_hash.get(key_hash)
        if principal is None:
            principal = await self._look_up(key_hash)
        return principal

    async def _look_up(self, key_hash: str) -> Principal:
        now = time.monotonic()
        if self._unknown.get(key_hash, 0.0) > now:
            raise GatewayError(401, "invalid API key", code="invalid_api_key")
        row = await asyncio.to_thread(self._keys.find_active_by_hash, key_hash)
        if row is None:
            if len(self._unknown) >= _MAX_UNKNOWN:
                self._unknown.clear()
            self._unknown[key_hash] = now + self._cache_seconds
            raise GatewayError(401, "invalid API key", code="invalid_api_key")
        principal = Principal(row.id, row.name, row.scope)
        self._by_hash[key_hash] = principal
        return principal


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise GatewayError(403, "this API key has scope 'inference'; the admin API needs scope 'admin'")

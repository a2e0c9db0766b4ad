"""The response cache: answer a request again without calling an upstream.

Off by default; a model turns it on with ``cache: {mode: exact | semantic}``. Exact mode matches
requests by a canonical hash (:mod:`.keys`); semantic mode also embeds the conversation and serves
the answer of a stored conversation whose cosine similarity passes the model's threshold, within
the same scope (model, parameters, system prompt, tenant). By default only deterministic requests
(temperature 0 or a seed) are cached. The request header ``x-llmops-cache: no-cache`` skips the
lookup and ``no-store`` skips storing.

Answers live in memory (one replica) or in Redis (``LLMOPS_REDIS_URL``: shared by every replica,
:mod:`.redis_store`); so does the semantic index (:mod:`.vector_index`, :mod:`.shared_index`).
A cache failure is a miss: it never fails a request. It is logged, at most once per
:data:`WARN_EVERY_SECONDS` for each kind of failure, so a Redis that is down does not flood the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from llmops.gateway.auth import Principal
from llmops.gateway.cache.keys import conversation_text, exact_key, is_deterministic, semantic_scope
from llmops.gateway.cache.stores import AnswerStore, MemoryAnswerStore
from llmops.gateway.endpoints import Endpoint
from llmops.providers.base import Payload
from llmops.throttled_log import ThrottledLog
from llmops.tracing.metrics import GatewayMetrics

if TYPE_CHECKING:
    from llmops.gateway.cache.semantic import Embedder, SemanticIndex
    from llmops.gateway.catalog import ModelRoute

log = logging.getLogger("llmops.cache")

_MAX_PENDING_WRITES = 1000
WARN_EVERY_SECONDS = 30.0

__all__ = ["AnswerStore", "CacheHit", "CachePlan", "MemoryAnswerStore", "ResponseCache"]


@dataclass(slots=True)
class CachePlan:
    """What the cache will do for one request."""

    model: str
    key: str
    ttl: float
    lookup: bool
    store: bool
    similarity: float = 1.0
    scope: str | None = None  # semantic mode only
    text: str | None = None
    vector: Any = None  # the embedding, once computed


@dataclass(slots=True)
class CacheHit:
    kind: str  # hit | semantic-hit
    data: dict[str, Any]
    key: str
    source_trace: str | None = None
    similarity: float | None = None

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {"key": self.key, "source_trace": self.source_trace}
        if self.similarity is not None:
            described["similarity"] = round(self.similarity, 4)
        return described


@dataclass
class ResponseCache:
    answers: AnswerStore
    metrics: GatewayMetrics
    semantic: SemanticIndex | None = None
    embedder: Embedder | None = None
    # builds the index and the embedder the first time a model asks for semantic mode
    semantic_factory: Callable[[], tuple[SemanticIndex, Embedder]] | None = None
    _semantic_failed: bool = False
    _pending: set[asyncio.Task[None]] = field(default_factory=set)
    _log: ThrottledLog = field(default_factory=lambda: ThrottledLog(log, WARN_EVERY_SECONDS))

    def _semantic_ready(self) -> bool:
        if self.semantic is not None:
            return True
        if self.semantic_factory is None or self._semantic_failed:
            return False
        try:
            self.semantic, self.embedder = self.semantic_factory()
        except (ImportError, OSError, ValueError) as exc:
            self._semantic_failed = True
            log.error("semantic cache unavailable, caching exact matches only: %s", exc)
            return False
        return True

    def plan(
        self,
        route: ModelRoute,
        principal: Principal,
        endpoint: Endpoint,
        payload: Payload,
        directive: bytes | None,
    ) -> CachePlan | None:
        """None when this request is not cacheable (or the client asked for neither lookup nor store)."""
        config = route.config.cache
        if config.only_deterministic and endpoint.kind != "embedding" and not is_deterministic(payload):
            return None
        lookup = store = True
        if directive:
            words = directive.lower().replace(b" ", b"").split(b",")
            lookup = b"no-cache" not in words
            store = b"no-store" not in words
        if not (lookup or store):
            return None
        tenant = principal.key_id or "anonymous"
        plan = CachePlan(
            route.name, exact_key(endpoint.name, tenant, payload), config.ttl_seconds, lookup, store
        )
        if config.mode == "semantic" and endpoint.kind != "embedding" and self._semantic_ready():
            plan.text = conversation_text(payload)
            if plan.text is not None:
                plan.scope = semantic_scope(endpoint.name, tenant, payload)
                plan.similarity = config.similarity
        return plan

    async def lookup(self, plan: CachePlan) -> CacheHit | None:
        if not plan.lookup:
            return None
        hit = await self._exact(plan)
        if hit is None and plan.scope is not None:
            hit = await self._similar(plan)
        self.metrics.cache.inc((plan.model, hit.kind if hit else "miss"))
        return hit

    async def _exact(self, plan: CachePlan) -> CacheHit | None:
        raw = await self._get(plan.key)
        return _hit("hit", plan.key, raw) if raw is not None else None

    async def _similar(self, plan: CachePlan) -> CacheHit | None:
        semantic, embedder, scope = self.semantic, self.embedder, plan.scope
        if semantic is None or embedder is None or scope is None:
            return None
        try:
            plan.vector = await embedder.embed(plan.text or "")
            if plan.vector is None:  # longer than the embedding model reads: exact matches only
                plan.scope = None
                return None
            found = await semantic.search(scope, plan.vector, plan.similarity)
        except Exception as exc:  # boundary: a broken index is a miss, never a failed request
            self._log.warning("semantic-lookup", "semantic cache lookup failed: %s", exc)
            return None
        if found is None:
            return None
        key, similarity = found
        raw = await self._get(key)
        if raw is None:
            return None
        hit = _hit("semantic-hit", key, raw)
        if hit is not None:
            hit.similarity = similarity
        return hit

    async def _get(self, key: str) -> bytes | None:
        try:
            return await self.answers.get(key)
        except Exception as exc:  # boundary: an unreachable store is a miss
            self._log.warning("get", "response cache unavailable, serving a miss: %s", exc)
            return None

    def store(self, plan: CachePlan, data: dict[str, Any], trace_id: str) -> None:
        """Keep an answer; backends that need I/O do it in the background."""
        value = orjson.dumps({"data": data, "trace_id": trace_id, "created": time.time()})
        try:
            pending = self.answers.set_soon(plan.key, value, plan.ttl)
        except Exception as exc:  # boundary
            self._log.warning("store", "response cache store failed: %s", exc)
            pending = None
        if pending is not None:
            self._background(pending)
        if plan.scope is not None:
            self._background(self._index(plan))

    async def _index(self, plan: CachePlan) -> None:
        semantic, embedder, scope = self.semantic, self.embedder, plan.scope
        if semantic is None or embedder is None or scope is None:
            return
        vector = plan.vector if plan.vector is not None else await embedder.embed(plan.text or "")
        if vector is not None:
            await semantic.add(scope, vector, plan.key, plan.ttl)

    def _background(self, work: Awaitable[None]) -> None:
        if len(self._pending) >= _MAX_PENDING_WRITES:
            self._log.warning("backlog", "response cache writes are backed up; not storing this answer")
            if asyncio.iscoroutine(work):
                work.close()
            return
        task = asyncio.ensure_future(self._guarded(work))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _guarded(self, work: Awaitable[None]) -> None:
        try:
            await work
        except Exception as exc:  # boundary: a failed cache write loses a cache entry, nothing else
            self._log.warning("write", "response cache write failed: %s", exc)

    async def flush(self) -> None:
        """Wait for the background writes started so far."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def aclose(self) -> None:
        await self.flush()
        await self.answers.aclose()
        if self.semantic is not None:
            await self.semantic.aclose()


def _hit(kind: str, key: str, raw: bytes) -> CacheHit | None:
    try:
        entry = orjson.loads(raw)
        return CacheHit(kind, entry["data"], key, entry.get("trace_id"))
    except (orjson.JSONDecodeError, KeyError, TypeError):
        log.warning("response cache entry %s is unreadable; ignoring it", key)
        return None

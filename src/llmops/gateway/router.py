"""The router: which deployment answers, what happens when it fails, and when to give up.

For one request it picks a deployment of the model with the model's strategy, skipping those whose
circuit breaker is open and those whose declared context window the prompt does not fit. A
failure worth retrying (connection refused or reset, timeout, 429, 500/502/503/504) moves the
request to another healthy deployment at once; when every healthy deployment of this round has
failed, it waits (exponential back-off with full jitter, or the upstream's ``Retry-After`` up to a
cap) and starts another round, within ``max_attempts`` calls and the ``deadline_seconds`` of the
model's retry policy. A client error (400/401/404/422) is answered at once. When the model is
exhausted its ``fallbacks`` are tried in order; a prompt too long for it goes to its
``context_window_fallbacks`` instead.

A stream counts as answered once its first chunk arrives: until then, failing over is invisible
to the client. Every call is logged as an :class:`Attempt` for the trace.

Deployments with a declared ``rpm``/``tpm`` capacity get no more than that per minute from this
replica (a sliding window); with a shared :class:`~llmops.limits.capacity.DeploymentCapacity`
(replicas on one Redis) no more than that from all replicas together. When every one is full the
answer is :class:`CapacityReached` (429).

Errors: the last :class:`ProviderError` when everything failed; :class:`NoHealthyDeployment`
(503, with ``Retry-After``) when every breaker is open; :class:`CapacityReached` (429, with
``Retry-After``) when every deployment is at capacity.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from llmops.gateway.catalog import ModelCatalog, ModelRoute
from llmops.gateway.deployments import Deployment
from llmops.gateway.endpoints import Endpoint
from llmops.gateway.usage import prompt_tokens
from llmops.model_config import RetryPolicy
from llmops.providers.base import (
    ContextWindowExceeded,
    Payload,
    ProviderError,
    ProviderResult,
    UpstreamFailure,
    UpstreamTimeout,
)
from llmops.tracing.metrics import GatewayMetrics

if TYPE_CHECKING:
    from llmops.limits.capacity import DeploymentCapacity

log = logging.getLogger("llmops.router")

T = TypeVar("T")
_MAX_ERROR_TEXT = 300


class NoHealthyDeployment(ProviderError):
    status = 503
    error_type = "service_unavailable"
    code = "no_healthy_deployment"


class CapacityReached(ProviderError):
    """Every usable deployment used its declared rpm/tpm for this minute (in this replica)."""

    status = 429
    error_type = "rate_limit_error"
    code = "deployment_capacity_reached"


class ProviderCrashed(UpstreamFailure):
    """A provider raised something other than a ProviderError: a bug, answered as a 502."""

    code = "provider_error"


@dataclass(slots=True)
class Attempt:
    """One upstream call (or one deployment skipped because the prompt cannot fit it)."""

    model: str
    deployment: str
    status: int
    at_ms: float  # since the request started
    ms: float
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "model": self.model,
            "deployment": self.deployment,
            "status": self.status,
            "at_ms": round(self.at_ms, 3),
            "ms": round(self.ms, 3),
        }
        if self.error:
            data["error"] = self.error
        return data


@dataclass(slots=True)
class CallLog:
    """What routing one request did, for its trace."""

    start: float  # time.perf_counter() when the request arrived
    attempts: list[Attempt] = field(default_factory=list)
    fallback: str | None = None  # the model that answered, when it was a fallback
    last: Deployment | None = None  # the deployment tried last

    def add(self, deployment: Deployment, status: int, began: float, ended: float, error: str | None) -> None:
        self.last = deployment
        if error is None and not self.attempts:
            return  # a first call that succeeded: the trace itself says it all
        self.attempts.append(
            Attempt(
                deployment.model,
                deployment.id,
                status,
                (began - self.start) * 1000,
                (ended - began) * 1000,
                error[:_MAX_ERROR_TEXT] if error else None,
            )
        )


@dataclass(slots=True)
class Answer:
    deployment: Deployment
    result: ProviderResult


@dataclass(slots=True)
class OpenedStream:
    """A stream whose first chunk has arrived; its deployment stays counted in flight until closed."""

    deployment: Deployment
    first: bytes
    rest: AsyncIterator[bytes]


class _Exhausted(Exception):
    def __init__(self, error: ProviderError) -> None:
        super().__init__(error.message)
        self.error = error


def _call_limit(deployment: Deployment, deadline_left: float | None) -> float | None:
    """Seconds this call may take: what is left of the retry deadline, and the deployment's total
    limit unless its provider enforces that itself."""
    total = None if deployment.provider.enforces_timeouts else deployment.config.timeouts.total
    if total is None:
        return deadline_left
    return total if deadline_left is None else min(total, deadline_left)


def backoff_delay(
    policy: RetryPolicy, round_number: int, retry_after: float | None, rng: random.Random
) -> float:
    """Full jitter: uniform in [0, min(max, base * 2^round)]; an upstream's Retry-After (capped) if longer."""
    ceiling = min(policy.backoff_max_seconds, policy.backoff_base_seconds * 2**round_number)
    delay = rng.uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, policy.retry_after_cap_seconds))
    return delay


class Router:
    def __init__(
        self,
        metrics: GatewayMetrics,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        capacity: DeploymentCapacity | None = None,
    ) -> None:
        self._metrics = metrics
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._capacity = capacity  # deployments' rpm/tpm shared by replicas (Redis); None: per replica

    async def whole(
        self, catalog: ModelCatalog, route: ModelRoute, endpoint: Endpoint, payload: Payload, calls: CallLog
    ) -> Answer:
        async def invoke(deployment: Deployment, limit: float | None) -> ProviderResult:
            limit = _call_limit(deployment, limit)
            if limit is None:  # the provider keeps its own time (the openai provider: aiohttp's timeouts)
                return await endpoint.call(deployment.provider, payload)
            async with asyncio.timeout(limit):
                return await endpoint.call(deployment.provider, payload)

        deployment, result = await self._route(catalog, route, endpoint, payload, calls, invoke, hold=False)
        return Answer(deployment, result)

    async def stream(
        self, catalog: ModelCatalog, route: ModelRoute, endpoint: Endpoint, payload: Payload, calls: CallLog
    ) -> OpenedStream:
        async def invoke(deployment: Deployment, limit: float | None) -> tuple[bytes, AsyncIterator[bytes]]:
            limit = _call_limit(deployment, limit)
            first_token = deployment.config.timeouts.first_token
            if first_token is not None:
                limit = first_token if limit is None else min(limit, first_token)
            chunks = endpoint.stream(deployment.provider, payload)
            try:
                async with asyncio.timeout(limit):
                    first = await anext(chunks)
            except StopAsyncIteration:
                raise UpstreamFailure("upstream ended the stream without sending anything") from None
            except BaseException:
                await close_quietly(chunks)
                raise
            return first, chunks

        deployment, (first, rest) = await self._route(
            catalog, route, endpoint, payload, calls, invoke, hold=True
        )
        return OpenedStream(deployment, first, rest)

    async def _route(
        self,
        catalog: ModelCatalog,
        route: ModelRoute,
        endpoint: Endpoint,
        payload: Payload,
        calls: CallLog,
        invoke: Callable[[Deployment, float | None], Awaitable[T]],
        *,
        hold: bool,
    ) -> tuple[Deployment, T]:
        try:
            return await self._try_model(route, endpoint, payload, calls, invoke, hold)
        except _Exhausted as exhausted:
            error = exhausted.error
        chain = route.config.context_window_fallbacks if error.context_exceeded else route.config.fallbacks
        if not (error.retryable or error.context_exceeded):
            chain = ()
        for name in chain:
            other = catalog.get(name)
            if other is None:
                continue
            self._metrics.fallbacks.inc((route.name, name))
            try:
                answer = await self._try_model(other, endpoint, payload, calls, invoke, hold)
            except _Exhausted as exhausted:
                error = exhausted.error
                if not (error.retryable or error.context_exceeded):
                    break
                continue
            calls.fallback = name
            return answer
        raise error

    async def _try_model(
        self,
        route: ModelRoute,
        endpoint: Endpoint,
        payload: Payload,
        calls: CallLog,
        invoke: Callable[[Deployment, float | None], Awaitable[T]],
        hold: bool,
    ) -> tuple[Deployment, T]:
        policy = route.config.retry
        deadline = calls.start + policy.deadline_seconds if policy.deadline_seconds is not None else None
        skipped = self._too_long(route, endpoint, payload, calls) if route.needs_token_count else {}
        needs_tools = bool(payload.get("tools"))
        tried: set[Deployment] = set(skipped)
        full: dict[Deployment, float] = {}  # at their shared capacity: seconds until they have room
        last: ProviderError | None = None
        attempts = rounds = calls_this_round = 0
        while attempts < policy.max_attempts:
            deployment = self._pick(route, tried, needs_tools)
            if deployment is None:
                if calls_this_round == 0:
                    break
                delay = backoff_delay(policy, rounds, last.retry_after if last else None, self._rng)
                if deadline is not None and time.perf_counter() + delay >= deadline:
                    break
                await self._sleep(delay)
                rounds += 1
                calls_this_round = 0
                tried = set(skipped)
                continue
            if self._capacity is not None and deployment.limited:
                wait = await self._shared_room(self._capacity, deployment)
                if wait is not None:  # full across replicas: not a call, try another deployment
                    deployment.breaker.release()
                    full[deployment] = wait
                    tried.add(deployment)
                    continue
            limit = None
            if deadline is not None:
                limit = deadline - time.perf_counter()
                if limit <= 0:
                    break
            attempts += 1
            calls_this_round += 1
            try:
                value = await self._call(deployment, invoke, limit, calls, hold)
            except ProviderError as error:
                if not error.retryable:
                    raise _Exhausted(error) from error
                last = error
                tried.add(deployment)
                continue
            return deployment, value
        if last is not None:
            raise _Exhausted(last)
        if skipped:
            raise _Exhausted(next(iter(skipped.values())))
        raise _Exhausted(self._no_healthy(route, full))

    async def _shared_room(self, capacity: DeploymentCapacity, deployment: Deployment) -> float | None:
        usage = deployment.usage
        if usage.forward is None:  # its calls' tokens count in the shared window too
            usage.forward = partial(capacity.record_tokens, deployment.model, deployment.id)
        config = deployment.config
        return await capacity.admit(deployment.model, deployment.id, config.rpm, config.tpm)

    def _pick(self, route: ModelRoute, tried: set[Deployment], needs_tools: bool) -> Deployment | None:
        deployments = route.deployments
        if len(deployments) == 1:  # the common case, without building lists
            only = deployments[0]
            if only in tried or (needs_tools and not only.provider.supports_tools):
                return None
            if only.limited and not only.has_room():
                return None
            return only if only.breaker.acquire() else None
        candidates = [
            deployment
            for deployment in deployments
            if deployment not in tried
            and deployment.breaker.allows()
            and (deployment.provider.supports_tools or not needs_tools)
            and (not deployment.limited or deployment.has_room())
        ]
        if not candidates:
            return None
        chosen = route.strategy.choose(candidates, self._rng)
        return chosen if chosen.breaker.acquire() else None

    async def _call(
        self,
        deployment: Deployment,
        invoke: Callable[[Deployment, float | None], Awaitable[T]],
        limit: float | None,
        calls: CallLog,
        hold: bool,
    ) -> T:
        breaker = deployment.breaker
        began = time.perf_counter()
        deployment.in_flight += 1
        if deployment.limited:
            deployment.usage.add(requests=1)
        try:
            value = await invoke(deployment, limit)
        except ProviderError as error:
            self._failed(deployment, error, began, calls)
            raise
        except TimeoutError as exc:
            timed_out = UpstreamTimeout(f"deployment {deployment.id} did not answer in time")
            self._failed(deployment, timed_out, began, calls)
            raise timed_out from exc
        except Exception as exc:  # boundary: a provider bug becomes a traced, retryable 502
            log.exception(
                "provider %s failed unexpectedly for model %s", deployment.provider_name, deployment.model
            )
            crashed = ProviderCrashed(f"provider {deployment.provider_name!r} failed: {type(exc).__name__}")
            self._failed(deployment, crashed, began, calls)
            raise crashed from exc
        except BaseException:  # cancelled (the client left): no verdict on the deployment
            deployment.in_flight -= 1
            breaker.release()
            raise
        if not hold:
            deployment.in_flight -= 1
        ended = time.perf_counter()
        breaker.record_success()
        deployment.observe_success(ended - began)
        calls.add(deployment, 200, began, ended, None)
        self._metrics.upstream_calls.inc((deployment.model, deployment.id, "200"))
        return value

    def _failed(self, deployment: Deployment, error: ProviderError, began: float, calls: CallLog) -> None:
        ended = time.perf_counter()
        deployment.in_flight -= 1
        if error.retryable:
            deployment.breaker.record_failure()
            deployment.observe_failure(error.message)
        else:
            deployment.breaker.release()
        calls.add(deployment, error.status, began, ended, error.message)
        self._metrics.upstream_calls.inc((deployment.model, deployment.id, str(error.status)))

    def _too_long(
        self, route: ModelRoute, endpoint: Endpoint, payload: Payload, calls: CallLog
    ) -> dict[Deployment, ProviderError]:
        """Deployments whose declared context window the prompt (plus max_tokens) does not fit."""
        skipped: dict[Deployment, ProviderError] = {}
        counted: dict[str, int] = {}
        wanted = payload.get("max_completion_tokens") or payload.get("max_tokens") or 0
        for deployment in route.deployments:
            window = deployment.config.context_window
            if window is None:
                continue
            tokenizer = deployment.config.upstream_model
            if tokenizer not in counted:
                counted[tokenizer] = prompt_tokens(endpoint, deployment.provider, payload)
            needed = counted[tokenizer] + int(wanted)
            if needed > window:
                message = (
                    f"the prompt needs {needed} tokens with max_tokens; deployment {deployment.id} "
                    f"of model {route.name!r} takes {window}"
                )
                now = time.perf_counter()
                calls.add(deployment, 400, now, now, message)
                skipped[deployment] = ContextWindowExceeded(message, param="messages")
        return skipped

    def _no_healthy(self, route: ModelRoute, shared_full: dict[Deployment, float]) -> ProviderError:
        full = [d for d in route.deployments if d.limited and d.breaker.allows() and not d.has_room()]
        waits = [deployment.usage.seconds_to_next_minute() for deployment in full] + list(
            shared_full.values()
        )
        if waits:
            wait = min(waits)
            return CapacityReached(
                f"every deployment of model {route.name!r} is at its rpm/tpm capacity; retry in {wait:.0f}s",
                retry_after=max(wait, 1.0),
            )
        wait = min((deployment.breaker.retry_in() for deployment in route.deployments), default=0.0)
        return NoHealthyDeployment(
            f"every deployment of model {route.name!r} is failing (circuit open); retry in {wait:.0f}s",
            retry_after=max(wait, 1.0),
        )


async def close_quietly(chunks: AsyncIterator[bytes]) -> None:
    close = getattr(chunks, "aclose", None)
    if close is not None:
        try:
            await close()
        except (ProviderError, OSError, RuntimeError):
            return

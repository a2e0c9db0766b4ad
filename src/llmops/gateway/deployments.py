"""A deployment at run time: its provider, its circuit breaker and what routing needs to know of it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmops.gateway.breaker import CircuitBreaker
from llmops.model_config import DeploymentConfig
from llmops.providers.base import Provider

_LATENCY_WEIGHT = 0.2  # weight of the newest call in the moving average
_MINUTE = 60.0


class MinuteUsage:
    """Requests and tokens of the last minute, as a sliding window estimated from two fixed minutes.

    The previous minute counts in proportion to how much of it still lies within the last 60 s (the
    approach of common rate limiters: within a few percent of an exact window, O(1) memory).
    With replicas sharing Redis, ``forward`` also hands every call's tokens to the shared window
    (:class:`llmops.limits.capacity.DeploymentCapacity`); this replica's own figures still apply.
    """

    __slots__ = (
        "_clock",
        "_minute",
        "_requests",
        "_tokens",
        "_previous_requests",
        "_previous_tokens",
        "forward",
    )

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.forward: Callable[[int], None] | None = None
        self._minute = int(clock() // _MINUTE)
        self._requests = self._tokens = self._previous_requests = self._previous_tokens = 0

    def _roll(self) -> float:
        now = self._clock()
        minute = int(now // _MINUTE)
        if minute != self._minute:
            if minute == self._minute + 1:
                self._previous_requests, self._previous_tokens = self._requests, self._tokens
            else:
                self._previous_requests = self._previous_tokens = 0
            self._requests = self._tokens = 0
            self._minute = minute
        return 1.0 - (now % _MINUTE) / _MINUTE  # share of the previous minute still in the window

    def add(self, requests: int = 0, tokens: int = 0) -> None:
        self._roll()
        self._requests += requests
        self._tokens += tokens
        if tokens and self.forward is not None:
            self.forward(tokens)

    def requests(self) -> float:
        weight = self._roll()
        return self._requests + self._previous_requests * weight

    def tokens(self) -> float:
        weight = self._roll()
        return self._tokens + self._previous_tokens * weight

    def seconds_to_next_minute(self) -> float:
        return _MINUTE - self._clock() % _MINUTE


@dataclass(eq=False, slots=True)
class Deployment:
    """One upstream of a public model, with live figures (all touched on the event loop only)."""

    config: DeploymentConfig  # with its effective timeouts
    provider: Provider
    breaker: CircuitBreaker
    in_flight: int = 0
    latency_seconds: float | None = None  # moving average of successful calls (streams: to first chunk)
    calls: int = 0
    failures: int = 0
    last_error: str | None = None
    usage: MinuteUsage = field(default_factory=MinuteUsage)

    @property
    def limited(self) -> bool:
        """A declared rpm or tpm capacity: routing keeps traffic within it (per replica)."""
        return self.config.rpm is not None or self.config.tpm is not None

    def has_room(self) -> bool:
        config = self.config
        if config.rpm is not None and self.usage.requests() >= config.rpm:
            return False
        return config.tpm is None or self.usage.tokens() < config.tpm

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def model(self) -> str:
        return self.config.name

    @property
    def provider_name(self) -> str:
        return self.config.provider

    @property
    def identity(self) -> tuple[Any, ...]:
        """What must be unchanged for live state (breaker, latency) to survive a config reload."""
        config = self.config
        return (config.name, config.id, config.provider, config.base_url, config.upstream_model)

    def observe_success(self, seconds: float) -> None:
        self.calls += 1
        average = self.latency_seconds
        self.latency_seconds = seconds if average is None else average + _LATENCY_WEIGHT * (seconds - average)

    def observe_failure(self, message: str) -> None:
        self.calls += 1
        self.failures += 1
        self.last_error = message

    def adopt(self, previous: Deployment) -> None:
        """Carry the live state of the same deployment over from the configuration before a reload."""
        self.breaker = previous.breaker
        self.usage = previous.usage
        self.latency_seconds = previous.latency_seconds
        self.calls = previous.calls
        self.failures = previous.failures
        self.last_error = previous.last_error

    def status(self) -> dict[str, Any]:
        breaker = self.breaker
        config = self.config
        return {
            "id": self.id,
            "provider": config.provider,
            "base_url": config.base_url,
            "upstream_model": config.upstream_model,
            "weight": config.weight,
            "priority": config.priority,
            "context_window": config.context_window,
            "state": breaker.state.label,
            "consecutive_failures": breaker.consecutive_failures,
            "error_rate": round(breaker.error_rate(), 4),
            "retry_in_seconds": round(breaker.retry_in(), 3),
            "times_opened": breaker.times_opened,
            "in_flight": self.in_flight,
            "rpm": config.rpm,
            "tpm": config.tpm,
            "requests_last_minute": round(self.usage.requests(), 1),
            "tokens_last_minute": round(self.usage.tokens(), 1),
            "latency_ms": None if self.latency_seconds is None else round(self.latency_seconds * 1000, 3),
            "calls": self.calls,
            "failures": self.failures,
            "last_error": self.last_error,
            "ready": self.provider.ready,
        }

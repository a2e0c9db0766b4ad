"""A deployment at run time: its provider, its circuit breaker and what routing needs to know of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmops.gateway.breaker import CircuitBreaker
from llmops.model_config import DeploymentConfig
from llmops.providers.base import Provider

_LATENCY_WEIGHT = 0.2  # weight of the newest call in the moving average


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
            "latency_ms": None if self.latency_seconds is None else round(self.latency_seconds * 1000, 3),
            "calls": self.calls,
            "failures": self.failures,
            "last_error": self.last_error,
            "ready": self.provider.ready,
        }

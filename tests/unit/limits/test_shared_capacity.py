"""Deployment capacity (declared rpm/tpm) shared by replicas through real Redis: two routers, each with
its own catalog as two processes would have, route against one set of windows."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from limits_support import redis_url
from llmops.gateway.catalog import ModelCatalog
from llmops.gateway.endpoints import CHAT
from llmops.gateway.router import CallLog, Router
from llmops.limits.capacity import DeploymentCapacity
from llmops.limits.redis_backend import RedisBackend
from llmops.model_config import ModelConfig
from llmops.providers.base import Payload, ProviderContext, ProviderError
from llmops.providers.registry import ProviderRegistry
from llmops.settings import Settings
from llmops.tracing.metrics import GatewayMetrics, LimitMetrics, MetricsRegistry

PAYLOAD: Payload = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}


class Replica:
    def __init__(self, model: dict[str, Any], capacity: DeploymentCapacity | None) -> None:
        config = ModelConfig.model_validate(model)
        self.catalog = ModelCatalog.build((config,), ProviderRegistry(), ProviderContext(settings=Settings()))
        self.router = Router(GatewayMetrics(MetricsRegistry()), capacity=capacity)

    async def ask(self) -> str:
        route = self.catalog.get("m")
        assert route is not None
        answer = await self.router.whole(self.catalog, route, CHAT, PAYLOAD, CallLog(time.perf_counter()))
        return answer.deployment.id


@pytest_asyncio.fixture
async def capacities(redis_prefix: str) -> AsyncIterator[tuple[DeploymentCapacity, DeploymentCapacity]]:
    backends = [RedisBackend(redis_url(), prefix=redis_prefix) for _ in range(2)]
    metrics = LimitMetrics(MetricsRegistry())
    yield DeploymentCapacity(backends[0], metrics), DeploymentCapacity(backends[1], metrics)
    for backend in backends:
        await backend.aclose()


def model(**small: Any) -> dict[str, Any]:
    return {
        "name": "m",
        "routing": "priority",
        "deployments": [
            {"id": "small", "provider": "echo", **small},
            {"id": "big", "provider": "echo", "priority": 1},
        ],
    }


async def test_an_rpm_capacity_holds_across_replicas(
    capacities: tuple[DeploymentCapacity, DeploymentCapacity],
) -> None:
    one, two = Replica(model(rpm=3), capacities[0]), Replica(model(rpm=3), capacities[1])
    answered = [await replica.ask() for replica in (one, two, one, two, one, two)]
    assert answered == ["small", "small", "small", "big", "big", "big"]


async def test_without_sharing_each_replica_has_the_whole_capacity() -> None:
    one, two = Replica(model(rpm=3), None), Replica(model(rpm=3), None)
    answered = [await replica.ask() for replica in (one, two, one, two, one, two)]
    assert answered == ["small"] * 6


async def test_every_deployment_full_across_replicas_is_a_429(
    capacities: tuple[DeploymentCapacity, DeploymentCapacity],
) -> None:
    only = {"name": "m", "deployments": [{"id": "only", "provider": "echo", "rpm": 2}]}
    one, two = Replica(only, capacities[0]), Replica(only, capacities[1])
    await one.ask()
    await two.ask()
    with pytest.raises(ProviderError) as full:
        await one.ask()
    assert (full.value.status, full.value.code) == (429, "deployment_capacity_reached")
    assert full.value.retry_after is not None
    assert 1 <= full.value.retry_after <= 60


async def test_tokens_used_on_one_replica_fill_the_tpm_of_the_other(
    capacities: tuple[DeploymentCapacity, DeploymentCapacity],
) -> None:
    one, two = Replica(model(tpm=100), capacities[0]), Replica(model(tpm=100), capacities[1])
    assert await one.ask() == "small"
    small = one.catalog.get("m").deployments[0]  # type: ignore[union-attr]
    small.usage.add(tokens=100)  # what the recorder does when the call's usage is known
    await capacities[0]._backend.flush()
    assert await two.ask() == "big"

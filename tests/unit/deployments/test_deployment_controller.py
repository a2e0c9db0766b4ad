"""Two canary controllers (two replicas) judge the same failing canary at once: one rollback, counted once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import Engine
from test_deployment_guards import CANARY, _trace

from llmops.deployments import CanaryController, DeploymentService, Rollout
from llmops.store import TraceRepository
from llmops.tracing.metrics import DeploymentMetrics, MetricsRegistry


async def test_two_controllers_roll_back_once(db: Engine, deployments: DeploymentService) -> None:
    deployments.deploy(CANARY, name="support", canary=10, rollout=Rollout(guards={"min_requests": 4}))
    now = datetime.now(UTC)
    TraceRepository(db).insert_many([_trace(now, CANARY, status=502) for _ in range(4)])
    metrics = [DeploymentMetrics(MetricsRegistry(), lambda: []) for _ in range(2)]
    woken: list[int] = []
    controllers = [
        CanaryController(deployments, check_seconds=60, metrics=item, on_change=lambda: woken.append(1))
        for item in metrics
    ]
    results = await asyncio.gather(*(controller.check_once() for controller in controllers))
    assert sorted(results) == [[], [("support", "auto-rollback")]]
    assert sum(item.transitions.value(("support", "auto-rollback")) for item in metrics) == 1
    assert woken == [1]
    info = deployments.get("support")
    assert (info.status, info.canary) == ("rolled_back", None)
    event = deployments.history("support")[0]
    assert (event.action, event.actor) == ("auto-rollback", "controller")
    assert event.reason == "max_error_rate: canary error rate 1.000 (4 of 4 calls) > 0.05"
    assert await controllers[0].check_once() == []  # nothing runs any more


async def test_a_healthy_canary_waits_for_its_step(deployments: DeploymentService) -> None:
    deployments.deploy(CANARY, name="support", canary=10, rollout=Rollout(guards={"min_requests": 1}))
    controller = CanaryController(deployments, check_seconds=60)
    assert await controller.check_once() == []  # no calls yet: hold
    assert deployments.get("support").status == "canary"

"""The canary controller: every few seconds, judge each running canary and promote or roll it back.

It runs on every replica. Each reads the same rows and traces, so they reach the same decision; the
change is compare-and-set on the row's revision, so exactly one replica applies it and the others
find the revision gone and do nothing. Rolling back is always automatic; promotion is automatic
unless the deployment was made with ``manual``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from llmops.deployments.background import BackgroundLoop
from llmops.deployments.repository import DeploymentConflict, DeploymentInfo

if TYPE_CHECKING:
    from llmops.deployments.service import DeploymentService
    from llmops.tracing.metrics import DeploymentMetrics

log = logging.getLogger("llmops.deployments")

ACTOR = "controller"


class CanaryController(BackgroundLoop):
    def __init__(
        self,
        service: DeploymentService,
        *,
        check_seconds: float,
        metrics: DeploymentMetrics | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.service = service
        self.check_seconds = check_seconds
        self._metrics = metrics
        self._on_change = on_change

    async def check_once(self) -> list[tuple[str, str]]:
        """Judge every running canary once; the (name, action) of each transition this call applied."""
        applied: list[tuple[str, str]] = []
        for info in await asyncio.to_thread(self.service.canaries):
            try:
                action = await self._judge(info)
            except Exception as exc:  # one deployment's failure must not stop the others' checks
                log.error("canary controller: checking %s failed: %s", info.name, exc)
                continue
            if action is not None:
                applied.append((info.name, action))
        return applied

    async def _judge(self, info: DeploymentInfo) -> str | None:
        assessment = await asyncio.to_thread(self.service.assess, info)
        if assessment.action == "hold":
            return None
        change = self.service.rollback if assessment.action == "rollback" else self.service.promote
        try:
            await asyncio.to_thread(
                change,
                info.name,
                actor=ACTOR,
                reason=assessment.reason,
                expected_revision=info.revision,
                automatic=True,
            )
        except DeploymentConflict:  # another replica (or a person) changed it first
            return None
        action = f"auto-{assessment.action}"
        log.warning("deployment %s: %s of %s: %s", info.name, action, info.canary, assessment.reason)
        if self._metrics is not None:
            self._metrics.transitions.inc((info.name, action))
        if self._on_change is not None:
            self._on_change()
        return action

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.check_seconds)
            try:
                await self.check_once()
            except Exception as exc:  # a background loop: log and try again at the next check
                log.error("canary controller: %s", exc)

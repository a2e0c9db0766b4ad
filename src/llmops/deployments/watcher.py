"""Keeps one server's models in step with the deployment rows that every replica shares.

Each server polls a cheap query (rows and the sum of their revisions) every ``poll_seconds``; when
it changed, the catalog is rebuilt through the :class:`~llmops.gateway.reload.ConfigReloader` (its
``managed`` hook is :meth:`DeploymentWatcher.overlay`), so deployments left unchanged keep their
providers' state. A change is served by every replica within about one poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from llmops.deployments.background import BackgroundLoop
from llmops.deployments.models import managed_models, traffic_percent
from llmops.model_config import ModelConfig
from llmops.tracing.metrics import LabelValues

if TYPE_CHECKING:
    from llmops.deployments.service import DeploymentService
    from llmops.gateway.reload import ConfigReloader

log = logging.getLogger("llmops.deployments")


class DeploymentWatcher(BackgroundLoop):
    def __init__(self, service: DeploymentService, *, poll_seconds: float) -> None:
        self.service = service
        self.poll_seconds = poll_seconds
        self.traffic: dict[tuple[str, str], float] = {}
        self._applied: tuple[int, int] | None = None  # the signature the catalog was last built at
        self._reloader: ConfigReloader | None = None
        self._wake = asyncio.Event()

    def overlay(self, configured: tuple[ModelConfig, ...]) -> tuple[ModelConfig, ...]:
        """The configured models with the deployment rows applied (blocking: database and registry)."""
        signature = self.service.signature()  # read before the rows: a change in between builds again
        rows = self.service.list_deployments()
        models = (
            configured
            if self.service.registry is None
            else managed_models(configured, rows, self.service.registry)
        )
        self.traffic = traffic_percent(models, [row.name for row in rows])
        self._applied = signature
        return models

    def traffic_samples(self) -> Iterable[tuple[LabelValues, float]]:
        return list(self.traffic.items())

    def follow(self, reloader: ConfigReloader) -> None:
        """Rebuild through ``reloader`` from now on (call :meth:`start` then)."""
        self._reloader = reloader

    def check_soon(self) -> None:
        """Look at once rather than at the next poll (after this server changed a deployment)."""
        self._wake.set()

    async def check(self) -> bool:
        """Rebuild the catalog when the rows changed since it was built; True when it did."""
        signature = await asyncio.to_thread(self.service.signature)
        if signature == self._applied or self._reloader is None:
            return False
        try:
            await self._reloader.rebuild()
        except BaseException:
            self._applied = None  # not applied: try again at the next poll
            raise
        return True

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()
            try:
                await self.check()
            except Exception as exc:  # a background loop: log, keep serving the catalog we have
                log.error("deployment watcher: could not apply the deployments: %s", exc)

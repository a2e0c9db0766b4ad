"""Hot reload of the models: re-read llmops.yaml and swap a new catalog in while requests go on.

A valid configuration is built and started aside, takes over the live state of deployments it
keeps unchanged (breakers, latency), and is swapped in in one assignment: requests under way finish
on the catalog they started with, which is closed once nothing runs on it any more. An invalid
configuration raises :class:`ReloadError` with one readable line, and the running one stays.
Only the models are reloaded; other settings (port, database, ...) need a restart. ``managed`` lays
the managed deployments (:mod:`llmops.deployments`) over the configured models on every build, and
:meth:`ConfigReloader.rebuild` builds again from the same settings when only those changed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from llmops.gateway.catalog import ModelCatalog, configured_models, default_timeouts
from llmops.gateway.service import Gateway
from llmops.model_config import ModelConfig
from llmops.providers.base import ProviderContext
from llmops.providers.registry import ProviderConfigError, ProviderRegistry
from llmops.settings import Settings, SettingsError

log = logging.getLogger("llmops.reload")

_RESTART_ONLY = ("host", "port", "database_url", "home", "redis_url", "trace_queue_size", "trace_overflow")
_IDLE_POLL_SECONDS = 1.0


class ReloadError(Exception):
    """The new configuration cannot be used; the message is one readable line."""


@dataclass
class ConfigReloader:
    gateway: Gateway
    registry: ProviderRegistry
    context: ProviderContext
    load: Callable[[], Settings]  # resolves the settings again, with the server's own arguments
    settings: Settings
    generation: int = 1
    managed: Callable[[tuple[ModelConfig, ...]], tuple[ModelConfig, ...]] | None = None
    # called after every successful reload (the guardrails rebuild from the new settings)
    listeners: list[Callable[[], None]] = field(default_factory=list)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _retiring: set[asyncio.Task[None]] = field(default_factory=set)

    async def reload(self) -> ModelCatalog:
        """Read the settings again and swap in the catalog they (and the managed deployments) give."""
        return await self._swap(self.load)

    async def rebuild(self) -> ModelCatalog:
        """Build again from the current settings: the managed deployments changed, the file did not."""
        return await self._swap(lambda: self.settings)

    async def _swap(self, load: Callable[[], Settings]) -> ModelCatalog:
        async with self._lock:  # two SIGHUPs in a row apply one after the other
            try:
                settings = await asyncio.to_thread(load)
                models = configured_models(settings)
                if self.managed is not None:
                    models = await asyncio.to_thread(self.managed, models)
                catalog = ModelCatalog.build(
                    models,
                    self.registry,
                    self.context,
                    timeouts=default_timeouts(settings),
                )
            except (SettingsError, ProviderConfigError, ValueError) as exc:
                error = ReloadError(str(exc).splitlines()[0])
                log.error("config reload failed, keeping the running configuration: %s", error)
                raise error from exc
            await catalog.start()
            changed = [
                name for name in _RESTART_ONLY if getattr(settings, name) != getattr(self.settings, name)
            ]
            if changed:
                log.warning("config reload: %s changed; that takes a restart", ", ".join(changed))
            catalog.adopt_state(self.gateway.catalog)
            previous = self.gateway.use_catalog(catalog)
            self.settings = settings
            self.generation += 1
            task = asyncio.create_task(self._retire(previous, settings.upstream_timeout_seconds))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
            for listener in self.listeners:
                listener()
            log.info("config reloaded: %d models", len(catalog.routes()))
            return catalog

    async def reload_logged(self) -> None:
        """The SIGHUP path: failures are logged in one line (by :meth:`reload`), never raised."""
        try:
            await self.reload()
        except ReloadError:
            return

    async def _retire(self, catalog: ModelCatalog, longest: float) -> None:
        """Close the replaced catalog once no request runs on it (or after the longest upstream call)."""
        waited = 0.0
        while waited < longest and any(deployment.in_flight for deployment in catalog.deployments()):
            await asyncio.sleep(_IDLE_POLL_SECONDS)
            waited += _IDLE_POLL_SECONDS
        await catalog.aclose()

    async def aclose(self) -> None:
        for task in list(self._retiring):
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)

"""The composition root: every long-lived object of a server (or a CLI call) is built here.

Nothing is global: the server and the CLI each build what they need from the settings and
pass it down explicitly.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from dataclasses import dataclass

from sqlalchemy import Engine

from llmops.gateway.auth import Authenticator
from llmops.gateway.catalog import ModelCatalog, configured_models
from llmops.gateway.keys import KeyService
from llmops.gateway.service import Gateway
from llmops.providers.base import ProviderContext
from llmops.providers.registry import ProviderRegistry
from llmops.settings import Settings
from llmops.store import KeyRepository, TraceRepository, open_database, ping
from llmops.tracing.metrics import GatewayMetrics, Gauge, MetricsRegistry
from llmops.tracing.service import TraceService
from llmops.tracing.writer import TraceWriter

log = logging.getLogger("llmops")


@dataclass
class Store:
    """The database and the services that only need it (what most CLI commands use)."""

    engine: Engine
    key_repository: KeyRepository
    trace_repository: TraceRepository
    keys: KeyService
    traces: TraceService

    def close(self) -> None:
        self.engine.dispose()


def open_store(settings: Settings) -> Store:
    engine = open_database(settings.resolved_database_url)
    key_repository = KeyRepository(engine)
    trace_repository = TraceRepository(engine)
    return Store(
        engine=engine,
        key_repository=key_repository,
        trace_repository=trace_repository,
        keys=KeyService(key_repository),
        traces=TraceService(trace_repository, key_repository),
    )


@dataclass
class Services:
    """Everything one running server owns; started and stopped by the server's lifespan."""

    settings: Settings
    store: Store
    catalog: ModelCatalog
    provider_context: ProviderContext
    metrics_registry: MetricsRegistry
    metrics: GatewayMetrics
    writer: TraceWriter
    authenticator: Authenticator
    gateway: Gateway

    async def start(self) -> None:
        await asyncio.to_thread(self.authenticator.load)
        self.writer.start()
        self.authenticator.start()
        await self.catalog.start()
        # what exists now (modules, models, settings) lives as long as the process: keep it out of
        # every later garbage collection, which otherwise shows as tens of milliseconds of p99
        gc.freeze()

    async def stop(self) -> None:
        """Drain the trace queue first: every answered request must end up stored."""
        await self.writer.drain()
        await self.authenticator.stop()
        await self.catalog.aclose()
        await self.provider_context.aclose()
        self.store.close()

    async def database_ok(self) -> bool:
        try:
            await asyncio.wait_for(asyncio.to_thread(ping, self.store.engine), timeout=2.0)
        except Exception as exc:  # instrumentation boundary: readiness reports, never raises
            log.warning("readiness: database check failed: %s", exc)
            return False
        return True


def build_services(
    settings: Settings, *, open_allowed: bool, registry: ProviderRegistry | None = None
) -> Services:
    store = open_store(settings)
    context = ProviderContext(settings=settings)
    catalog = ModelCatalog.build(configured_models(settings), registry or ProviderRegistry(), context)
    metrics_registry = MetricsRegistry()
    metrics = GatewayMetrics(metrics_registry)
    writer = TraceWriter(
        store.trace_repository,
        metrics,
        max_queue=settings.trace_queue_size,
        batch_size=settings.trace_batch_size,
        flush_seconds=settings.trace_flush_seconds,
    )
    metrics_registry.add(
        Gauge("llmops_trace_queue_depth", "Traces waiting to be written.", lambda: writer.depth)
    )
    authenticator = Authenticator(
        store.key_repository, cache_seconds=settings.key_cache_seconds, open_allowed=open_allowed
    )
    gateway = Gateway(catalog, writer, metrics, record_content=settings.trace_content)
    return Services(
        settings=settings,
        store=store,
        catalog=catalog,
        provider_context=context,
        metrics_registry=metrics_registry,
        metrics=metrics,
        writer=writer,
        authenticator=authenticator,
        gateway=gateway,
    )

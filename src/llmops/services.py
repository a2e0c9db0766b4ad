"""The composition root: every long-lived object of a server (or a CLI call) is built here.

Nothing is global: the server and the CLI each build what they need from the settings and
pass it down explicitly.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sqlalchemy import Engine

from llmops.alerts.evaluator import LEASE, AlertEvaluator
from llmops.alerts.leader import LeaseElector
from llmops.alerts.service import AlertService
from llmops.alerts.statistics import Measurer, budget_reader, key_finder, team_finder
from llmops.annotation.service import AnnotationService
from llmops.audit import AuditService
from llmops.credentials import CredentialService, key_source
from llmops.datasets.service import DatasetService
from llmops.deployments import CanaryController, DeploymentService, DeploymentWatcher
from llmops.drift.service import DriftService, packaged_embedder
from llmops.evals.service import EvalService
from llmops.gateway.auth import ANONYMOUS, Authenticator
from llmops.gateway.cache import ResponseCache
from llmops.gateway.catalog import ModelCatalog, configured_models
from llmops.gateway.deployments import Deployment
from llmops.gateway.endpoints import CHAT
from llmops.gateway.guarding import GuardrailStep, judge_through
from llmops.gateway.keys import KeyService
from llmops.gateway.limiting import LimitStep
from llmops.gateway.prompting import PromptStep
from llmops.gateway.reload import ConfigReloader
from llmops.gateway.router import Router
from llmops.gateway.service import Gateway
from llmops.guardrails.engine import GuardrailSet
from llmops.guardrails.registry import GuardrailRegistry
from llmops.guardrails.service import GuardrailKeeper, GuardrailService
from llmops.jobs.service import JobService
from llmops.limits.backends import LimitBackend, MemoryBackend
from llmops.limits.limiter import Limiter, LimiterOptions
from llmops.limits.spend import SpendLedger, SpendRepository
from llmops.monitoring.resources import ResourceMetrics
from llmops.monitoring.rollups import RollupWriter, count_feedback
from llmops.monitoring.stats import StatsService
from llmops.prompts.experiments import ExperimentService
from llmops.prompts.repository import PromptRepository
from llmops.prompts.resolver import PromptResolver
from llmops.prompts.services import PromptService
from llmops.providers.base import ProviderContext
from llmops.providers.registry import ProviderRegistry
from llmops.registry import ArtefactStore, RegistryService
from llmops.settings import Settings, load_settings
from llmops.store import KeyRepository, TraceRepository, open_database, ping
from llmops.store.traces import spend_by_key, spend_of_keys
from llmops.teams.repository import TeamRepository
from llmops.teams.service import TeamService
from llmops.tracing.metrics import (
    Counter,
    DeploymentMetrics,
    GatewayMetrics,
    Gauge,
    GaugeFamily,
    GuardrailMetrics,
    LabelValues,
    LimitMetrics,
    MetricsRegistry,
)
from llmops.tracing.otel.export import OtlpExporter, OtlpMetrics
from llmops.tracing.otel.ingest import OtlpIngest
from llmops.tracing.otel.spans import SpanRepository
from llmops.tracing.otel.tree import TraceTree
from llmops.tracing.service import TraceService
from llmops.tracing.writer import TraceWriter
from llmops.training.service import FinetuneService

if TYPE_CHECKING:
    from llmops.gateway.cache.semantic import Embedder, SemanticIndex
    from llmops.limits.capacity import DeploymentCapacity

log = logging.getLogger("llmops")


@dataclass
class Store:
    """The database and the services that only need it (what most CLI commands use)."""

    engine: Engine
    key_repository: KeyRepository
    team_repository: TeamRepository
    teams: TeamService
    trace_repository: TraceRepository
    keys: KeyService
    traces: TraceService
    prompts: PromptService
    experiments: ExperimentService
    datasets: DatasetService
    jobs: JobService
    evals: EvalService
    annotation: AnnotationService
    registry: RegistryService
    finetune: FinetuneService
    deployments: DeploymentService
    audit: AuditService
    credentials: CredentialService
    spend: SpendRepository
    guardrails: GuardrailService
    stats: StatsService
    alerts: AlertService
    drift: DriftService

    def __post_init__(self) -> None:
        self.alerts.measurer.use_drift(self.drift)  # drift_score rules read the drift checks

    def close(self) -> None:
        self.jobs.close()
        self.engine.dispose()


def open_store(settings: Settings) -> Store:
    engine = open_database(settings.resolved_database_url)
    audit = AuditService(engine)
    key_repository = KeyRepository(engine)
    team_repository = TeamRepository(engine)
    trace_repository = TraceRepository(engine)
    prompt_repository = PromptRepository(engine)
    prompts = PromptService(prompt_repository)
    datasets = DatasetService(engine)
    registry = RegistryService(
        engine, ArtefactStore.for_settings(settings), settings.home / "cache" / "artefacts"
    )
    evals = EvalService(engine, datasets)
    deployments = DeploymentService(
        engine, registry, evals=evals, configured=lambda: [m.name for m in configured_models(settings)]
    )
    registry.in_use = deployments.uses  # a version a deployment serves is not deleted
    spend = SpendRepository(engine)
    return Store(
        guardrails=GuardrailService(
            engine, lambda: settings.guardrails, lambda: guardrail_registry(settings), audit
        ),
        engine=engine,
        prompts=prompts,
        experiments=ExperimentService(engine, prompts, prompt_repository),
        key_repository=key_repository,
        team_repository=team_repository,
        trace_repository=trace_repository,
        keys=KeyService(
            key_repository,
            team_repository,
            audit=audit,
            spend=spend.current,
            trace_spend=lambda ids: spend_by_key(engine, ids),
        ),
        teams=TeamService(
            team_repository,
            audit=audit,
            key_count=lambda team_id: len(key_repository.list(team_id=team_id)),
            spend=spend.current,
            trace_spend=lambda team_id: spend_of_keys(engine, key_repository.ids_of_team(team_id)),
        ),
        traces=TraceService(
            trace_repository,
            key_repository,
            on_feedback=count_feedback,
            tree=TraceTree(trace_repository, SpanRepository(engine)).of,
        ),
        stats=StatsService(engine, lambda: _key_teams(key_repository, team_repository)),
        alerts=_alert_service(settings, engine, audit, key_repository, team_repository, spend),
        datasets=datasets,
        drift=DriftService(
            engine,
            datasets,
            alpha=settings.drift_alpha,
            sample=settings.drift_sample_size,
            permutations=settings.drift_permutations,
            embedder=lambda: packaged_embedder(settings.local_threads),
        ),
        annotation=AnnotationService(engine, datasets),
        registry=registry,
        evals=evals,
        jobs=JobService(engine, owner=f"{socket.gethostname()}:{os.getpid()}"),
        finetune=FinetuneService(engine, datasets, settings.home, registry=registry),
        deployments=deployments,
        audit=audit,
        spend=spend,
        credentials=CredentialService(
            engine, key_source(settings), audit, used_by=lambda: _credential_users(settings)
        ),
    )


def _key_teams(keys: KeyRepository, teams: TeamRepository) -> dict[str, tuple[str | None, str | None]]:
    """Key id -> (team id, team name), for stats by team."""
    names = {team_id: row.name for team_id, row in teams.all().items()}
    return {row.id: (row.team_id, names.get(row.team_id or "")) for row in keys.list(include_revoked=True)}


def _alert_service(
    settings: Settings,
    engine: Engine,
    audit: AuditService,
    keys: KeyRepository,
    teams: TeamRepository,
    spend: SpendRepository,
) -> AlertService:
    """Alert rules measured on the rollups (through a stats service of their own: it keeps no state)."""
    measurer = Measurer(
        StatsService(engine, lambda: _key_teams(keys, teams)),
        find_key=key_finder(keys),
        find_team=team_finder(teams),
        budget_use=budget_reader(keys, teams, spend),
    )
    return AlertService(
        engine,
        measurer,
        configured=lambda: settings.alerts,
        channels=lambda: settings.alert_channels,
        audit=audit,
    )


def guardrail_registry(settings: Settings) -> GuardrailRegistry:
    """The built-in guardrail kinds, entry-point ones, and those of ``guardrail_modules``."""
    registry = GuardrailRegistry()
    for module in settings.guardrail_modules:
        registry.load_module(module)
    return registry


def _credential_users(settings: Settings) -> dict[str, list[str]]:
    """Stored credential name → the configured models whose deployments need it."""
    users: dict[str, list[str]] = {}
    for model in settings.models:
        for deployment in model.deployments:
            if deployment.api_key_credential:
                users.setdefault(deployment.api_key_credential, []).append(model.name)
    return users


@dataclass
class Services:
    """Everything one running server owns; started and stopped by the server's lifespan."""

    settings: Settings
    store: Store
    provider_context: ProviderContext
    metrics_registry: MetricsRegistry
    metrics: GatewayMetrics
    writer: TraceWriter
    authenticator: Authenticator
    gateway: Gateway
    cache: ResponseCache
    reloader: ConfigReloader
    prompt_resolver: PromptResolver
    deployment_watcher: DeploymentWatcher
    canary_controller: CanaryController
    deployment_metrics: DeploymentMetrics
    limiter: Limiter
    guardrail_keeper: GuardrailKeeper
    alert_evaluator: AlertEvaluator
    otlp_ingest: OtlpIngest
    otlp_exporter: OtlpExporter | None  # None: no otlp_endpoint configured
    resources: ResourceMetrics

    @property
    def catalog(self) -> ModelCatalog:
        """The models served right now (a reload swaps it)."""
        return self.gateway.catalog

    async def start(self) -> None:
        await asyncio.to_thread(self.authenticator.load)
        await asyncio.to_thread(self.store.jobs.recover_interrupted)
        if self.otlp_exporter is not None:
            self.otlp_exporter.start()
        self.writer.start()
        self.limiter.start()
        self.authenticator.start()
        await self.prompt_resolver.start()
        await self.catalog.start()
        self.deployment_watcher.start()
        self.canary_controller.start()
        self.guardrail_keeper.start()
        self.alert_evaluator.start()
        self.resources.start()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        # what exists now (modules, models, settings) lives as long as the process: keep it out of
        # every later garbage collection, which otherwise shows as tens of milliseconds of p99
        gc.freeze()

    async def start_in_process(self, models: Iterable[str]) -> None:
        """A lighter start for a command that calls the gateway in-process (`llmops prompts try`).

        Starts the trace writer and the providers of ``models`` and of their fallbacks only (a model
        the command does not use is not loaded); no key cache (the caller is ``ANONYMOUS``), no SIGHUP
        handler, no ``gc.freeze``. :meth:`stop` ends it as it ends a server, draining the traces.
        """
        if self.otlp_exporter is not None:
            self.otlp_exporter.start()
        self.writer.start()
        deployments = _deployments_of(self.catalog, models)
        results = await asyncio.gather(
            *(deployment.provider.start() for deployment in deployments), return_exceptions=True
        )
        for deployment, result in zip(deployments, results, strict=True):
            if isinstance(result, BaseException):
                log.error(
                    "model %s deployment %s failed to start: %s", deployment.model, deployment.id, result
                )

    def _on_sighup(self) -> None:
        log.info("SIGHUP: reloading the configuration")
        asyncio.ensure_future(self.reloader.reload_logged())

    async def stop(self) -> None:
        """Stop the jobs first (they call the gateway), then drain the trace queue: every answered
        request must end up stored."""
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        await asyncio.to_thread(self.store.jobs.close)  # running jobs stop at their next progress report
        await self.resources.stop()
        await self.writer.drain()
        if self.otlp_exporter is not None:
            await self.otlp_exporter.close()  # after the writer: it hands over the last traces
        await self.limiter.stop()  # settled spend written to the database
        await self.guardrail_keeper.stop()
        await self.alert_evaluator.stop()  # the lease is given up: another replica takes over
        await self.authenticator.stop()
        await self.prompt_resolver.stop()
        await self.canary_controller.stop()
        await self.deployment_watcher.stop()
        await self.reloader.aclose()
        await self.cache.aclose()
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


def _deployments_of(catalog: ModelCatalog, models: Iterable[str]) -> list[Deployment]:
    """The deployments that may answer for ``models``: theirs and their fallbacks', each once."""
    found: list[Deployment] = []
    seen: set[str] = set()
    waiting = list(models)
    while waiting:
        name = waiting.pop()
        route = catalog.get(name)
        if name in seen or route is None:
            continue
        seen.add(name)
        found.extend(route.deployments)
        waiting.extend((*route.config.fallbacks, *route.config.context_window_fallbacks))
    return found


def build_limits(
    settings: Settings, spend: SpendRepository, registry: MetricsRegistry
) -> tuple[Limiter, DeploymentCapacity | None]:
    """Rate limits and budgets in this process, or in Redis when replicas share LLMOPS_REDIS_URL
    (then deployments' declared rpm/tpm are shared too: the capacity; None without Redis).

    Nothing connects here: Redis is reached by the first limited request.
    """
    metrics = LimitMetrics(registry)
    backend: LimitBackend
    capacity = None
    if settings.redis_url:
        from llmops.limits.capacity import DeploymentCapacity
        from llmops.limits.redis_backend import RedisBackend

        backend = RedisBackend(settings.redis_url)
        capacity = DeploymentCapacity(backend, metrics, on_error=settings.rate_limit_on_redis_error)
    else:
        backend = MemoryBackend()
    options = LimiterOptions(
        alert_fraction=settings.budget_alert_fraction,
        rate_on_error=settings.rate_limit_on_redis_error,
        budget_on_error=settings.budget_on_redis_error,
        hold_seconds=settings.limits_hold_seconds,
        flush_seconds=settings.spend_flush_seconds,
    )
    return Limiter(backend, SpendLedger(spend), metrics, options), capacity


def build_cache(settings: Settings, metrics: GatewayMetrics, context: ProviderContext) -> ResponseCache:
    """In-memory answers with one replica; Redis when replicas share LLMOPS_REDIS_URL.

    Nothing connects or loads here: Redis is reached on the first lookup, and the semantic side
    (MiniLM, the vector index) is built the first time a model in semantic mode is asked.
    """
    from llmops.gateway.cache.stores import AnswerStore, MemoryAnswerStore

    answers: AnswerStore
    if settings.redis_url:
        from llmops.gateway.cache.redis_store import RedisAnswerStore

        answers = RedisAnswerStore(settings.redis_url)
    else:
        answers = MemoryAnswerStore(settings.cache_max_entries)
    return ResponseCache(answers, metrics, semantic_factory=_semantic(settings, context))


def _semantic(settings: Settings, context: ProviderContext) -> Callable[[], tuple[SemanticIndex, Embedder]]:
    def build() -> tuple[SemanticIndex, Embedder]:
        from llmops.gateway.cache.semantic import build_semantic

        return build_semantic(settings, context)

    return build


def _deployment_gauges(gateway: Gateway) -> tuple[GaugeFamily, GaugeFamily]:
    def states() -> Iterable[tuple[LabelValues, float]]:
        for deployment in gateway.catalog.deployments():
            yield (deployment.model, deployment.id), float(deployment.breaker.state)

    def in_flight() -> Iterable[tuple[LabelValues, float]]:
        for deployment in gateway.catalog.deployments():
            yield (deployment.model, deployment.id), float(deployment.in_flight)

    labels = ("model", "deployment")
    return (
        GaugeFamily(
            "llmops_deployment_circuit_state",
            "Circuit breaker of each deployment: 0 closed, 1 half-open, 2 open.",
            labels,
            states,
        ),
        GaugeFamily(
            "llmops_deployment_in_flight", "Upstream calls under way per deployment.", labels, in_flight
        ),
    )


def build_services(
    settings: Settings,
    *,
    open_allowed: bool,
    registry: ProviderRegistry | None = None,
    reload: Callable[[], Settings] | None = None,
) -> Services:
    """``reload`` resolves the settings again (SIGHUP, POST /api/admin/reload); default: same file."""
    store = open_store(settings)
    registry = registry or ProviderRegistry()
    context = ProviderContext(settings=settings, credentials=store.credentials.reveal_many)
    watcher = DeploymentWatcher(store.deployments, poll_seconds=settings.deployment_poll_seconds)
    catalog = ModelCatalog.build(watcher.overlay(configured_models(settings)), registry, context)
    metrics_registry = MetricsRegistry()
    metrics = GatewayMetrics(metrics_registry)
    exporter = build_exporter(settings, OtlpMetrics(metrics_registry), lambda: gateway.catalog)
    writer = TraceWriter(
        store.trace_repository,
        metrics,
        max_queue=settings.trace_queue_size,
        batch_size=settings.trace_batch_size,
        flush_seconds=settings.trace_flush_seconds,
        overflow=settings.trace_overflow,
        rollups=RollupWriter(store.engine),
        on_stored=exporter.offer if exporter is not None else None,
    )
    metrics_registry.add(
        Gauge("llmops_trace_queue_depth", "Traces waiting to be written.", lambda: writer.depth)
    )
    auth_failures = Counter(
        "llmops_auth_failures_total",
        "Failed authentications, by reason (missing, invalid, expired, blocked).",
        ("reason",),
    )
    metrics_registry.add(auth_failures)
    authenticator = Authenticator(
        store.key_repository,
        cache_seconds=settings.key_cache_seconds,
        open_allowed=open_allowed,
        teams=store.team_repository,
        failures_per_minute=settings.auth_failures_per_minute,
        failure_counter=auth_failures,
    )
    cache = build_cache(settings, metrics, context)
    prompt_resolver = PromptResolver(
        store.prompts, store.experiments, refresh_seconds=settings.prompt_refresh_seconds
    )
    limiter, capacity = build_limits(settings, store.spend, metrics_registry)
    guard_step = GuardrailStep(
        GuardrailSet(()), GuardrailMetrics(metrics_registry), stream_window=settings.guardrail_stream_window
    )
    gateway = Gateway(
        catalog,
        writer,
        metrics,
        record_content=settings.trace_content,
        router=Router(metrics, capacity=capacity),
        cache=cache,
        prompts=PromptStep(prompt_resolver, record_variables=settings.trace_content),
        limits=LimitStep(limiter, default_max_tokens=settings.limits_default_max_tokens),
        guardrails=guard_step,
    )
    guard_step.judge = judge_through(gateway.handle, CHAT, ANONYMOUS)
    for gauge in _deployment_gauges(gateway):
        metrics_registry.add(gauge)
    resources = ResourceMetrics(
        metrics_registry, lambda: [deployment.provider for deployment in gateway.catalog.deployments()]
    )
    reloader = ConfigReloader(
        gateway,
        registry,
        context,
        reload or (lambda: load_settings(settings.config)),
        settings,
        managed=watcher.overlay,
    )
    watcher.follow(reloader)
    keeper = GuardrailKeeper(
        store.guardrails,
        lambda: reloader.settings.guardrails,
        guardrail_registry(settings),
        guard_step.use,
        refresh_seconds=settings.guardrail_refresh_seconds,
    )
    keeper.load()  # a rule of llmops.yaml that cannot be built stops the start with one line
    reloader.listeners.append(keeper.changed)
    store.alerts.configured = lambda: reloader.settings.alerts  # a reload brings the file's new rules
    store.alerts.channels = lambda: reloader.settings.alert_channels
    store.alerts.check_configured()  # a rule or channel of llmops.yaml that cannot be used stops the start
    alert_evaluator = AlertEvaluator(
        store.alerts,
        LeaseElector(store.engine, LEASE, ttl_seconds=max(3 * settings.alert_eval_seconds, 10.0)),
        interval_seconds=settings.alert_eval_seconds,
    )
    deployment_metrics = DeploymentMetrics(metrics_registry, watcher.traffic_samples)
    controller = CanaryController(
        store.deployments,
        check_seconds=settings.deployment_check_seconds,
        metrics=deployment_metrics,
        on_change=watcher.check_soon,
    )
    return Services(
        settings=settings,
        store=store,
        provider_context=context,
        metrics_registry=metrics_registry,
        metrics=metrics,
        writer=writer,
        authenticator=authenticator,
        gateway=gateway,
        cache=cache,
        reloader=reloader,
        prompt_resolver=prompt_resolver,
        deployment_watcher=watcher,
        canary_controller=controller,
        deployment_metrics=deployment_metrics,
        limiter=limiter,
        guardrail_keeper=keeper,
        alert_evaluator=alert_evaluator,
        otlp_ingest=OtlpIngest(
            writer,
            SpanRepository(store.engine),
            record_content=settings.trace_content,
            max_body_bytes=settings.max_body_bytes,
            cost_of=lambda model, used, made: _cost_of(gateway.catalog, model, used, made),
        ),
        otlp_exporter=exporter,
        resources=resources,
    )


def build_exporter(
    settings: Settings, metrics: OtlpMetrics, catalog: Callable[[], ModelCatalog]
) -> OtlpExporter | None:
    """The OTLP exporter of ``otlp_endpoint`` (None when unset); it tells each span the address
    of the upstream that answered, from the catalog of the moment."""
    if not settings.otlp_endpoint:
        return None

    def address_of(model: str, deployment_id: str | None) -> tuple[str, int | None] | None:
        route = catalog().get(model)
        for deployment in route.deployments if route is not None else ():
            if deployment.id == deployment_id and deployment.config.base_url:
                parts = urlsplit(deployment.config.base_url)
                return (parts.hostname, parts.port) if parts.hostname else None
        return None

    return OtlpExporter(
        settings.otlp_endpoint,
        metrics,
        protocol=settings.otlp_protocol,
        headers=settings.otlp_headers,
        batch_size=settings.otlp_batch_size,
        flush_seconds=settings.otlp_flush_seconds,
        queue_size=settings.otlp_queue_size,
        timeout_seconds=settings.otlp_timeout_seconds,
        service_name=settings.otlp_service_name,
        content=settings.otlp_content,
        address_of=address_of,
    )


def _cost_of(catalog: ModelCatalog, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    """What a model call reported over OTLP cost, at the prices of the model of that name (if served)."""
    route = catalog.get(model)
    if route is None or not route.deployments:
        return None
    return route.deployments[0].config.cost(prompt_tokens, completion_tokens)

"""The models this gateway serves: public name → its deployments, routing strategy and policies.

A catalog is built whole from the settings and never changed afterwards; a config reload builds
a new one and swaps it in, so a request holds one consistent view from start to end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson

from llmops.errors import UserError
from llmops.gateway.breaker import CircuitBreaker
from llmops.gateway.deployments import Deployment
from llmops.gateway.strategies import Strategy, strategy_for
from llmops.model_config import DeploymentConfig, ModelConfig, Timeouts
from llmops.providers.base import ProviderContext
from llmops.providers.registry import ProviderConfigError, ProviderRegistry
from llmops.settings import Settings

log = logging.getLogger("llmops.models")

ECHO_FALLBACK = ModelConfig.model_validate({"name": "echo", "provider": "echo"})


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """One public model name and everything needed to answer for it."""

    config: ModelConfig
    deployments: tuple[Deployment, ...]
    strategy: Strategy
    needs_token_count: bool  # some deployment declares a context window

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def provider_name(self) -> str:
        return self.deployments[0].provider_name

    @property
    def supports_tools(self) -> bool:
        return any(deployment.provider.supports_tools for deployment in self.deployments)

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "routing": self.config.routing,
            "fallbacks": list(self.config.fallbacks),
            "context_window_fallbacks": list(self.config.context_window_fallbacks),
            "cache": self.config.cache.mode,
            "deployments": [deployment.status() for deployment in self.deployments],
        }


def default_models() -> tuple[ModelConfig, ...]:
    """The embedded models when the `local` extra is installed, else the echo model."""
    from llmops.providers.local import packaged_models

    models = packaged_models()
    if not models:
        log.warning("no models configured and the `local` extra is not installed: serving the echo model")
        return (ECHO_FALLBACK,)
    return models


def configured_models(settings: Settings) -> tuple[ModelConfig, ...]:
    return settings.models or default_models()


def default_timeouts(settings: Settings) -> Timeouts:
    return Timeouts(
        connect=settings.upstream_connect_timeout_seconds,
        first_token=settings.upstream_first_token_timeout_seconds,
        total=settings.upstream_timeout_seconds,
    )


def effective_deployment(
    model: ModelConfig, deployment: DeploymentConfig, defaults: Timeouts
) -> DeploymentConfig:
    """The deployment with its time limits resolved: model's > deployment's own > server defaults."""
    timeouts = model.timeouts.over(deployment.timeouts.over(defaults))
    return deployment.model_copy(update={"timeouts": timeouts})


def stored_credentials(models: tuple[ModelConfig, ...], context: ProviderContext) -> dict[str, str]:
    """Decrypt, once per build, the stored credentials that deployments name in ``api_key_credential``.

    A name with no stored credential, or one that does not open, is a configuration error
    (:class:`ProviderConfigError`): the server does not start, a reload keeps the running models.
    """
    wanted = {d.api_key_credential: m.name for m in models for d in m.deployments if d.api_key_credential}
    if not wanted:
        return {}
    if context.credentials is None:
        name, model = min(wanted.items())
        raise ProviderConfigError(f"model {model!r}: api_key_credential {name!r} needs the credential store")
    try:
        found = context.credentials(wanted)
    except UserError as exc:
        raise ProviderConfigError(exc.message) from exc
    for name, model in sorted(wanted.items()):
        if name not in found:
            raise ProviderConfigError(
                f"model {model!r}: no stored credential named {name!r} "
                f"(store it with `llmops credentials set {name}`)"
            )
    return dict(found)


def model_card(config: ModelConfig, created: int) -> dict[str, Any]:
    return {"id": config.name, "object": "model", "created": created, "owned_by": config.provider}


class ModelCatalog:
    def __init__(self, routes: list[ModelRoute]) -> None:
        self._routes = {route.name: route for route in routes}
        self._created = int(time.time())
        cards = [model_card(route.config, self._created) for route in routes]
        self.listing_body = orjson.dumps({"object": "list", "data": cards})
        self._card_bodies = {card["id"]: orjson.dumps(card) for card in cards}

    @classmethod
    def build(
        cls,
        models: tuple[ModelConfig, ...],
        registry: ProviderRegistry,
        context: ProviderContext,
        *,
        timeouts: Timeouts | None = None,
    ) -> ModelCatalog:
        defaults = timeouts or default_timeouts(context.settings)
        secrets = stored_credentials(models, context)
        routes = []
        for model in models:
            deployments = []
            for declared in model.deployments:
                config = effective_deployment(model, declared, defaults)
                if declared.api_key_credential:
                    config = config.with_credential(secrets[declared.api_key_credential])
                provider = registry.create(config, context)
                deployments.append(Deployment(config, provider, CircuitBreaker(model.circuit_breaker)))
            routes.append(
                ModelRoute(
                    config=model,
                    deployments=tuple(deployments),
                    strategy=strategy_for(model.routing),
                    needs_token_count=any(d.context_window for d in model.deployments),
                )
            )
        return cls(routes)

    def get(self, name: str) -> ModelRoute | None:
        return self._routes.get(name)

    def card_body(self, name: str) -> bytes | None:
        return self._card_bodies.get(name)

    def routes(self) -> list[ModelRoute]:
        return list(self._routes.values())

    def deployments(self) -> list[Deployment]:
        return [deployment for route in self._routes.values() for deployment in route.deployments]

    def adopt_state(self, previous: ModelCatalog) -> None:
        """Keep breakers and latency figures of deployments that a reload left unchanged."""
        before = {deployment.identity: deployment for deployment in previous.deployments()}
        for deployment in self.deployments():
            earlier = before.get(deployment.identity)
            if earlier is not None:
                deployment.adopt(earlier)

    async def start(self) -> None:
        """Start every provider; one that fails is logged and stays not-ready, the rest serve."""
        deployments = self.deployments()
        results = await asyncio.gather(
            *(deployment.provider.start() for deployment in deployments), return_exceptions=True
        )
        for deployment, result in zip(deployments, results, strict=True):
            if isinstance(result, BaseException):
                log.error(
                    "model %s deployment %s (%s) failed to start: %s",
                    deployment.model,
                    deployment.id,
                    deployment.provider_name,
                    result,
                )

    def not_ready(self) -> list[str]:
        return [
            route.name
            for route in self._routes.values()
            if not any(deployment.provider.ready for deployment in route.deployments)
        ]

    async def aclose(self) -> None:
        for deployment in self.deployments():
            await deployment.provider.aclose()

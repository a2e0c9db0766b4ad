"""The models this gateway serves: public name → config and the provider instance answering it."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson

from llmops.providers.base import Provider, ProviderContext
from llmops.providers.registry import ProviderRegistry
from llmops.settings import ModelConfig, Settings

log = logging.getLogger("llmops.models")

ECHO_FALLBACK = ModelConfig(name="echo", provider="echo")


@dataclass(frozen=True, slots=True)
class ModelRoute:
    config: ModelConfig
    provider: Provider

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def provider_name(self) -> str:
        return self.config.provider


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
        cls, models: tuple[ModelConfig, ...], registry: ProviderRegistry, context: ProviderContext
    ) -> ModelCatalog:
        return cls([ModelRoute(config, registry.create(config, context)) for config in models])

    def get(self, name: str) -> ModelRoute | None:
        return self._routes.get(name)

    def card_body(self, name: str) -> bytes | None:
        return self._card_bodies.get(name)

    def routes(self) -> list[ModelRoute]:
        return list(self._routes.values())

    async def start(self) -> None:
        """Start every provider; one that fails is logged and stays not-ready, the rest serve."""
        results = await asyncio.gather(
            *(route.provider.start() for route in self._routes.values()), return_exceptions=True
        )
        for route, result in zip(self._routes.values(), results, strict=True):
            if isinstance(result, BaseException):
                log.error("model %s (%s) failed to start: %s", route.name, route.provider_name, result)

    def not_ready(self) -> list[str]:
        return [route.name for route in self._routes.values() if not route.provider.ready]

    async def aclose(self) -> None:
        for route in self._routes.values():
            await route.provider.aclose()

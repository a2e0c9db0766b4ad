"""Provider classes by name: the built-ins plus third-party ones from entry points.

A third-party package registers ``myprovider = "pkg.module:MyProvider"`` in the
``llmops.providers`` entry-point group; models then say ``provider: myprovider``.
Classes are imported on first use, so a server that only proxies never imports llama.cpp.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from llmops.providers.base import Provider, ProviderContext
from llmops.settings import DeploymentConfig

ENTRY_POINT_GROUP = "llmops.providers"

BUILTIN_PROVIDERS = {
    "echo": "llmops.providers.echo:EchoProvider",
    "openai": "llmops.providers.openai:OpenAIProvider",
    "local": "llmops.providers.local:LocalProvider",
}


class ProviderConfigError(Exception):
    """A model names a provider that does not exist or cannot be built; one readable line."""


class ProviderRegistry:
    """Maps provider names to classes; one instance per server, built from the built-ins and plugins."""

    def __init__(self, targets: dict[str, str] | None = None, *, load_plugins: bool = True) -> None:
        self._targets = dict(BUILTIN_PROVIDERS if targets is None else targets)
        self._classes: dict[str, type[Provider]] = {}
        if load_plugins:
            for entry in entry_points(group=ENTRY_POINT_GROUP):
                self._targets.setdefault(entry.name, entry.value)

    def names(self) -> list[str]:
        return sorted(set(self._targets) | set(self._classes))

    def register(self, name: str, cls: type[Provider]) -> None:
        self._classes[name] = cls

    def get(self, name: str) -> type[Provider]:
        if name in self._classes:
            return self._classes[name]
        target = self._targets.get(name)
        if target is None:
            raise ProviderConfigError(f"unknown provider {name!r}; known: {', '.join(self.names())}")
        module_name, _, attribute = target.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise ProviderConfigError(f"provider {name!r} cannot be loaded from {target}: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, Provider)):
            raise ProviderConfigError(f"provider {name!r} ({target}) is not a llmops Provider subclass")
        self._classes[name] = cls
        return cls

    def create(self, config: DeploymentConfig, context: ProviderContext) -> Provider:
        cls = self.get(config.provider)
        try:
            return cls(config, context)
        except (ValueError, TypeError) as exc:
            raise ProviderConfigError(str(exc)) from exc

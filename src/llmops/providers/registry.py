"""Provider classes by name: the built-ins plus third-party ones from entry points.

A third-party package registers ``myprovider = "pkg.module:MyProvider"`` in the
``llmops.providers`` entry-point group; models then say ``provider: myprovider``.
Classes are imported on first use, so a server that only proxies never imports llama.cpp.
"""

from __future__ import annotations

from llmops.plugins import PluginTable
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
        self._table: PluginTable[Provider] = PluginTable(
            BUILTIN_PROVIDERS if targets is None else targets,
            group=ENTRY_POINT_GROUP,
            base=Provider,
            what="provider",
            error=ProviderConfigError,
            load_plugins=load_plugins,
        )

    def names(self) -> list[str]:
        return self._table.names()

    def register(self, name: str, cls: type[Provider]) -> None:
        self._table.register(name, cls)

    def get(self, name: str) -> type[Provider]:
        return self._table.get(name)

    def create(self, config: DeploymentConfig, context: ProviderContext) -> Provider:
        cls = self.get(config.provider)
        try:
            return cls(config, context)
        except (ValueError, TypeError) as exc:
            raise ProviderConfigError(str(exc)) from exc

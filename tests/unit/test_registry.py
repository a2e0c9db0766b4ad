"""The provider registry: built-ins, custom classes, and plugins from the entry-point group."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmops.providers import (
    ENTRY_POINT_GROUP,
    Provider,
    ProviderConfigError,
    ProviderContext,
    ProviderRegistry,
)
from llmops.providers.echo import EchoProvider
from llmops.providers.openai import OpenAIProvider
from llmops.settings import DeploymentConfig, Settings

PLUGIN_MODULE = "llmops_test_plugin_providers"


class CustomProvider(Provider):
    name = "custom"


def test_entry_point_group_name() -> None:
    assert ENTRY_POINT_GROUP == "llmops.providers"


def test_builtins_resolve() -> None:
    registry = ProviderRegistry(load_plugins=False)
    assert registry.get("echo") is EchoProvider
    assert registry.get("openai") is OpenAIProvider
    assert {"echo", "openai", "local"} <= set(registry.names())
    assert registry.names() == sorted(registry.names())


def test_unknown_provider_lists_known_names() -> None:
    registry = ProviderRegistry(load_plugins=False)
    with pytest.raises(ProviderConfigError) as exc:
        registry.get("ollama")
    message = str(exc.value)
    assert message.startswith("unknown provider 'ollama'; known: ")
    assert "echo, local, openai" in message
    assert "\n" not in message


def test_target_that_is_not_a_provider_subclass() -> None:
    registry = ProviderRegistry({"notaprovider": "llmops.settings:ModelConfig", "func": "json:dumps"})
    for name in ("notaprovider", "func"):
        with pytest.raises(ProviderConfigError, match="is not a llmops Provider subclass"):
            registry.get(name)


@pytest.mark.parametrize("target", ["no_such_module_xyz:Thing", "llmops.providers.echo:NoSuchClass"])
def test_target_that_cannot_be_imported(target: str) -> None:
    registry = ProviderRegistry({"broken": target}, load_plugins=False)
    with pytest.raises(ProviderConfigError, match=f"provider 'broken' cannot be loaded from {target}"):
        registry.get("broken")


def test_register_custom_provider() -> None:
    registry = ProviderRegistry(load_plugins=False)
    registry.register("custom", CustomProvider)
    assert registry.get("custom") is CustomProvider
    assert "custom" in registry.names()
    provider = registry.create(
        DeploymentConfig(name="mine", provider="custom"), ProviderContext(settings=Settings())
    )
    assert isinstance(provider, CustomProvider)
    assert provider.upstream_model == "mine"
    other = ProviderRegistry(load_plugins=False)
    assert "custom" not in other.names()  # registries share no state


def test_register_overrides_a_builtin() -> None:
    registry = ProviderRegistry(load_plugins=False)
    registry.register("echo", CustomProvider)
    assert registry.get("echo") is CustomProvider


def test_create_reports_bad_config_as_provider_config_error() -> None:
    registry = ProviderRegistry(load_plugins=False)
    context = ProviderContext(settings=Settings())
    assert isinstance(registry.create(DeploymentConfig(name="e", provider="echo"), context), EchoProvider)
    with pytest.raises(ProviderConfigError, match="needs base_url"):
        registry.create(DeploymentConfig(name="o", provider="openai"), context)
    with pytest.raises(ProviderConfigError, match="unknown provider"):
        registry.create(DeploymentConfig(name="x", provider="nope"), context)


@pytest.fixture
def plugin_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An installed distribution (a real .dist-info on sys.path) registering providers."""
    (tmp_path / f"{PLUGIN_MODULE}.py").write_text(
        "from llmops.providers import Provider\n\n\n"
        "class PluginProvider(Provider):\n"
        "    name = 'plugged'\n\n\n"
        "class ShadowEcho(Provider):\n"
        "    name = 'echo'\n"
    )
    dist_info = tmp_path / "llmops_test_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: llmops-test-plugin\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n"
        f"plugged = {PLUGIN_MODULE}:PluginProvider\n"
        f"echo = {PLUGIN_MODULE}:ShadowEcho\n"
        f"broken = {PLUGIN_MODULE}:Missing\n"
        "\n[some.other.group]\n"
        f"elsewhere = {PLUGIN_MODULE}:PluginProvider\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield
    sys.modules.pop(PLUGIN_MODULE, None)


@pytest.mark.usefixtures("plugin_on_path")
def test_plugins_from_entry_points() -> None:
    registry = ProviderRegistry()
    assert {"plugged", "broken"} <= set(registry.names())
    assert "elsewhere" not in registry.names()
    plugged = registry.get("plugged")
    assert plugged.__name__ == "PluginProvider"
    assert issubclass(plugged, Provider)
    assert registry.get("echo") is EchoProvider  # a plugin cannot take a built-in's name
    with pytest.raises(ProviderConfigError, match="cannot be loaded"):
        registry.get("broken")


@pytest.mark.usefixtures("plugin_on_path")
def test_plugins_can_be_left_out() -> None:
    assert "plugged" not in ProviderRegistry(load_plugins=False).names()
    assert (
        "plugged"
        not in ProviderRegistry({"echo": "llmops.providers.echo:EchoProvider"}, load_plugins=False).names()
    )

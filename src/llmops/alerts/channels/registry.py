"""Channel kinds by name: the built-ins and third-party ones (entry-point group ``llmops.alert_channels``,
``name = "pkg.module:Class"``), each imported the first time it is used."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from llmops.alerts.channels.base import Channel, ChannelOptions, InvalidChannel
from llmops.alerts.config import ChannelConfig
from llmops.plugins import PluginTable

ENTRY_POINT_GROUP = "llmops.alert_channels"
_PACKAGE = "llmops.alerts.channels"
BUILTIN_CHANNELS: dict[str, str] = {
    "webhook": f"{_PACKAGE}.webhook:WebhookChannel",
    "slack": f"{_PACKAGE}.slack:SlackChannel",
    "smtp": f"{_PACKAGE}.smtp:SmtpChannel",
    "log": f"{_PACKAGE}.log:LogChannel",
}
LOG = ChannelConfig(type="log", name="log")
"""The channel a rule reaches by the name ``log`` unless ``alert_channels`` names another."""


class ChannelRegistry:
    def __init__(self, *, load_plugins: bool = True) -> None:
        self._table: PluginTable[Channel] = PluginTable(
            BUILTIN_CHANNELS,
            group=ENTRY_POINT_GROUP,
            base=Channel,
            what="alert channel type",
            error=InvalidChannel,
            load_plugins=load_plugins,
        )

    def names(self) -> list[str]:
        return self._table.names()

    def register(self, name: str, cls: type[Channel]) -> None:
        self._table.register(name, cls)

    def options(self, config: ChannelConfig, where: str = "channel") -> ChannelOptions:
        """The channel's options, checked by its type (InvalidChannel with the first problem)."""
        cls = self._table.get(config.type)
        try:
            return cls.Options.model_validate(config.options())
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"])
            at = f"{where}.{field}" if field else where
            raise InvalidChannel(f"{at}: {first['msg']}", param=at) from None

    def build(self, config: ChannelConfig) -> Channel:
        return self._table.get(config.type)(self.options(config))


def resolve(
    channels: tuple[str | ChannelConfig, ...], named: Mapping[str, ChannelConfig]
) -> list[tuple[str, ChannelConfig]]:
    """A rule's channels as (name, config): names looked up in ``alert_channels`` (``log`` is built in),
    channels in place named by their ``name`` or as ``type#position``."""
    found = []
    for position, channel in enumerate(channels, start=1):
        if isinstance(channel, str):
            config = named.get(channel) or (LOG if channel == "log" else None)
            if config is None:
                known = ", ".join(sorted({*named, "log"}))
                raise InvalidChannel(
                    f"channels: no channel named {channel!r} in alert_channels (known: {known})",
                    param="channels",
                )
            found.append((channel, config))
        else:
            found.append((channel.name or f"{channel.type}#{position}", channel))
    return found


def check_named(named: Mapping[str, Any], registry: ChannelRegistry) -> None:
    """Every channel of ``alert_channels`` builds (a bad one stops the start with one line)."""
    for name, config in named.items():
        registry.options(config, f"alert_channels.{name}")

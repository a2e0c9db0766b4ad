"""The log channel: one line on the ``llmops.alerts`` logger (warning when firing, info otherwise)."""

from __future__ import annotations

import logging
from typing import ClassVar, Literal

from pydantic import Field

from llmops.alerts.channels.base import Channel, ChannelOptions, Notification

log = logging.getLogger("llmops.alerts")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class LogOptions(ChannelOptions):
    level: Literal["debug", "info", "warning", "error"] | None = Field(
        default=None, description="Log level (default: warning when firing, info otherwise)."
    )


class LogChannel(Channel):
    kind: ClassVar[str] = "log"
    Options: ClassVar[type[ChannelOptions]] = LogOptions

    async def send(self, notification: Notification) -> None:
        options = self.options
        assert isinstance(options, LogOptions)
        default = "warning" if notification.status in ("firing", "repeat") else "info"
        log.log(_LEVELS[options.level or default], "alert %s", notification.text)

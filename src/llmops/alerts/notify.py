"""Sending a notification to a rule's channels: all at once, each retried a few times with back-off.

A failure never propagates: it is logged and comes back as a :class:`Delivery` with ``ok`` false, the
number of attempts and the last error, which the evaluator records on the event. URLs in errors are cut to
their scheme and host: a webhook's path is its secret, and the history is shown to viewers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from llmops.alerts.channels.base import ChannelError, InvalidChannel, Notification
from llmops.alerts.channels.registry import ChannelRegistry
from llmops.alerts.config import ChannelConfig
from llmops.alerts.redact import redact_text

log = logging.getLogger("llmops.alerts")

ATTEMPTS = 3
BACKOFF_SECONDS = 0.5  # then 1 s: a webhook that is down costs the evaluator its timeouts plus 1.5 s


@dataclass(frozen=True, slots=True)
class Delivery:
    channel: str
    type: str
    ok: bool
    attempts: int
    error: str | None = None
    ms: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "type": self.type,
            "ok": self.ok,
            "attempts": self.attempts,
            "error": self.error,
            "ms": round(self.ms, 1),
        }


class Dispatcher:
    def __init__(
        self,
        registry: ChannelRegistry,
        *,
        attempts: int = ATTEMPTS,
        backoff_seconds: float = BACKOFF_SECONDS,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.registry = registry
        self._attempts = attempts
        self._backoff = backoff_seconds
        self._sleep = sleep

    async def deliver(
        self,
        notification: Notification,
        channels: Sequence[tuple[str, ChannelConfig]],
        *,
        attempts: int | None = None,
    ) -> list[Delivery]:
        """Send to every channel concurrently; one :class:`Delivery` per channel, in order."""
        tries = attempts or self._attempts
        return list(
            await asyncio.gather(*(self._one(name, config, notification, tries) for name, config in channels))
        )

    async def _one(
        self, name: str, config: ChannelConfig, notification: Notification, tries: int
    ) -> Delivery:
        started = time.perf_counter()
        try:
            channel = self.registry.build(config)
        except InvalidChannel as exc:
            log.error("alert %s: channel %s cannot be built: %s", notification.rule, name, exc.message)
            return Delivery(name, config.type, False, 0, exc.message)
        error = ""
        attempt = 0
        for attempt in range(1, tries + 1):
            try:
                await channel.send(notification)
            except ChannelError as exc:
                error = redact_text(str(exc))
            except Exception as exc:  # boundary: a channel's bug must not stop the evaluator
                error = redact_text(f"{type(exc).__name__}: {exc}")
                log.error("alert channel %s (%s) failed: %s", name, config.type, error)
                log.debug("alert channel %s (%s): the traceback", name, config.type, exc_info=True)
            else:
                return Delivery(name, config.type, True, attempt, None, _ms(started))
            if attempt < tries:
                await self._sleep(self._backoff * 2 ** (attempt - 1))
        log.warning(
            "alert %s (%s): channel %s failed after %d attempts: %s",
            notification.rule,
            notification.status,
            name,
            attempt,
            error,
        )
        return Delivery(name, config.type, False, attempt, error[:500], _ms(started))


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000

"""Warnings that repeat on every request (a cache or limits backend down) are logged once per period."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class ThrottledLog:
    """At most one warning per ``every`` seconds for each kind; the next one says how many were held back."""

    def __init__(
        self, logger: logging.Logger, every: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._logger = logger
        self._every = every
        self._clock = clock
        self._next: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warning(self, kind: str, message: str, *args: object) -> None:
        now = self._clock()
        if now < self._next.get(kind, 0.0):
            self._held[kind] = self._held.get(kind, 0) + 1
            return
        self._next[kind] = now + self._every
        held = self._held.pop(kind, 0)
        if held:
            message += f" ({held} more like this since the last one, not logged)"
        self._logger.warning(message, *args)

"""What a notification channel is: one small class per kind, built from its options, that sends a
:class:`Notification` or raises :class:`ChannelError`.

A channel kind subclasses :class:`Channel`, names itself in ``type`` and declares its options as a
pydantic model in ``Options`` (unknown options are refused when a rule is stored). It is found by
name in :class:`~llmops.alerts.channels.registry.ChannelRegistry`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from llmops.errors import UserError


class ChannelError(Exception):
    """A send failed (the message says why, on one line); the dispatcher retries it."""


class InvalidChannel(UserError):
    """A channel that cannot be built: unknown type or name, or a bad option (400)."""


class ChannelOptions(BaseModel):
    """Base of a channel kind's options: unknown options are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class Notification:
    """One message about one rule: it fires, fires still (repeat), is resolved, or is a test."""

    rule: str
    status: str  # firing, resolved, repeat, test
    severity: str
    statistic: str
    value: float | None
    threshold: float
    comparison: str
    window: str
    at: datetime
    active_since: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)
    filters: dict[str, str] = field(default_factory=dict)
    summary: str | None = None
    event_id: str | None = None

    @property
    def title(self) -> str:
        marker = {"firing": "FIRING", "repeat": "FIRING", "resolved": "RESOLVED", "test": "TEST"}
        return f"[{marker.get(self.status, self.status.upper())}] {self.rule} ({self.severity})"

    @property
    def value_text(self) -> str:
        return "no data" if self.value is None else f"{self.value:.6g}"

    @property
    def text(self) -> str:
        """One line a human reads first: what, how much, against what."""
        scope = ", ".join(f"{name}={value}" for name, value in sorted(self.filters.items()))
        where = f" for {scope}" if scope else ""
        line = (
            f"{self.title}: {self.statistic} is {self.value_text}{where} over {self.window} "
            f"(alert when {self.comparison} {self.threshold:g})"
        )
        return f"{line}. {self.summary}" if self.summary else line

    def as_json(self) -> dict[str, Any]:
        """The generic webhook's body (documented in docs/monitoring.md)."""
        return {
            "version": 1,
            "status": "firing" if self.status == "repeat" else self.status,
            "repeat": self.status == "repeat",
            "rule": self.rule,
            "severity": self.severity,
            "statistic": self.statistic,
            "value": self.value,
            "comparison": self.comparison,
            "threshold": self.threshold,
            "window": self.window,
            "filters": self.filters,
            "labels": self.labels,
            "summary": self.summary,
            "text": self.text,
            "active_since": self.active_since.isoformat() if self.active_since else None,
            "at": self.at.isoformat(),
            "event_id": self.event_id,
            "dedup_key": self.dedup_key,
        }

    @property
    def dedup_key(self) -> str:
        """The same for every sending of one message about one episode (a firing, its resolution):
        sending is at least once, so a receiver that sees a key twice can drop the second."""
        since = self.active_since.isoformat() if self.active_since else self.at.isoformat()
        kind = "firing" if self.status == "repeat" else self.status
        suffix = f":{self.at.isoformat()}" if self.status in ("repeat", "test") else ""
        return f"{self.rule}:{kind}:{since}{suffix}"


class Channel(ABC):
    """A way to tell someone. Built for each delivery from validated options (holds no connection)."""

    kind: ClassVar[str]
    Options: ClassVar[type[ChannelOptions]] = ChannelOptions

    def __init__(self, options: ChannelOptions) -> None:
        self.options = options

    @abstractmethod
    async def send(self, notification: Notification) -> None:
        """Deliver it, or raise :class:`ChannelError` (any other exception counts as a failure too)."""

"""How long work reports progress, whatever shows it (a Rich bar in the CLI, a job row over REST)."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Called as work advances: the current stage, units done in it, and its total when known."""

    def __call__(self, stage: str, done: int, total: int | None) -> None: ...


def no_progress(stage: str, done: int, total: int | None) -> None:
    """The default: report nothing."""


class Cancelled(Exception):
    """Raised inside long work when its job was asked to stop; the work leaves nothing half-written."""

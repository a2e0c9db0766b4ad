"""`llmops prompts expand` and `llmops prompts try` (being written)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the expansion and playground commands to the `prompts` command group."""

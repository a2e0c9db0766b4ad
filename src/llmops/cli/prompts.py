"""`llmops prompts`: the prompt registry from the command line (being written)."""

from __future__ import annotations

import typer

from llmops.cli import prompt_tools

app = typer.Typer(
    help="Versioned prompts: push and pull files, labels, rollback, diff, render.", no_args_is_help=True
)

prompt_tools.register(app)

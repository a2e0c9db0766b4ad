"""`llmops experiments`: A/B/n tests between prompt versions (being written)."""

from __future__ import annotations

import typer

app = typer.Typer(help="A/B/n experiments between prompt versions on live traffic.", no_args_is_help=True)

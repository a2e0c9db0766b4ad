"""`llmops models`: the models the gateway serves, from llmops.yaml or the embedded defaults."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from llmops.cli._common import readable_errors, settings_for

app = typer.Typer(help="Show the models the gateway serves.", no_args_is_help=True)


@app.command("list")
def list_models(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List public model names with their deployments: provider, upstream model, USD per 1M tokens."""
    from rich.console import Console
    from rich.table import Table

    from llmops.gateway.catalog import configured_models

    with readable_errors():
        models = configured_models(settings_for(ctx))
    if as_json:
        typer.echo(json.dumps([model.model_dump(exclude_none=True) for model in models], indent=2))
        return
    table = Table()
    table.add_column("name", no_wrap=True)
    for heading in ("deployment", "provider", "upstream model", "base url", "$/1M in / out"):
        table.add_column(heading, overflow="fold")
    for model in models:
        for number, deployment in enumerate(model.deployments):
            name = model.name
            if number == 0 and len(model.deployments) > 1:
                name += f" ({model.routing})"
            table.add_row(
                name if number == 0 else "",
                deployment.id,
                deployment.provider,
                deployment.upstream_model,
                deployment.base_url or "",
                f"{deployment.input_price_per_1m:g} / {deployment.output_price_per_1m:g}",
            )
    Console().print(table)

"""`llmops models`: the models the gateway serves, from llmops.yaml or the embedded defaults."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from llmops.cli._common import admin_api_json, readable_errors, settings_for

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


def _server_url(ctx: typer.Context, url: str | None) -> str:
    if url:
        return url.rstrip("/")
    settings = settings_for(ctx)
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


@app.command("status")
def status(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(help="The running server (default: http://<host>:<port> from the settings)."),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(help="An admin API key (default: $LLMOPS_API_KEY; none needed on an open server)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Live state of every deployment on a running server: circuit breaker, load, latency, failures.

    Asks GET /api/models/status of the server (each replica answers for itself).
    """

    from rich.console import Console
    from rich.table import Table

    with readable_errors():
        base = _server_url(ctx, url)
    data = admin_api_json(f"{base}/api/models/status", key)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    table = Table(title=f"{base} (config generation {data['generation']})")
    table.add_column("model", no_wrap=True)
    for heading in ("deployment", "circuit", "in flight", "latency ms", "calls", "failed", "last error"):
        table.add_column(heading, overflow="fold")
    colours = {"closed": "green", "half-open": "yellow", "open": "red"}
    for model in data["data"]:
        for number, deployment in enumerate(model["deployments"]):
            state = deployment["state"]
            if state == "open":
                state += f" ({deployment['retry_in_seconds']:.0f}s)"
            latency = deployment["latency_ms"]
            table.add_row(
                model["name"] if number == 0 else "",
                deployment["id"],
                f"[{colours.get(deployment['state'], 'white')}]{state}[/]",
                str(deployment["in_flight"]),
                "-" if latency is None else f"{latency:.1f}",
                str(deployment["calls"]),
                str(deployment["failures"]),
                deployment["last_error"] or "",
            )
    Console().print(table)

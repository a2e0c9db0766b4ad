"""The `llmops` command line: thin commands over the same service functions as the REST API."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llmops import __version__
from llmops.cli import (
    alerts,
    annotate,
    audit,
    credentials,
    datasets,
    deploy,
    drift,
    evals,
    experiments,
    finetune,
    guardrails,
    keys,
    models,
    pii,
    prompts,
    registry,
    stats,
    teams,
    traces,
)
from llmops.cli._common import GlobalOptions, readable_errors, settings_for

if TYPE_CHECKING:
    from llmops.settings import Settings

app = typer.Typer(
    name="llmops",
    help="Run, observe, evaluate and improve LLM applications. Start with `llmops serve`.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)
app.add_typer(traces.app, name="traces")
app.add_typer(keys.app, name="keys")
app.add_typer(teams.app, name="teams")
app.add_typer(credentials.app, name="credentials")
app.add_typer(guardrails.app, name="guardrails")
app.add_typer(alerts.app, name="alerts")
app.add_typer(stats.app, name="stats")
app.add_typer(drift.app, name="drift")
app.add_typer(audit.app, name="audit")
app.add_typer(models.app, name="models")
app.add_typer(prompts.app, name="prompts")
app.add_typer(experiments.app, name="experiments")
app.add_typer(pii.app, name="pii")
app.add_typer(datasets.app, name="datasets")
app.add_typer(evals.app, name="evals")
app.add_typer(annotate.app, name="annotate")
app.add_typer(registry.app, name="registry")
app.add_typer(finetune.app, name="finetune")
app.add_typer(deploy.app, name="deploy")


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"llmops {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="llmops.yaml to read (default: ./llmops.yaml, ~/.llmops/)."),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(help="Database URL (default: sqlite under ~/.llmops; env LLMOPS_DATABASE_URL)."),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Global options apply to every command."""
    ctx.obj = GlobalOptions(config=config, database_url=database_url)


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default 127.0.0.1; env LLMOPS_HOST).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind (default 4000; env LLMOPS_PORT).")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="llmops.yaml declaring models.")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning or error.")] = None,
) -> None:
    """Start the gateway: OpenAI-compatible API on /v1, admin API on /api, /metrics, /healthz, /readyz.

    With no config it serves the embedded model (`smollm2`) and stores traces in SQLite under
    ~/.llmops. Without API keys it only binds a loopback address. SIGTERM drains the trace queue;
    SIGHUP (or POST /api/admin/reload) re-reads the models from llmops.yaml without a restart.
    """
    from llmops.server.run import serve as run_server

    def resolve() -> Settings:
        return settings_for(ctx, host=host, port=port, config=config, log_level=log_level)

    with readable_errors():
        run_server(resolve(), reload=resolve)


def run() -> None:
    app()

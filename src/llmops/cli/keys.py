"""`llmops keys`: create, list and revoke API keys."""

from __future__ import annotations

from typing import Annotated

import typer

from llmops.cli._common import readable_errors, store_for

app = typer.Typer(help="Manage API keys (Authorization: Bearer <key>).", no_args_is_help=True)


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Option("--name", "-n", help="A name to recognise the key by (unique among active keys).")
    ],
    scope: Annotated[
        str, typer.Option("--scope", "-s", help="inference: /v1 only; admin: also /api (traces, keys).")
    ] = "inference",
    secret: Annotated[
        str | None,
        typer.Option(help="Use this secret instead of a generated one (e.g. one already deployed)."),
    ] = None,
) -> None:
    """Create a key and print its secret once; only a hash of it is stored."""
    with readable_errors(), store_for(ctx) as store:
        created = store.keys.create(name, scope, secret)
    typer.echo(created.secret)
    typer.echo(
        f"created key {created.row.id} ({created.row.name}, scope {created.row.scope}); "
        "the secret above is not shown again",
        err=True,
    )


@app.command("list")
def list_keys(
    ctx: typer.Context,
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
) -> None:
    """List keys (never their secrets)."""
    from rich.console import Console
    from rich.table import Table

    with readable_errors(), store_for(ctx) as store:
        rows = store.keys.list(include_revoked=all_keys)
    table = Table("id", "name", "scope", "prefix", "created", "revoked")
    for row in rows:
        revoked = row.revoked_at.strftime("%Y-%m-%d %H:%M") if row.revoked_at else ""
        table.add_row(
            row.id, row.name, row.scope, row.prefix + "…", row.created_at.strftime("%Y-%m-%d %H:%M"), revoked
        )
    Console().print(table)


@app.command()
def revoke(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="Key id or name.")],
) -> None:
    """Revoke a key; running servers stop accepting it within key_cache_seconds (30 s)."""
    with readable_errors(), store_for(ctx) as store:
        row = store.keys.revoke(key)
    typer.echo(f"revoked key {row.id} ({row.name})")

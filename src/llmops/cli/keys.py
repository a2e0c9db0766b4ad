"""`llmops keys`: create, list, change, rotate and revoke API keys."""

from __future__ import annotations

from typing import Annotated

import typer

from llmops.cli._common import readable_errors, store_for
from llmops.cli.access_options import (
    AllModelsOption,
    BudgetOption,
    MetaOption,
    ModelsOption,
    RpmOption,
    TpmOption,
    format_limits,
    format_spend,
    limits_from_options,
    merged_limits,
    metadata_from_options,
    model_patterns,
    models_change,
    parse_expiry,
    parse_seconds,
)

app = typer.Typer(help="Manage API keys (Authorization: Bearer <key>).", no_args_is_help=True)

_ROLE_HELP = (
    "inference: /v1 only; viewer: read its team's traces, prompts, datasets, evals; "
    "editor: also change them; admin: everything, every team."
)


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Option("--name", "-n", help="A name to recognise the key by (unique among active keys).")
    ],
    role: Annotated[str, typer.Option("--role", "-r", "--scope", "-s", help=_ROLE_HELP)] = "inference",
    team: Annotated[str | None, typer.Option("--team", "-t", help="The team that owns the key.")] = None,
    models: ModelsOption = None,
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    budget: BudgetOption = None,
    expires: Annotated[
        str | None, typer.Option(help="When it stops working: 30d, 12h, 2w or an ISO date.")
    ] = None,
    meta: MetaOption = None,
    secret: Annotated[
        str | None,
        typer.Option(help="Use this secret instead of a generated one (e.g. one already deployed)."),
    ] = None,
) -> None:
    """Create a key and print its secret once; only a hash of it is stored."""
    from llmops.audit.actor import cli_actor

    with readable_errors(), store_for(ctx) as store:
        created = store.keys.create(
            name,
            role,
            secret,
            team=team,
            models=model_patterns(models),
            expires_at=parse_expiry(expires) if expires else None,
            limits=limits_from_options(rpm, tpm, budget),
            metadata=metadata_from_options(meta),
            actor=cli_actor(),
        )
    typer.echo(created.secret)
    team_note = f", team {team}" if team else ""
    typer.echo(
        f"created key {created.row.id} ({created.row.name}, role {created.row.scope}{team_note}); "
        "the secret above is not shown again",
        err=True,
    )


@app.command("list")
def list_keys(
    ctx: typer.Context,
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    team: Annotated[str | None, typer.Option("--team", "-t", help="Only this team's keys.")] = None,
) -> None:
    """List keys with their limits and spend (today / this month / in all), never their secrets."""
    from rich.console import Console
    from rich.table import Table

    with readable_errors(), store_for(ctx) as store:
        views = store.keys.list(include_revoked=all_keys, team=team)
    columns = ["id", "name", "role", "team", "models", "limits", "spend (day / month / total)", "expires"]
    table = Table(*columns, *(["revoked"] if all_keys else []))
    for view in views:
        row, fields = view.row, view.as_dict()
        table.add_row(
            row.id,
            row.name,
            row.scope,
            view.team or "-",
            ", ".join(row.models) if row.models is not None else "*",
            format_limits(fields["rpm"], fields["tpm"], fields["budget"]),
            format_spend(view.spend),
            row.expires_at.strftime("%Y-%m-%d %H:%M") if row.expires_at else "",
            *([row.revoked_at.strftime("%Y-%m-%d %H:%M") if row.revoked_at else ""] if all_keys else []),
        )
    Console().print(table)


@app.command()
def update(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="Key id or name.")],
    models: ModelsOption = None,
    all_models: AllModelsOption = False,
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    budget: BudgetOption = None,
    expires: Annotated[str | None, typer.Option(help="New expiry: 30d, 12h, 2w or an ISO date.")] = None,
    no_expiry: Annotated[bool, typer.Option("--no-expiry", help="Never expire.")] = False,
    meta: MetaOption = None,
) -> None:
    """Change a key's allowed models, limits, budgets, expiry or labels (what is given)."""
    from llmops.audit.actor import cli_actor
    from llmops.limits.policy import Limits
    from llmops.teams.service import UNSET

    with readable_errors(), store_for(ctx) as store:
        current = store.keys.find(key)
        row = store.keys.update(
            key,
            models=models_change(models, all_models),
            expires_at=None if no_expiry else (parse_expiry(expires) if expires else UNSET),
            limits=merged_limits(Limits.from_json(current.limits), rpm, tpm, budget),
            metadata=metadata_from_options(meta),
            actor=cli_actor(),
        )
    typer.echo(f"updated key {row.id} ({row.name})")


@app.command()
def rotate(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="Key id or name.")],
    grace: Annotated[
        str | None,
        typer.Option(
            help="How long the old secret keeps working: 1d, 12h, 0s (default: key_rotation_grace_seconds)."
        ),
    ] = None,
) -> None:
    """Give a key a new secret (same id, team, limits and spend); print it once."""
    from llmops.audit.actor import cli_actor
    from llmops.cli._common import settings_for

    with readable_errors(), store_for(ctx) as store:
        seconds = parse_seconds(grace) if grace else settings_for(ctx).key_rotation_grace_seconds
        created = store.keys.rotate(key, grace_seconds=seconds, actor=cli_actor())
    typer.echo(created.secret)
    until = created.row.previous_valid_until
    typer.echo(
        f"rotated key {created.row.id} ({created.row.name}); the previous secret works until "
        f"{until.strftime('%Y-%m-%d %H:%M UTC') if until else 'now'}",
        err=True,
    )


@app.command()
def revoke(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="Key id or name.")],
) -> None:
    """Revoke a key; running servers stop accepting it within key_cache_seconds (30 s)."""
    from llmops.audit.actor import cli_actor

    with readable_errors(), store_for(ctx) as store:
        row = store.keys.revoke(key, actor=cli_actor())
    typer.echo(f"revoked key {row.id} ({row.name})")

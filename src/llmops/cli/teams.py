"""`llmops teams`: teams, their members, allowed models, limits and budgets."""

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
)

app = typer.Typer(
    help="Manage teams: who is in them, which models their keys may use, their limits and budgets.",
    no_args_is_help=True,
)


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A unique team name.")],
    models: ModelsOption = None,
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    budget: BudgetOption = None,
    meta: MetaOption = None,
) -> None:
    """Create a team; its keys share its rate limits and budgets."""
    from llmops.audit.actor import cli_actor

    with readable_errors(), store_for(ctx) as store:
        row = store.teams.create(
            name,
            models=model_patterns(models),
            limits=limits_from_options(rpm, tpm, budget),
            metadata=metadata_from_options(meta),
            actor=cli_actor(),
        )
    typer.echo(f"created team {row.id} ({row.name})")


@app.command("list")
def list_teams(ctx: typer.Context) -> None:
    """List teams with their limits, key count and spend (today / this month / in all)."""
    from rich.console import Console
    from rich.table import Table

    with readable_errors(), store_for(ctx) as store:
        views = store.teams.list()
    table = Table("id", "name", "models", "limits", "keys", "spend", "created")
    for view in views:
        fields = view.as_dict()
        table.add_row(
            view.team.id,
            view.team.name,
            ", ".join(view.team.models) if view.team.models is not None else "*",
            format_limits(fields["rpm"], fields["tpm"], fields["budget"]),
            str(view.key_count),
            format_spend(view.spend),
            view.team.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    Console().print(table)


@app.command()
def show(
    ctx: typer.Context,
    team: Annotated[str, typer.Argument(help="Team id or name.")],
) -> None:
    """A team: its models, limits, spend, members and keys."""
    from rich.console import Console
    from rich.table import Table

    with readable_errors(), store_for(ctx) as store:
        view = store.teams.show(team)
        keys = store.keys.list(team=view.team.id)
    fields = view.as_dict()
    console = Console()
    console.print(f"[bold]{view.team.name}[/bold] ({view.team.id})")
    models = ", ".join(view.team.models) if view.team.models is not None else "every model"
    console.print(f"models: {models}")
    console.print(f"limits: {format_limits(fields['rpm'], fields['tpm'], fields['budget'])}")
    console.print(f"spend (day / month / total): {format_spend(view.spend)}")
    members = Table("member", "role", "added", title="members")
    for member in view.members:
        members.add_row(member.user, member.role, member.added_at.strftime("%Y-%m-%d %H:%M"))
    console.print(members)
    key_table = Table("key", "name", "role", "spend", title="keys")
    for key in keys:
        key_table.add_row(key.row.id, key.row.name, key.row.scope, format_spend(key.spend))
    console.print(key_table)


@app.command()
def update(
    ctx: typer.Context,
    team: Annotated[str, typer.Argument(help="Team id or name.")],
    models: ModelsOption = None,
    all_models: AllModelsOption = False,
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    budget: BudgetOption = None,
    meta: MetaOption = None,
) -> None:
    """Change a team's allowed models, limits, budgets or labels (what is given)."""
    from llmops.audit.actor import cli_actor
    from llmops.limits.policy import Limits

    with readable_errors(), store_for(ctx) as store:
        current = store.teams.get(team)
        row = store.teams.update(
            team,
            models=models_change(models, all_models),
            limits=merged_limits(Limits.from_json(current.limits), rpm, tpm, budget),
            metadata=metadata_from_options(meta),
            actor=cli_actor(),
        )
    typer.echo(f"updated team {row.id} ({row.name})")


@app.command("add-member")
def add_member(
    ctx: typer.Context,
    team: Annotated[str, typer.Argument(help="Team id or name.")],
    user: Annotated[str, typer.Argument(help="The person (e-mail or login).")],
    role: Annotated[str, typer.Option("--role", "-r", help="viewer, editor, admin or inference.")] = "viewer",
) -> None:
    """Add a person to a team, or change their role there."""
    from llmops.audit.actor import cli_actor

    with readable_errors(), store_for(ctx) as store:
        member = store.teams.add_member(team, user, role, actor=cli_actor())
    typer.echo(f"{member.user} is a member of {team} with role {member.role}")


@app.command("remove-member")
def remove_member(
    ctx: typer.Context,
    team: Annotated[str, typer.Argument(help="Team id or name.")],
    user: Annotated[str, typer.Argument(help="The person to take off the team.")],
) -> None:
    """Take a person off a team."""
    from llmops.audit.actor import cli_actor

    with readable_errors(), store_for(ctx) as store:
        store.teams.remove_member(team, user, actor=cli_actor())
    typer.echo(f"{user} is no longer a member of {team}")

"""`llmops audit`: read the audit log (who changed what, when, from where); it cannot be edited."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from llmops.cli._common import echo_json, readable_errors, store_for

app = typer.Typer(
    help="Read the audit log of changes made through the admin API and the CLI.", no_args_is_help=True
)


def _json_default(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _target(event: dict[str, Any]) -> str:
    return f"{event['target_type']} {event['target']}" if event["target"] else event["target_type"]


@app.command("list")
def list_events(
    ctx: typer.Context,
    actor: Annotated[
        str | None, typer.Option(help="Only this actor (key name or id, or cli:<login>).")
    ] = None,
    action: Annotated[str | None, typer.Option(help="Only this action, e.g. create_key.")] = None,
    target_type: Annotated[
        str | None, typer.Option(help="Only this kind of target: key, credential...")
    ] = None,
    target: Annotated[str | None, typer.Option(help="Only this target (name or id).")] = None,
    team: Annotated[str | None, typer.Option(help="Only events of this team (id or name).")] = None,
    since: Annotated[str | None, typer.Option(help="From: 30m, 2h, 7d (ago) or an ISO 8601 time.")] = None,
    until: Annotated[str | None, typer.Option(help="Before: 30m, 2h, 7d (ago) or an ISO 8601 time.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Events per page (1-500).")] = 20,
    cursor: Annotated[
        str | None, typer.Option(help="Continue after this cursor (printed below a full page).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines instead of a table.")] = False,
) -> None:
    """List audit events, newest first."""
    from rich.console import Console
    from rich.table import Table

    from llmops.tracing.service import parse_since

    with readable_errors(), store_for(ctx) as store:
        page = store.audit.list(
            actor=actor,
            action=action,
            target_type=target_type,
            target=target,
            team_id=team,
            since=parse_since(since) if since else None,
            until=parse_since(until) if until else None,
            limit=limit,
            cursor=cursor,
        )
    if as_json:
        for event in page.items:
            typer.echo(json.dumps(event, default=_json_default, ensure_ascii=False))
    else:
        table = Table()
        for column in ("id", "at (UTC)", "actor", "action", "target"):
            table.add_column(column, overflow="fold")  # wrapped, never cut: `audit show` takes the id
        for event in page.items:
            table.add_row(
                event["id"],
                event["at"].strftime("%Y-%m-%d %H:%M:%S"),
                event["actor"],
                event["action"],
                _target(event),
            )
        Console().print(table)
    if page.next_cursor:
        typer.echo(f"more: llmops audit list --cursor {page.next_cursor}", err=True)


@app.command()
def show(
    ctx: typer.Context,
    event_id: Annotated[str, typer.Argument(help="The event id (from `llmops audit list`).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the event as JSON.")] = False,
) -> None:
    """Show one audit event with the target before and after the change (secrets redacted)."""
    from rich.console import Console

    with readable_errors(), store_for(ctx) as store:
        event = store.audit.get(event_id)
    if as_json:
        echo_json(event)
        return
    console = Console()
    console.print(f"[bold]audit event {event['id']}[/bold]  {event['at'].isoformat()}")
    who = event["actor"] + (f" (key {event['actor_key_id']})" if event["actor_key_id"] else "")
    origin = event["source"] + (f" from {event['ip']}" if event["ip"] else "")
    console.print(f"{who} via {origin}", markup=False, highlight=False)
    team = f"  team {event['team_id']}" if event["team_id"] else ""
    console.print(f"{event['action']} on {_target(event)}{team}", markup=False, highlight=False)
    for part in ("before", "after"):
        if event[part] is not None:
            console.print(f"[bold]{part}[/bold]")
            console.print_json(data=event[part])

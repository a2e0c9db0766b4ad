"""`llmops alerts`: rules over the traffic's statistics, their history, silences, and tries.

``list`` shows every rule with its state (llmops.yaml's and the stored ones), ``history`` the
notifications sent (or held back by a silence), ``silence``/``silences``/``unsilence`` manage silences,
``test`` measures a rule now (and with ``--send`` sends a test notification through its channels),
``add``/``remove`` change the stored rules. A running server's evaluator picks changes up at its next
round.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llmops.cli._common import echo_json, fail, readable_errors, store_for

if TYPE_CHECKING:
    from llmops.alerts.service import AlertEvent, RuleView

app = typer.Typer(
    help="Alerts: rules on error rate, latency, cost, feedback and budgets, with notifications.",
    no_args_is_help=True,
)
_COLOURS = {"ok": "green", "pending": "yellow", "firing": "red", "resolved": "cyan"}


@app.command("list")
def list_alerts(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List every rule and its state: those of llmops.yaml (source config), then the stored ones."""
    with readable_errors(), store_for(ctx) as store:
        views = store.alerts.all()
    if as_json:
        echo_json([view.as_dict() for view in views])
        return
    _print_rules(views)


def _print_rules(views: list[RuleView]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table("name", "condition", "for", "severity", "state", "value", "since", "channels", "source")
    for view in views:
        rule, state = view.config, view.state
        name = rule.name if rule.enabled else f"{rule.name} (off)"
        filters = ", ".join(f"{k}={v}" for k, v in rule.filters.given().items())
        condition = rule.condition() + (f" [{filters}]" if filters else "")
        status = state.state if state else "-"
        channels = ", ".join(c if isinstance(c, str) else (c.name or c.type) for c in rule.channels)
        table.add_row(
            escape(name),
            escape(condition),
            rule.for_,
            rule.severity,
            f"[{_COLOURS.get(status, 'white')}]{status}[/]",
            "-" if state is None or state.value is None else f"{state.value:.6g}",
            _when(state.since) if state else "-",
            escape(channels),
            view.source,
        )
    Console().print(table)


@app.command("history")
def history(
    ctx: typer.Context,
    rule: Annotated[str | None, typer.Option("--rule", "-r", help="Only this rule's events.")] = None,
    kind: Annotated[
        str | None, typer.Option(help="Only events of this kind: firing, resolved, repeat or test.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="30m, 24h, 7d (ago) or an ISO 8601 time (default: all).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many events (newest first).")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show the notifications: sent, failed, or held back by a silence."""
    from llmops.tracing.service import parse_since

    with readable_errors(), store_for(ctx) as store:
        moment = parse_since(since) if since is not None else None
        events, _ = store.alerts.history(rule=rule, kind=kind, since=moment, limit=limit)
    if as_json:
        echo_json([event.as_dict() for event in events])
        return
    _print_events(events)


def _print_events(events: list[AlertEvent]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table("at", "rule", "kind", "severity", "value", "sent", "deliveries")
    for event in events:
        if event.silence_id:
            sent = f"[magenta]silenced {event.silence_id[-8:]}[/]"
        else:
            sent = "[green]yes[/]" if event.sent else "[red]no[/]"
        deliveries = "; ".join(
            f"{d.channel}: {'ok' if d.ok else d.error or 'failed'}"
            + (f" ({d.attempts} tries)" if d.attempts > 1 else "")
            for d in event.deliveries
        )
        table.add_row(
            _when(event.at),
            escape(event.rule),
            f"[{_COLOURS.get('firing' if event.kind in ('firing', 'repeat') else 'ok')}]{event.kind}[/]",
            event.severity,
            "-" if event.value is None else f"{event.value:.6g}",
            sent,
            escape(deliveries or "-"),
        )
    Console().print(table if events else "no alert events")


@app.command("silence")
def silence(
    ctx: typer.Context,
    rule: Annotated[str, typer.Argument(help="A glob of rule names ('*' for every rule).")],
    duration: Annotated[
        str | None, typer.Option("--for", help="How long, e.g. 30m, 2h, 1d (or --until).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="When it ends: an ISO 8601 time (UTC without an offset).")
    ] = None,
    labels: Annotated[
        list[str] | None,
        typer.Option("--label", "-l", help="NAME=VALUE the rule must have (repeatable; severity counts)."),
    ] = None,
    comment: Annotated[str | None, typer.Option(help="Why (shown in listings).")] = None,
) -> None:
    """Hold back the notifications of matching rules until an end time (they are still recorded)."""
    from llmops.alerts.config import duration_seconds
    from llmops.audit import cli_actor

    if (duration is None) == (until is None):
        fail("give --for or --until (one of them)")
    now = datetime.now(UTC)
    try:
        if duration is not None:
            ends_at = now + timedelta(seconds=duration_seconds(duration))
        else:
            ends_at = datetime.fromisoformat(until or "")
            ends_at = ends_at if ends_at.tzinfo else ends_at.replace(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        fail(f"--for/--until: {exc}")
    wanted = {}
    for label in labels or []:
        name, sep, value = label.partition("=")
        if not sep or not name:
            fail(f"--label: expected NAME=VALUE, got {label!r}")
        wanted[name] = value
    with readable_errors(), store_for(ctx) as store:
        made = store.alerts.silences.create(
            rule, ends_at, labels=wanted, comment=comment, actor=cli_actor(), now=now
        )
    typer.echo(f"silence {made.id}: {rule} until {made.ends_at.isoformat(timespec='seconds')}")


@app.command("silences")
def silences(
    ctx: typer.Context,
    include_ended: Annotated[bool, typer.Option("--all", help="Also silences that have ended.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the silences (by default those not yet ended), newest first."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    now = datetime.now(UTC)
    with readable_errors(), store_for(ctx) as store:
        found = store.alerts.silences.all(include_ended=include_ended, now=now)
    if as_json:
        echo_json([item.as_dict(now) for item in found])
        return
    table = Table("id", "rule", "labels", "starts", "ends", "active", "by", "comment")
    for item in found:
        table.add_row(
            item.id,
            escape(item.rule),
            escape(", ".join(f"{k}={v}" for k, v in item.labels.items()) or "-"),
            _when(item.starts_at),
            _when(item.ends_at),
            "yes" if item.active(now) else "no",
            escape(item.created_by or "-"),
            escape(item.comment or ""),
        )
    Console().print(table if found else "no silences")


@app.command("unsilence")
def unsilence(
    ctx: typer.Context, silence_id: Annotated[str, typer.Argument(help="The silence's id (see `silences`).")]
) -> None:
    """End a silence now: notifications of the rules it held flow again."""
    from llmops.audit import cli_actor

    with readable_errors(), store_for(ctx) as store:
        ended = store.alerts.silences.end(silence_id, cli_actor())
    typer.echo(f"silence {ended.id} ended at {ended.ends_at.isoformat(timespec='seconds')}")


@app.command("test")
def try_rule(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The rule to try.")],
    send: Annotated[
        bool, typer.Option("--send", help="Also send a test notification through the rule's channels.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Measure a rule now and print its value; with --send, also send a test notification.

    With --send the exit status is 1 when no channel took the notification.
    """

    with readable_errors(), store_for(ctx) as store:
        result = asyncio.run(store.alerts.test(name, send=send))
    if as_json:
        echo_json(result.as_dict())
    else:
        measured = result.measurement
        value = "no data" if measured.value is None else f"{measured.value:.6g}"
        note = f" ({measured.note})" if measured.note else ""
        holds = {True: "holds: it would fire", False: "does not hold", None: "nothing to judge"}[result.holds]
        typer.echo(f"{name}: {value}{note}; {holds}")
        for delivery in result.deliveries:
            outcome = "sent" if delivery.ok else f"failed: {delivery.error}"
            typer.echo(f"  {delivery.channel} ({delivery.type}): {outcome}")
    if send and result.deliveries and not any(d.ok for d in result.deliveries):
        raise typer.Exit(1)


@app.command("add")
def add_rule(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(help="A YAML or JSON file with one rule (the fields of an `alerts:` entry).")
    ],
) -> None:
    """Store a rule read from a file; it is checked (channels known, options right) first."""
    import yaml

    from llmops.alerts.service import parse_rule
    from llmops.audit import cli_actor

    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        fail(f"{file}: {' '.join(str(exc).split())}")
    if not isinstance(data, dict):
        fail(f"{file}: expected one rule (a mapping), got {type(data).__name__}")
    with readable_errors(), store_for(ctx) as store:
        view = store.alerts.create(parse_rule(json.loads(json.dumps(data, default=str))), cli_actor())
    typer.echo(f"added alert {view.config.name}: {view.config.condition()}")


@app.command("remove")
def remove_rule(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="The stored rule to delete.")]
) -> None:
    """Delete a stored rule (rules of llmops.yaml are changed in the file); its history stays."""
    from llmops.audit import cli_actor

    with readable_errors(), store_for(ctx) as store:
        store.alerts.delete(name, cli_actor())
    typer.echo(f"removed alert {name}")


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")

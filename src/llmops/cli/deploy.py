"""`llmops deploy`: registry versions behind public model names, canary roll-outs, promotion and rollback.

`llmops deploy REF --as NAME [--canary P]` is the default command (`llmops deploy version ...` spelled
out); the other subcommands read and change what is deployed. They act on the database: running servers
pick a change up within seconds (their watcher), and judge canaries themselves (their controller).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from llmops.cli._common import default_author, echo_json, fail, readable_errors, store_for

if TYPE_CHECKING:
    from rich.table import Table

    from llmops.deployments import DeploymentInfo

_DEFAULT_COMMAND = "version"


class _RefFirst(TyperGroup):
    """A group whose first argument, when it is no subcommand, is the REF of the default command."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = [_DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_RefFirst,
    help="Deploy registry versions behind model names: at once, or as a canary promoted step by step "
    "and rolled back automatically when a guard rule breaks. `llmops deploy REF --as NAME [--canary P]`.",
    no_args_is_help=True,
)

_NAME = "The public model name (what clients send as `model`)."
_JSON = "Print JSON instead of tables."


def _actor() -> str:
    return f"cli:{default_author() or 'unknown'}"


def _numbers(text: str | None, option: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        fail(f"{option}: expected comma-separated whole percentages, e.g. 10,50,100; got {text!r}")


def _eval_gate(text: str) -> dict[str, Any]:
    """``baseline=RUN,candidate=RUN,metric=NAME:DROP[,metric=NAME:DROP...]``."""
    gate: dict[str, Any] = {"metrics": {}}
    for part in text.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or not value:
            fail(f"--eval-gate: expected key=value, got {part!r}")
        if key in ("baseline", "candidate"):
            gate[key] = value
        elif key == "metric":
            name, sep, drop = value.rpartition(":")
            try:
                gate["metrics"][name or drop] = float(drop) if sep else 0.0
            except ValueError:
                fail(f"--eval-gate: metric=NAME:MAX_DROP needs a number, got {value!r}")
        else:
            fail(f"--eval-gate: unknown key {key!r} (baseline, candidate, metric)")
    return gate


@app.command(_DEFAULT_COMMAND)
def deploy_version(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="A registry version: name@3, name@alias or name (latest).")],
    name: Annotated[str, typer.Option("--as", help=_NAME)],
    canary: Annotated[
        int | None,
        typer.Option(help="Send this % of the traffic to REF, the rest to the current version (1-99)."),
    ] = None,
    steps: Annotated[
        str | None, typer.Option(help="Canary percentages, e.g. 10,50,100 (default: the canary, 50, 100).")
    ] = None,
    step_seconds: Annotated[
        float, typer.Option(help="How long every guard must hold at a step before promotion.")
    ] = 300.0,
    window: Annotated[
        float, typer.Option(help="Seconds of traffic the guards look at (never before the step began).")
    ] = 60.0,
    max_error_rate: Annotated[
        float, typer.Option(help="Roll back above this share of canary calls failing (5xx, timeouts).")
    ] = 0.05,
    max_p95_ms: Annotated[
        float | None, typer.Option(help="Roll back above this p95 latency of the canary, in ms.")
    ] = None,
    max_thumbs_down_rate: Annotated[
        float | None, typer.Option(help="Roll back above this share of thumbs-down on canary answers.")
    ] = None,
    min_requests: Annotated[
        int, typer.Option(help="Decide nothing below this many canary calls in the window.")
    ] = 20,
    eval_gate: Annotated[
        str | None,
        typer.Option(
            help="Evaluation gate: baseline=RUN,candidate=RUN,metric=NAME:MAX_DROP (metric repeats); "
            "holds while the candidate runs, rolls back when it fails."
        ),
    ] = None,
    manual: Annotated[
        bool, typer.Option("--manual", help="Promote only by hand (rollback stays automatic).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help=_JSON)] = False,
) -> None:
    """Deploy REF behind a model name: stable at once, or as a canary with --canary P."""
    from llmops.deployments import Rollout

    guards: dict[str, Any] = {
        "max_error_rate": max_error_rate,
        "max_p95_ms": max_p95_ms,
        "max_thumbs_down_rate": max_thumbs_down_rate,
        "min_requests": min_requests,
        "eval_gate": None if eval_gate is None else _eval_gate(eval_gate),
    }
    rollout = Rollout(
        steps=_numbers(steps, "--steps"),
        step_seconds=step_seconds,
        window_seconds=window,
        guards=guards,
        manual=manual,
    )
    with readable_errors(), store_for(ctx) as store:
        info = store.deployments.deploy(ref, name=name, canary=canary, rollout=rollout, actor=_actor())
    _show_change(info, as_json)


@app.command("status")
def status(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help=f"{_NAME} Default: every deployment.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help=_JSON)] = False,
) -> None:
    """Stable and canary versions, traffic split, step, window figures per version, guards, next action."""
    with readable_errors(), store_for(ctx) as store:
        service = store.deployments
        names = [name] if name else [info.name for info in service.list_deployments()]
        found = [service.status(each) for each in names]
    if as_json:
        echo_json(found if name is None else found[0])
        return
    if not found:
        typer.echo("no deployments (llmops deploy REF --as NAME)")
        return
    from rich.console import Console

    console = Console()
    for data in found:
        for table in _status_tables(data):
            console.print(table)
        console.print(f"next: {data['next_action']}\n")


_NameArg = Annotated[str, typer.Argument(help=_NAME)]
_ReasonOption = Annotated[str | None, typer.Option(help="Why, for the history.")]
_JsonOption = Annotated[bool, typer.Option("--json", help=_JSON)]


def _transition_command(action: str, summary: str) -> None:
    """`llmops deploy promote NAME` / `llmops deploy rollback NAME`."""

    def transition(
        ctx: typer.Context, name: _NameArg, reason: _ReasonOption = None, as_json: _JsonOption = False
    ) -> None:
        with readable_errors(), store_for(ctx) as store:
            info = getattr(store.deployments, action)(name, actor=_actor(), reason=reason)
        _show_change(info, as_json)

    transition.__doc__ = summary
    app.command(action)(transition)


_transition_command(
    "promote", "Move the canary to its next step now (from the last step it becomes the stable version)."
)
_transition_command("rollback", "Remove the canary: all traffic goes back to the stable version.")


@app.command("undeploy")
def undeploy(ctx: typer.Context, name: _NameArg, as_json: _JsonOption = False) -> None:
    """Stop managing NAME: it is served as llmops.yaml declares it again (or no longer served)."""
    with readable_errors(), store_for(ctx) as store:
        info = store.deployments.undeploy(name, actor=_actor())
    _show_change(info, as_json)


@app.command("history")
def history(
    ctx: typer.Context,
    name: _NameArg,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Newest events shown.")] = 50,
    as_json: _JsonOption = False,
) -> None:
    """Who deployed, promoted or rolled back what, when and why (newest first)."""
    with readable_errors(), store_for(ctx) as store:
        events = store.deployments.history(name, limit=limit)
    if as_json:
        echo_json([event.to_dict() for event in events])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("at", "actor", "action", "from", "to", "reason", title=f"history of {name}")
    for event in events:
        table.add_row(
            event.at.strftime("%Y-%m-%d %H:%M:%S"),
            event.actor or "",
            event.action,
            _state(event.from_state),
            _state(event.to_state),
            event.reason or "",
        )
    Console().print(table)


def _state(state: dict[str, Any] | None) -> str:
    if not state:
        return ""
    stable = state.get("stable") or "(configured)"
    if state.get("canary"):
        return f"{stable} + {state['canary']} {state.get('canary_percent')}%"
    return f"{stable} [{state.get('status')}]"


def _show_change(info: DeploymentInfo, as_json: bool) -> None:
    if as_json:
        echo_json(info.to_dict())
        return
    stable = info.stable or "the configured model"
    if info.status == "canary":
        typer.echo(
            f"{info.name}: {info.canary} takes {info.canary_percent}% (steps {list(info.steps)}), "
            f"{stable} the rest; revision {info.revision}"
        )
    elif info.status == "undeployed":
        typer.echo(f"{info.name}: undeployed, served as configured again; revision {info.revision}")
    else:
        typer.echo(f"{info.name}: {stable} serves all traffic ({info.status}); revision {info.revision}")


def _number(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _status_tables(data: dict[str, Any]) -> list[Table]:
    from rich.table import Table

    step = f"{data['step_index'] + 1}/{len(data['steps'])}" if data["steps"] else "-"
    head = Table("stable", "canary", "canary %", "step", "steps", "status", "revision", title=data["name"])
    head.add_row(
        data["stable"] or "(configured)",
        data["canary"] or "-",
        str(data["canary_percent"]),
        step,
        ",".join(str(item) for item in data["steps"]) or "-",
        data["status"],
        str(data["revision"]),
    )
    tables = [head]
    window = data.get("window")
    if window:
        figures = Table(
            "version", "calls", "errors", "error rate", "p95 ms", "thumbs down",
            title=f"last {window['seconds']:.0f} s: {window['requests']} requests",
        )  # fmt: skip
        for version, item in window["versions"].items():
            figures.add_row(
                version,
                str(item["calls"]),
                str(item["errors"]),
                _number(item["error_rate"]),
                _number(item["p95_ms"], 1),
                _number(item["thumbs_down_rate"]),
            )
        tables.append(figures)
    assessment = data.get("assessment")
    if assessment:
        checks = Table("guard", "limit", "now", "state", "detail", title="guards")
        for check in assessment["checks"]:
            limit = check["limit"] if not isinstance(check["limit"], dict) else check["limit"]["candidate"]
            checks.add_row(
                check["rule"], str(limit), _number(check["value"]), check["state"], check["message"]
            )
        tables.append(checks)
    return tables

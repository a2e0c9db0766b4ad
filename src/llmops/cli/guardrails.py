"""`llmops guardrails`: the rules that check prompts and answers on the gateway path.

``list`` shows every rule (llmops.yaml's and the stored ones), ``add``/``remove`` change the stored
ones (a running server picks them up within ``guardrail_refresh_seconds``), and ``test`` shows what
each rule in force for a model decides about a text, and why, without a server: it runs the checks
here (a judge rule asks its model through an in-process gateway).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from llmops.cli._common import echo_json, fail, readable_errors, settings_for, store_for

app = typer.Typer(
    help="Guardrails: checks on prompts and answers (PII, injection, secrets, ...).", no_args_is_help=True
)


@app.command("list")
def list_guardrails(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List every rule: those of llmops.yaml (source config), then the stored ones (source api)."""
    from rich.console import Console
    from rich.table import Table

    with readable_errors(), store_for(ctx) as store:
        views = store.guardrails.all()
    if as_json:
        echo_json([view.as_dict() for view in views])
        return
    table = Table("name", "type", "stage", "action", "mode", "applies to", "source")
    for view in views:
        config = view.config
        scope = ", ".join(
            f"{label} {' '.join(values)}"
            for label, values in (
                ("models", config.models),
                ("keys", config.keys),
                ("teams", config.teams),
                ("prompts", config.prompts),
            )
            if values
        )
        name = config.name if config.enabled else f"{config.name} (off)"
        table.add_row(
            name, config.type, config.stage, config.action, config.mode, scope or "all", view.source
        )
    Console().print(table)


@app.command("add")
def add_guardrail(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The rule's name (letters, digits, '.', '_', '-').")],
    kind: Annotated[str, typer.Option("--type", "-t", help="Guardrail type: pii, secrets, injection, ...")],
    stage: Annotated[str, typer.Option(help="input, output or both.")] = "input",
    action: Annotated[str, typer.Option(help="block, redact, redact_trace or flag.")] = "block",
    mode: Annotated[str, typer.Option(help="blocking or parallel (slow input checks only).")] = "blocking",
    params: Annotated[
        str | None,
        typer.Option(help='The type\'s parameters as JSON, e.g. \'{"entities": ["EMAIL_ADDRESS"]}\'.'),
    ] = None,
    models: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="Model glob it applies to (repeatable).")
    ] = None,
    keys: Annotated[
        list[str] | None, typer.Option("--key", help="API key name or id glob (repeatable).")
    ] = None,
    teams: Annotated[list[str] | None, typer.Option("--team", help="Team name glob (repeatable).")] = None,
    prompts: Annotated[
        list[str] | None, typer.Option("--prompt", help="Prompt name glob (repeatable).")
    ] = None,
    message: Annotated[str | None, typer.Option(help="What a blocked answer is replaced with.")] = None,
) -> None:
    """Store a rule; it is checked (its type built with its parameters) first."""
    from llmops.audit import cli_actor
    from llmops.guardrails.service import parse_config

    data: dict[str, Any] = {"name": name, "type": kind, "stage": stage, "action": action, "mode": mode}
    if params:
        try:
            data["params"] = json.loads(params)
        except json.JSONDecodeError as exc:
            fail(f"--params: not JSON: {exc.msg} at character {exc.pos}")
    for key, values in (("models", models), ("keys", keys), ("teams", teams), ("prompts", prompts)):
        if values:
            data[key] = values
    if message is not None:
        data["message"] = message
    with readable_errors(), store_for(ctx) as store:
        view = store.guardrails.create(parse_config(data), cli_actor())
    typer.echo(
        f"added guardrail {view.config.name} ({view.config.type}, {view.config.stage}, {view.config.action})"
    )


@app.command("remove")
def remove_guardrail(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="The stored rule to delete.")]
) -> None:
    """Delete a stored rule (rules of llmops.yaml are changed in the file)."""
    from llmops.audit import cli_actor

    with readable_errors(), store_for(ctx) as store:
        store.guardrails.delete(name, cli_actor())
    typer.echo(f"removed guardrail {name}")


@app.command("test")
def check_text(
    ctx: typer.Context,
    text: Annotated[str | None, typer.Argument(help="The text to check (or --file).")] = None,
    model: Annotated[str, typer.Option("--model", "-m", help="The model whose rules apply.")] = "",
    stage: Annotated[str, typer.Option(help="Check it as a prompt (input) or an answer (output).")] = "input",
    file: Annotated[Path | None, typer.Option(help="Read the text from this file.")] = None,
    key: Annotated[
        str | None, typer.Option(help="As if sent with this API key (name): its rules apply.")
    ] = None,
    team: Annotated[str | None, typer.Option(help="As if sent by a key of this team.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show what each rule in force decides about a text, and why (score, action, time)."""
    if (text is None) == (file is None):
        fail("give the text as an argument or with --file, not both")
    if stage not in ("input", "output"):
        fail(f"--stage: expected input or output, got {stage!r}")
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"--file: {exc}")
    with readable_errors():
        decisions = _run_test(settings_for(ctx), text or "", model, stage, key, team)
    if as_json:
        echo_json(decisions)
        return
    _print_decisions(decisions, model)
    if any(decision["action"] == "block" for decision in decisions):
        raise typer.Exit(3)


def _run_test(
    settings: Any, text: str, model: str, stage: str, key: str | None, team: str | None
) -> list[dict[str, Any]]:
    import asyncio

    from llmops.gateway.auth import ANONYMOUS, Principal
    from llmops.gateway.guarding import evaluate
    from llmops.services import build_services

    principal = ANONYMOUS if key is None and team is None else Principal(None, key or "", "admin", None, team)

    async def run() -> list[dict[str, Any]]:
        services = build_services(settings, open_allowed=True)
        try:
            step = services.gateway.guardrails
            if step is None:
                return []
            judged = {
                str(rule.config.params.get("model"))
                for rule in step.rules.rules
                if rule.config.type == "judge" and rule.config.params.get("model")
            }
            await services.start_in_process(judged)
            return [decision.as_dict() for decision in await evaluate(step, text, stage, model, principal)]
        finally:
            await services.stop()

    return asyncio.run(run())


def _print_decisions(decisions: list[dict[str, Any]], model: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    if not decisions:
        console.print(f"no guardrail applies to {escape(model or 'this request')}")
        return
    table = Table("guardrail", "type", "decision", "score", "ms", "why")
    colours = {
        "pass": "green",
        "block": "red",
        "redact": "yellow",
        "redact_trace": "yellow",
        "flag": "magenta",
    }
    for decision in decisions:
        action = decision["action"]
        table.add_row(
            escape(decision["guardrail"]),
            decision["type"],
            f"[{colours.get(action, 'white')}]{action}[/]",
            f"{decision['score']:.2f}",
            f"{decision['ms']:.2f}",
            escape(decision.get("reason") or ""),
        )
    console.print(table)

"""`llmops prompts expand` (test data from a prompt) and `llmops prompts try` (the playground)."""

from __future__ import annotations

import json
import os
import sys
from itertools import product
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmops.cli._common import admin_api_json, fail, readable_errors, settings_for, store_for

if TYPE_CHECKING:
    from llmops.prompts.expansion import Expansion, VariableGrid
    from llmops.prompts.services import PromptVersion
    from llmops.settings import Settings

_ROLES = ("system", "developer", "user", "assistant")
_REFERENCE_HELP = (
    "NAME, NAME@LABEL or NAME#VERSION (a bare NAME: its production label, else its latest version)."
)


def register(app: typer.Typer) -> None:
    """Add the expansion and playground commands to the `prompts` command group."""
    app.command("expand")(expand)
    app.command("try")(try_prompt)


# -- expand ------------------------------------------------------------------------------------------


def expand(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(help=_REFERENCE_HELP, show_default=False)],
    vars_file: Annotated[
        Path,
        typer.Option(
            "--vars",
            help="YAML or JSON file: each variable's list of values (a scalar is one value).",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="The JSONL file to write; '-' for standard output.")
    ],
    sample: Annotated[
        int | None,
        typer.Option(help="Write a seeded sample of N distinct combinations (without replacement) instead."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of --sample: the same seed gives the same rows.")] = 0,
    limit: Annotated[int | None, typer.Option(help="Stop after N rows.")] = None,
) -> None:
    """Render a prompt over every combination of variable values, as JSONL rows ready to become a dataset.

    The rows are the cartesian product of the values in the vars file (the last variable varies
    fastest), or a seeded sample of it with --sample. Each row holds "variables", "messages" (a text
    prompt's text also as "prompt") and "metadata" (prompt, version, combination index). The product
    is never built in memory, so --sample works on products of any size.
    """
    from llmops.prompts.expansion import read_vars_file, variable_grid

    with readable_errors(), store_for(ctx) as store:
        version = store.prompts.get(reference)
        grid = variable_grid(version.content, read_vars_file(vars_file), str(vars_file))
        result = _write_expansion(version, grid, out, sample, seed, limit)
    what = f"a sample of {result.rows}" if result.sampled else f"{result.rows}"
    where = "standard output" if str(out) == "-" else str(out)
    typer.echo(
        f"wrote {what} rows of {result.combinations} combinations of {version.name}#{version.number}"
        f" to {where}",
        err=True,
    )


def _write_expansion(
    version: PromptVersion, grid: VariableGrid, out: Path, sample: int | None, seed: int, limit: int | None
) -> Expansion:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from llmops.prompts.expansion import expand as expand_rows
    from llmops.prompts.expansion import planned_rows

    if str(out) == "-":
        try:
            return expand_rows(version, grid, sys.stdout.buffer, sample=sample, seed=seed, limit=limit)
        except BrokenPipeError:
            # the reader had enough (`| head`): not an error; later writes to stdout go nowhere
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None
    total = max(planned_rows(grid, sample=sample, limit=limit), 0)  # expand() refuses a sample or limit < 1
    columns = (TextColumn("rendering"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("rendering", total=total)

        def advance(count: int) -> None:
            if count % 256 == 0:
                progress.update(task, completed=count)

        result = expand_rows(version, grid, out, sample=sample, seed=seed, limit=limit, on_row=advance)
        progress.update(task, completed=result.rows)
    return result


# -- try ---------------------------------------------------------------------------------------------


def try_prompt(
    ctx: typer.Context,
    reference: Annotated[str | None, typer.Argument(help=_REFERENCE_HELP, show_default=False)] = None,
    message: Annotated[
        list[str] | None,
        typer.Option(
            "--message",
            "-M",
            help="A raw message ROLE=CONTENT instead of a prompt (repeat for a conversation).",
            show_default=False,
        ),
    ] = None,
    var: Annotated[
        list[str] | None,
        typer.Option(
            "--var",
            "-v",
            help="A variable NAME=VALUE (repeatable). VALUE is read as JSON when it parses"
            ' (42, true, [1, 2], "007"), else as text.',
            show_default=False,
        ),
    ] = None,
    vars_file: Annotated[
        Path | None,
        typer.Option(help="YAML or JSON mapping of variable values; --var wins.", show_default=False),
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="A model to ask (repeatable; default: the prompt's model).",
            show_default=False,
        ),
    ] = None,
    temperature: Annotated[
        list[float] | None,
        typer.Option(
            help="Sampling temperature, one parameter set per value (repeatable). Repeated parameter"
            " options form a product: 2 temperatures x 2 --max-tokens is 4 sets.",
            show_default=False,
        ),
    ] = None,
    max_tokens: Annotated[
        list[int] | None,
        typer.Option(
            help="Answer length limit, one parameter set per value (repeatable).", show_default=False
        ),
    ] = None,
    top_p: Annotated[
        list[float] | None,
        typer.Option(help="Nucleus sampling, one parameter set per value (repeatable).", show_default=False),
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Cells asked at once (1-16).")] = 4,
    cache: Annotated[
        bool, typer.Option("--cache", help="Let the response cache answer (by default every cell asks).")
    ] = False,
    url: Annotated[
        str | None,
        typer.Option(
            help="Run on this server (POST /api/playground) instead of in-process.", show_default=False
        ),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(help="Admin API key for --url (default: $LLMOPS_API_KEY).", show_default=False),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a --url server's answer.")] = 300.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the run as JSON instead of a table.")
    ] = False,
) -> None:
    """Ask several models with several parameter sets, concurrently, and show the answers side by side.

    Give a prompt version and its variables, or raw messages (-M user=Hello). Each model x parameter
    set is one cell: its answer, latency, tokens, cost and trace id. Every cell goes through the
    gateway's code path and is traced (attributes.playground = the run id); a failed cell shows its
    error and the others still answer. In-process by default (models from llmops.yaml), or on a
    running server with --url.
    """
    with readable_errors():
        if (reference is None) == (not message):
            fail("give a prompt reference or --message ROLE=CONTENT (not both)")
        messages = [_message(text) for text in message or []]
        variables = _variables(vars_file, var or [])
        if messages and variables:
            fail("--var and --vars-file go with a prompt, not with --message")
        sets = _parameter_sets(temperature or [], max_tokens or [], top_p or [])
        models = model or []
        if url:
            body = _request_body(reference, messages, variables, models, sets, concurrency, cache)
            result = admin_api_json(f"{url.rstrip('/')}/api/playground", key, body, timeout)
        else:
            settings = settings_for(ctx)
            result = _run_in_process(
                settings, reference, messages, variables, models, sets, concurrency, cache
            )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        _print_run(result)


def _message(text: str) -> dict[str, str]:
    role, sep, content = text.partition("=")
    if not sep or role not in _ROLES:
        fail(f"--message {text!r}: expected ROLE=CONTENT with ROLE one of {', '.join(_ROLES)}")
    return {"role": role, "content": content}


def _variables(vars_file: Path | None, pairs: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if vars_file is not None:
        from llmops.prompts.expansion import read_vars_file

        values.update(read_vars_file(vars_file))
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            fail(f"--var: expected NAME=VALUE, got {pair!r}")
        try:
            values[name.strip()] = json.loads(text)
        except ValueError:
            values[name.strip()] = text
    return values


def _parameter_sets(
    temperatures: list[float], max_tokens: list[int], top_ps: list[float]
) -> list[dict[str, Any]]:
    """The product of the values given for each parameter (a parameter not given is left out)."""
    axes = [
        [(name, value) for value in values]
        for name, values in (("temperature", temperatures), ("max_tokens", max_tokens), ("top_p", top_ps))
        if values
    ]
    return [dict(choice) for choice in product(*axes)] if axes else []


def _request_body(
    reference: str | None,
    messages: list[dict[str, str]],
    variables: dict[str, Any],
    models: list[str],
    sets: list[dict[str, Any]],
    concurrency: int,
    cache: bool,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "models": models,
        "parameters": sets,
        "max_concurrency": concurrency,
        "cache": cache,
    }
    if reference is not None:
        body.update(prompt=reference, variables=variables)
    else:
        body["messages"] = messages
    return body


def _run_in_process(
    settings: Settings,
    reference: str | None,
    messages: list[dict[str, str]],
    variables: dict[str, Any],
    models: list[str],
    sets: list[dict[str, Any]],
    concurrency: int,
    cache: bool,
) -> dict[str, Any]:
    import asyncio

    from llmops.prompts.playground import from_messages, from_prompt, plan, run_playground
    from llmops.services import build_services

    async def run() -> dict[str, Any]:
        services = build_services(settings, open_allowed=True)
        try:
            if reference is not None:
                conversation = from_prompt(services.store.prompts, reference, variables)
            else:
                conversation = from_messages(messages)
            cells = plan(conversation, models, sets)  # a bad run fails before any model is loaded
            await services.start_in_process({name for name, _ in cells})
            result = await run_playground(
                services.gateway, conversation, models, sets, max_concurrency=concurrency, use_cache=cache
            )
            return result.as_dict()
        finally:
            await services.stop()  # drains the trace writer: every cell's trace is stored

    return asyncio.run(run())


def _print_run(run: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    prompt = run.get("prompt")
    if prompt:
        source = f"{prompt['name']}#{prompt['version']}" + (
            f" ({prompt['label']})" if prompt["label"] else ""
        )
    else:
        source = "messages"
    table = Table(title=f"{source} · run {run['id']}", show_lines=True)
    table.add_column("model", min_width=6, overflow="fold")
    table.add_column("parameters", min_width=8, overflow="fold")
    table.add_column("answer", min_width=14, ratio=1, overflow="fold")
    for heading in ("ms", "tokens", "cost $"):
        table.add_column(heading, justify="right", no_wrap=True)
    table.add_column("trace id", min_width=8, max_width=32, overflow="fold")
    for cell in run["cells"]:
        parameters = " ".join(f"{name}={value}" for name, value in cell["parameters"].items()) or "-"
        if cell["status"] == "ok":
            answer = escape(cell["text"] or "")
            if cell["finish_reason"] and cell["finish_reason"] != "stop":
                answer += f" [dim]({escape(cell['finish_reason'])})[/dim]"
            tokens = f"{cell['prompt_tokens'] or 0}/{cell['completion_tokens'] or 0}"
            cost = f"{cell['cost']:.6f}" if cell["cost"] is not None else "-"
        else:
            answer = f"[red]error {cell['status_code']}: {escape(cell['error'] or '')}[/red]"
            tokens, cost = "-", "-"
        table.add_row(
            escape(cell["model"]),
            escape(parameters),
            answer,
            f"{cell['latency_ms']:.0f}" if cell["latency_ms"] >= 100 else f"{cell['latency_ms']:.1f}",
            tokens,
            cost,
            cell["trace_id"],
        )
    Console().print(table)

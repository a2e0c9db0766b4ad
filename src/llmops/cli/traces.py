"""`llmops traces`: list, show and give feedback on recorded requests."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from llmops.cli._common import fail, readable_errors, store_for

app = typer.Typer(help="Browse the traces of requests that went through the gateway.", no_args_is_help=True)


def _json_default(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


@app.command("list")
def list_traces(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this requested model.")] = None,
    status: Annotated[str | None, typer.Option(help="ok or error.")] = None,
    since: Annotated[str | None, typer.Option(help="30m, 2h, 7d, or an ISO 8601 time.")] = None,
    key: Annotated[
        str | None, typer.Option(help="Only requests made with this API key (id or name).")
    ] = None,
    guardrail: Annotated[
        str | None, typer.Option(help="Only requests on which this guardrail (rule name) triggered.")
    ] = None,
    guardrail_action: Annotated[
        str | None,
        typer.Option(
            help="Only requests on which a guardrail took this action: block, redact, redact_trace, flag."
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Traces per page (1-500).")] = 20,
    cursor: Annotated[
        str | None, typer.Option(help="Continue after this cursor (printed below a full page).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines instead of a table.")] = False,
) -> None:
    """List traces, newest first."""
    from rich.console import Console
    from rich.table import Table

    from llmops.tracing.service import parse_since

    with readable_errors(), store_for(ctx) as store:
        page = store.traces.list(
            model=model,
            status=status,
            since=parse_since(since) if since else None,
            key=key,
            guardrail=guardrail,
            guardrail_action=guardrail_action,
            limit=limit,
            cursor=cursor,
        )
    if as_json:
        for item in page.items:
            typer.echo(json.dumps(item, default=_json_default))
    else:
        table = Table("id", "started (UTC)", "model", "status", "tokens in/out", "latency ms", "cost $")
        for item in page.items:
            tokens = f"{item['prompt_tokens'] or 0}/{item['completion_tokens'] or 0}"
            status_text = "ok" if item["status"] == "ok" else f"[red]{item['status_code']}[/red]"
            table.add_row(
                item["id"],
                item["started_at"].strftime("%Y-%m-%d %H:%M:%S"),
                item["requested_model"],
                status_text,
                tokens,
                f"{item['latency_ms']:.1f}",
                f"{item['cost'] or 0:.6f}",
            )
        Console().print(table)
    if page.next_cursor:
        typer.echo(f"more: llmops traces list --cursor {page.next_cursor}", err=True)


@app.command()
def show(
    ctx: typer.Context,
    trace_id: Annotated[str, typer.Argument(help="The trace id (from `llmops traces list`).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole trace as JSON.")] = False,
) -> None:
    """Show one trace: request, response, usage, timing, feedback and its OpenTelemetry tree."""
    from rich.console import Console

    with readable_errors(), store_for(ctx) as store:
        trace = store.traces.get(trace_id)
    if as_json:
        typer.echo(json.dumps(trace, default=_json_default, indent=2))
        return
    console = Console()
    console.print(f"[bold]trace {trace['id']}[/bold]  {trace['endpoint']}  {trace['started_at'].isoformat()}")
    timing = f"latency {trace['latency_ms']:.1f} ms"
    if trace["ttft_ms"] is not None:
        timing += f", first token {trace['ttft_ms']:.1f} ms"
    deployment = f" (deployment {trace['deployment']})" if trace.get("deployment") else ""
    console.print(
        f"model {trace['requested_model']} → {trace['provider']}/{trace['upstream_model']}{deployment}  "
        f"status {trace['status_code']}  {timing}",
        markup=False,
    )
    if trace.get("cache_status"):
        console.print(f"cache {trace['cache_status']}", markup=False)
    attributes = trace.get("attributes") or {}
    for number, attempt in enumerate(attributes.get("attempts") or [], start=1):
        console.print(
            f"  attempt {number}: {attempt.get('deployment')} → {attempt.get('status')} "
            f"in {attempt.get('ms', 0):.1f} ms{' ' + attempt['error'] if attempt.get('error') else ''}",
            markup=False,
            highlight=False,
        )
    if attributes.get("truncated"):
        console.print("[red]stream truncated: the upstream failed after the client got part of it[/red]")
    console.print(
        f"tokens {trace['prompt_tokens']} in / {trace['completion_tokens']} out ({trace['usage_source']}), "
        f"cost ${trace['cost'] or 0:.6f}, key {trace['api_key_id'] or '-'}"
    )
    if trace["error_message"]:
        console.print(f"[red]error ({trace['error_type']}): {trace['error_message']}[/red]")
    if trace["request"] is not None:
        console.print("[bold]request[/bold]")
        console.print_json(data=trace["request"])
    if trace["response_text"] is not None:
        console.print(f"[bold]response[/bold] (finish: {trace['finish_reason']})")
        console.print(trace["response_text"], markup=False, highlight=False)
    for note in trace["feedback"]:
        parts = [f"{name} {note[name]}" for name in ("score", "thumb", "label") if note[name] is not None]
        who = f" by {note['author']}" if note["author"] else ""
        comment = f": {note['comment']}" if note["comment"] else ""
        console.print(f"feedback{who}: {', '.join(parts)}{comment}", markup=False)
    tree = trace.get("tree") or []
    if trace.get("otel_trace_id") and tree:
        _print_tree(console, trace["otel_trace_id"], tree)


def _print_tree(console: Any, otel_trace_id: str, roots: list[dict[str, Any]]) -> None:
    """The OpenTelemetry trace as a Rich tree: each node's name, service, time, tokens and status."""
    from rich.markup import escape
    from rich.tree import Tree

    def label(node: dict[str, Any]) -> str:
        text = escape(node["name"])
        if node["current"]:
            text = f"[bold]{text}[/bold] ← this trace"
        details = [f"{node['duration_ms']:.1f} ms"]
        if node.get("service"):
            details.insert(0, escape(node["service"]))
        if node["prompt_tokens"] is not None or node["completion_tokens"] is not None:
            details.append(f"{node['prompt_tokens'] or 0}/{node['completion_tokens'] or 0} tokens")
        if node.get("trace_id") and not node["current"]:
            details.append(node["trace_id"])
        status = "[red]error[/red]" if node["status"] == "error" else escape(node["status"])
        return f"{text}  [dim]{escape(', '.join(details))}[/dim]  {status}"

    def add(branch: Tree, node: dict[str, Any]) -> None:
        child = branch.add(label(node))
        for item in node["children"]:
            add(child, item)

    root = Tree(f"[bold]OpenTelemetry trace {otel_trace_id}[/bold]")
    for node in roots:
        add(root, node)
    console.print(root)


@app.command()
def feedback(
    ctx: typer.Context,
    trace_id: Annotated[str, typer.Argument(help="The trace id.")],
    score: Annotated[float | None, typer.Option(help="A numeric score.")] = None,
    thumb: Annotated[str | None, typer.Option(help="up or down.")] = None,
    label: Annotated[str | None, typer.Option(help="A category, e.g. hallucination.")] = None,
    comment: Annotated[str | None, typer.Option(help="Free text.")] = None,
    author: Annotated[str | None, typer.Option(help="Who gives the feedback.")] = None,
) -> None:
    """Attach human feedback to a trace (same as POST /api/traces/{id}/feedback)."""
    from llmops.tracing.service import FeedbackInput

    if thumb not in (None, "up", "down"):
        fail(f"--thumb: expected up or down, got {thumb!r}")
    with readable_errors(), store_for(ctx) as store:
        row = store.traces.add_feedback(
            trace_id,
            FeedbackInput(score=score, thumb=thumb, label=label, comment=comment, author=author),  # type: ignore[arg-type]
        )
    typer.echo(f"feedback {row['id']} added to trace {trace_id}")

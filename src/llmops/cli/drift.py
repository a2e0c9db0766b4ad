"""`llmops drift`: compare current traffic with a reference window or dataset version.

``llmops drift report --model M --reference 7d..1d --current 1d --html out.html`` runs the checks,
stores the result, prints a summary and writes a self-contained HTML report; ``history`` lists the
stored checks and ``show`` prints (or writes as HTML) one of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmops.cli._common import echo_json, readable_errors, store_for

app = typer.Typer(help="Drift: what users ask and get now against a reference window or dataset version.")

WINDOW_HELP = "START..END or START (until now): durations ago (7d, 12h), ISO 8601 times, or now."


@app.command("report")
def report(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Only this model's traces.")] = None,
    prompt: Annotated[
        str | None, typer.Option(help="Only this prompt's traces: NAME or NAME@VERSION.")
    ] = None,
    reference: Annotated[
        str | None, typer.Option(help=f"Reference window (default 7d..1d). {WINDOW_HELP}")
    ] = None,
    current: Annotated[str, typer.Option(help=f"Current window. {WINDOW_HELP}")] = "1d",
    dataset: Annotated[
        str | None, typer.Option(help="A dataset version as the reference instead: NAME or NAME@VERSION.")
    ] = None,
    sample: Annotated[
        int | None, typer.Option(help="Traces sampled per side (default: drift_sample_size, 1000).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the samples and permutations.")] = 0,
    alpha: Annotated[
        float | None, typer.Option(help="Significance level (default: drift_alpha, 0.01).")
    ] = None,
    check: Annotated[
        list[str] | None,
        typer.Option(
            "--check",
            help="Run only this check (repeatable): prompt_length, answer_length, language, embedding, "
            "new_topics, refusal_rate, error_rate, thumbs_down_rate.",
        ),
    ] = None,
    html: Annotated[
        Path | None, typer.Option(help="Write the HTML report (with plots) to this file.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON (as /api/drift).")
    ] = False,
    save: Annotated[bool, typer.Option(help="Store the check (see `llmops drift history`).")] = True,
) -> None:
    """Run the drift checks, print a summary and optionally write an HTML report."""
    from rich.console import Console

    from llmops.drift.service import DriftRequest

    request = DriftRequest(
        current=current,
        reference=reference,
        dataset=dataset,
        model=model,
        prompt=prompt,
        sample=sample,
        seed=seed,
        alpha=alpha,
        checks=tuple(check) if check else None,
    )
    with readable_errors(), store_for(ctx) as store:
        with Console(stderr=True).status("sampling traces and running the drift checks…"):
            result = store.drift.run(request, save=save)
        if html is not None:
            _write_html(result, html)
    _print(result, as_json)
    if html is not None and not as_json:
        typer.echo(f"wrote {html}")


@app.command("history")
def history(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Only checks of this model.")] = None,
    prompt: Annotated[
        str | None, typer.Option(help="Only checks of this prompt (as given to the check).")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first (1 to 500).")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (as GET /api/drift).")] = False,
) -> None:
    """List stored drift checks: when, what was compared, the score and the checks in drift."""
    with readable_errors(), store_for(ctx) as store:
        rows = store.drift.list_checks(model=model, prompt=prompt, limit=limit)
    if as_json:
        echo_json({"data": rows})
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from llmops.drift.statistics import holm

    table = Table(
        "id", "time (UTC)", "model", "prompt", "reference", "current", "traces", "score", "drift in"
    )
    for row in rows:
        tested = {name: p for name, p in row["p_values"].items() if p is not None}
        adjusted = dict(zip(tested, holm(list(tested.values())), strict=True))
        drifting = [name for name, p in adjusted.items() if p < row["alpha"]]
        table.add_row(
            row["id"],
            f"{row['created_at']:%Y-%m-%d %H:%M}",
            escape(row["model"] or "all"),
            escape(row["prompt"] or "-"),
            escape(row["reference"]),
            escape(row["current"]),
            f"{row['traces']:,}",
            f"{row['score']:.3f}",
            ("[red]" + ", ".join(drifting) + "[/red]") if row["drifted"] else "-",
        )
    Console().print(table if rows else "no drift checks stored yet")


@app.command("show")
def show(
    ctx: typer.Context,
    check_id: Annotated[str, typer.Argument(help="The check's id (from `llmops drift history`).")],
    html: Annotated[Path | None, typer.Option(help="Write its HTML report to this file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the stored report as JSON.")] = False,
) -> None:
    """Print a stored drift check (or write its HTML report)."""
    with readable_errors(), store_for(ctx) as store:
        result = store.drift.get_check(check_id)
        if html is not None:
            _write_html(result, html)
    _print(result, as_json)


def _write_html(result: dict[str, object], path: Path) -> None:
    from llmops.drift.report import render_html

    path.write_text(render_html(result), encoding="utf-8")


def _print(result: dict[str, object], as_json: bool) -> None:
    if as_json:
        echo_json(result)
        return
    from rich.console import Console

    from llmops.drift.report import render_summary

    console = Console()
    for part in render_summary(result):
        console.print(part)

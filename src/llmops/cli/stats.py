"""`llmops stats`: dashboard numbers in the terminal, from the trace rollups (fast at any size).

``llmops stats --since 24h --by model`` prints one row per group with its totals and a sparkline of
requests per bucket; ``--json`` prints the same answer as ``GET /api/stats``. ``llmops stats rebuild``
recomputes the rollups of a past range from the traces (after an upgrade from a release without them).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from llmops.cli._common import echo_json, readable_errors, store_for

app = typer.Typer(
    help="Requests, errors, latency, tokens, cost and feedback over time, by model, key, team or prompt.",
    invoke_without_command=True,
)
SPARKS = "▁▂▃▄▅▆▇█"


@app.callback()
def show_stats(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="Start: 30m, 24h, 7d (ago) or an ISO 8601 time.")] = "24h",
    until: Annotated[str | None, typer.Option(help="End (default: now), same forms as --since.")] = None,
    bucket: Annotated[str, typer.Option(help="Bucket size: 1m, 5m, 15m, 1h, 6h or 1d.")] = "1h",
    by: Annotated[
        list[str] | None,
        typer.Option("--by", help="Group by model, deployment, key, team, prompt or version (repeatable)."),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    key: Annotated[str | None, typer.Option(help="Only this API key (id or name).")] = None,
    team: Annotated[str | None, typer.Option(help="Only this team (id or name).")] = None,
    prompt: Annotated[str | None, typer.Option(help="Only this prompt.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON answer of GET /api/stats.")] = False,
) -> None:
    """Show aggregates over a time range (a table with a sparkline of requests per bucket)."""
    if ctx.invoked_subcommand is not None:
        return
    from datetime import UTC, datetime

    from llmops.monitoring.stats import StatsQuery, StatsQueryError
    from llmops.tracing.service import parse_since

    with readable_errors(), store_for(ctx) as store:
        filters: dict[str, str] = {
            name: value for name, value in (("model", model), ("prompt", prompt)) if value
        }
        if key is not None:
            found = [
                row.id for row in store.key_repository.list(include_revoked=True) if key in (row.id, row.name)
            ]
            if not found:
                raise StatsQueryError(f"--key: no API key with id or name {key!r}")
            filters["key"] = found[0]
        if team is not None:
            row = store.team_repository.find(team)
            if row is None:
                raise StatsQueryError(f"--team: no team with id or name {team!r}")
            filters["team"] = row.id
        query = StatsQuery(
            parse_since(since),
            parse_since(until) if until else datetime.now(UTC),
            bucket,
            tuple(dict.fromkeys(by or ())),
            filters,
        )
        result = store.stats.query(query).as_dict()
    if as_json:
        echo_json(result)
        return
    _print(result)


@app.command("rebuild")
def rebuild_rollups(
    ctx: typer.Context,
    since: Annotated[
        str, typer.Option(help="Start of the range to rebuild (whole hours): 7d, or an ISO time.")
    ],
    until: Annotated[str | None, typer.Option(help="End (default: the start of this hour).")] = None,
) -> None:
    """Recompute the rollups of a past range from the stored traces and feedback."""
    from datetime import UTC, datetime

    from llmops.monitoring.rollups import rebuild
    from llmops.tracing.service import parse_since

    end = parse_since(until) if until else datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with readable_errors(), store_for(ctx) as store:
        count = rebuild(store.engine, parse_since(since), end)
    typer.echo(f"rebuilt the rollups from {count} traces")


def sparkline(values: list[float]) -> str:
    """One character per value, scaled to the largest."""
    top = max(values, default=0)
    if top <= 0:
        return SPARKS[0] * len(values)
    return "".join(
        SPARKS[min(len(SPARKS) - 1, int(value / top * (len(SPARKS) - 1) + 0.5))] for value in values
    )


def _print(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    group_by = result["group_by"]
    title = (
        f"{result['since']:%Y-%m-%d %H:%M} → {result['until']:%Y-%m-%d %H:%M} UTC, {result['bucket']} buckets"
    )
    columns = ["requests", "errors", "p50 ms", "p95 ms", "p99 ms", "TTFT p95", "tokens in/out", "cost $"]
    columns += ["cache hit", "thumbs-down", "requests per bucket"]
    table = Table(*(group_by or ["all"]), *columns, title=title)
    for series in result["series"]:
        total = series["total"]
        latency = total["latency_ms"]
        rate = total["error_rate"]
        table.add_row(
            *(escape(series["group"][name] or "-") for name in group_by) if group_by else ("all",),
            f"{total['requests']:,}",
            f"{total['errors']:,}" + (f" ({rate:.1%})" if rate else ""),
            _ms(latency["p50"]),
            _ms(latency["p95"]),
            _ms(latency["p99"]),
            _ms(total["ttft_ms"]["p95"]),
            f"{total['prompt_tokens']:,}/{total['completion_tokens']:,}",
            f"{total['cost']:.4f}",
            _share(total["cache_hit_rate"]),
            _share(total["feedback"]["thumbs_down_rate"]),
            sparkline([point["requests"] for point in series["points"]]),
        )
    Console().print(table if result["series"] else "no traffic in this range")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"

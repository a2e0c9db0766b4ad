"""`llmops experiments`: A/B/n tests between prompt versions: create, list, status, promote, stop."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmops.cli._common import default_author, fail, readable_errors, store_for

if TYPE_CHECKING:
    from rich.console import Console

    from llmops.prompts.experiment_results import Comparison, ExperimentResults, Mean, Rate
    from llmops.prompts.experiments import Experiment

app = typer.Typer(help="A/B/n experiments between prompt versions on live traffic.", no_args_is_help=True)

_METRICS = {
    "thumbs_up_rate": "thumbs-up rate",
    "score": "mean score",
    "error_rate": "error rate",
    "latency_ms": "latency",
}


def _json_default(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, default=_json_default, indent=2))


def _describe(experiment: Experiment) -> str:
    variants = ", ".join(f"{v.name}=#{v.version} (weight {v.weight:g})" for v in experiment.variants)
    return (
        f"experiment {experiment.name} ({experiment.id}) on {experiment.prompt}@{experiment.label}: "
        f"{experiment.status}; variants {variants}; sticky by {experiment.sticky_by}"
    )


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A unique name for the experiment (letters, digits, . _ -).")],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="The prompt whose versions compete.")],
    variant: Annotated[
        list[str],
        typer.Option(
            "--variant",
            "-v",
            help="NAME=VERSION or NAME=VERSION:WEIGHT (weight 1 by default); give two or more, "
            "e.g. --variant a=1 --variant b=2:3. The first by name is the control in results.",
        ),
    ],
    label: Annotated[
        str,
        typer.Option(help="Requests for the prompt at this label take part (`prompt:NAME@LABEL`)."),
    ] = "production",
    sticky_by: Annotated[
        str,
        typer.Option(
            "--sticky-by",
            help="user: the request's `user` field keeps a user on one variant; header: the "
            "x-llmops-user header does.",
        ),
    ] = "user",
    description: Annotated[str | None, typer.Option(help="What the experiment tests.")] = None,
    author: Annotated[
        str | None, typer.Option(help="Who creates it (default: git config user.name, else $USER).")
    ] = None,
) -> None:
    """Start an experiment: requests for PROMPT@LABEL are split between the variants by weight."""
    from llmops.prompts.experiments import parse_variant

    if not variant:
        fail("give at least two --variant NAME=VERSION[:WEIGHT]")
    with readable_errors(), store_for(ctx) as store:
        experiment = store.experiments.create(
            name,
            prompt,
            [parse_variant(text) for text in variant],
            label=label,
            sticky_by=sticky_by,
            description=description,
            author=default_author(author),
        )
    typer.echo(f"created {_describe(experiment)}")
    typer.echo(f"control: {experiment.variants[0].name} (the first variant by name)", err=True)


@app.command("list")
def list_experiments(
    ctx: typer.Context,
    prompt: Annotated[
        str | None, typer.Option("--prompt", "-p", help="Only this prompt's experiments.")
    ] = None,
    status: Annotated[str | None, typer.Option(help="running, promoted or stopped.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List experiments, newest first."""
    from rich.console import Console
    from rich.table import Table

    with readable_errors(), store_for(ctx) as store:
        found = store.experiments.find(prompt=prompt, status=status)
    if as_json:
        _echo_json([experiment.as_dict() for experiment in found])
        return
    table = Table("name", "prompt@label", "status", "variants (version, weight)", "winner", "created (UTC)")
    for experiment in found:
        table.add_row(
            experiment.name,
            f"{experiment.prompt}@{experiment.label}",
            experiment.status,
            ", ".join(f"{v.name} #{v.version} ×{v.weight:g}" for v in experiment.variants),
            experiment.winner or "",
            experiment.created_at.strftime("%Y-%m-%d %H:%M") if experiment.created_at else "",
        )
    Console().print(table)


@app.command()
def status(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The experiment's name or id.")],
    control: Annotated[
        str | None, typer.Option(help="Compare the others with this variant (default: the first by name).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Results per variant with 95% intervals, tests against the control, and a recommendation."""
    with readable_errors(), store_for(ctx) as store:
        results = store.experiments.results(name, control=control)
    if as_json:
        _echo_json(results.as_dict())
        return
    _print_results(results)


@app.command()
def promote(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The experiment's name or id.")],
    variant: Annotated[str, typer.Argument(help="The winning variant: the label moves to its version.")],
    author: Annotated[
        str | None,
        typer.Option(
            help="Who promotes, in the label's history (default: git config user.name, else $USER)."
        ),
    ] = None,
) -> None:
    """Promote the winner: move the experiment's label to its version and end the experiment."""
    with readable_errors(), store_for(ctx) as store:
        experiment = store.experiments.promote(name, variant, author=default_author(author))
    winner = experiment.variant(variant)
    typer.echo(
        f"promoted {winner.name}: {experiment.prompt}@{experiment.label} -> version {winner.version}; "
        f"experiment {experiment.name} ended"
    )


@app.command()
def stop(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The experiment's name or id.")],
) -> None:
    """End the experiment without a winner; the label stays where it is."""
    with readable_errors(), store_for(ctx) as store:
        experiment = store.experiments.stop(name)
    typer.echo(f"stopped experiment {experiment.name}; {experiment.prompt}@{experiment.label} is unchanged")


# --- printing the results ---------------------------------------------------------------------------


def _print_results(results: ExperimentResults) -> None:
    from rich.console import Console

    console = Console()
    console.print(_describe(results.experiment), markup=False, highlight=False)
    _print_traffic(console, results)
    _print_feedback(console, results)
    _print_comparisons(console, results)
    console.print(f"[bold]recommendation:[/bold] {results.recommendation.text}", highlight=False)
    for note in results.notes:
        console.print(f"[dim]note: {note}[/dim]", highlight=False)


def _print_traffic(console: Console, results: ExperimentResults) -> None:
    from rich.table import Table

    table = Table(
        "variant",
        "version",
        "requests (share / planned)",
        "errors (rate, 95% CI)",
        "latency mean (95% CI)",
        "p50",
        "p95",
        "tokens in/out",
        "cost $",
        title="traffic",
        title_justify="left",
    )
    for variant in results.variants:
        share = f"{variant.share:.1%}" if variant.share is not None else "-"
        table.add_row(
            _name(variant.name, results.control),
            str(variant.version),
            f"{variant.requests:,} ({share} / {variant.planned_share:.1%})",
            f"{variant.errors:,} ({_rate(variant.error_rate)})",
            _mean(variant.latency_ms, "{:.0f} ms"),
            _ms(variant.latency_p50_ms),
            _ms(variant.latency_p95_ms),
            f"{variant.prompt_tokens:,}/{variant.completion_tokens:,}",
            f"{variant.cost:.4f}",
        )
    console.print(table)


def _print_feedback(console: Console, results: ExperimentResults) -> None:
    from rich.table import Table

    table = Table(
        "variant",
        "thumbed",
        "thumbs-up rate (95% CI)",
        "scored",
        "mean score (95% CI)",
        "eval scores",
        title="feedback",
        title_justify="left",
    )
    for variant in results.variants:
        evals = ", ".join(f"{k} {_mean(v, '{:.3g}')}" for k, v in variant.eval_scores.items()) or "-"
        table.add_row(
            _name(variant.name, results.control),
            f"{variant.thumbs_up.n:,}",
            _rate(variant.thumbs_up),
            f"{variant.score.n:,}",
            _mean(variant.score, "{:.3g}"),
            evals,
        )
    console.print(table)


def _print_comparisons(console: Console, results: ExperimentResults) -> None:
    from rich.table import Table

    level = f"{(1 - results.alpha) * 100:g}%"
    table = Table(
        "variant",
        "metric",
        "control → variant",
        f"difference ({level} CI)",
        "test",
        "p",
        f"significant (α={results.alpha:.3g})",
        "needed / more per variant",
        title=f"against the control ({results.control}); power {results.power:.0%}",
        title_justify="left",
    )
    for comparison in results.comparisons:
        table.add_row(
            comparison.variant,
            _METRICS[comparison.metric],
            f"{_value(comparison, comparison.control_value)} → "
            f"{_value(comparison, comparison.variant_value)}",
            _difference(comparison),
            comparison.test,
            _p(comparison.p_value),
            _verdict(comparison),
            _needed(comparison),
        )
    console.print(table)


def _name(name: str, control: str) -> str:
    return f"{name} (control)" if name == control else name


def _rate(rate: Rate) -> str:
    if rate.value is None or rate.low is None or rate.high is None:
        return "-"
    return f"{rate.value:.1%} [{rate.low:.1%}, {rate.high:.1%}]"


def _mean(mean: Mean, form: str) -> str:
    if mean.value is None:
        return "-"
    if mean.low is None or mean.high is None:
        return form.format(mean.value)
    return f"{form.format(mean.value)} [{form.format(mean.low)}, {form.format(mean.high)}]"


def _ms(value: float | None) -> str:
    return f"{value:.0f} ms" if value is not None else "-"


def _value(comparison: Comparison, value: float | None) -> str:
    if value is None:
        return "-"
    if comparison.metric in ("thumbs_up_rate", "error_rate"):
        return f"{value:.1%}"
    return f"{value:.0f} ms" if comparison.metric == "latency_ms" else f"{value:.3g}"


def _difference(comparison: Comparison) -> str:
    if comparison.difference is None:
        return "-"
    if comparison.metric in ("thumbs_up_rate", "error_rate"):
        return _points(comparison)
    form = "{:+.0f} ms" if comparison.metric == "latency_ms" else "{:+.3g}"
    text = form.format(comparison.difference)
    if comparison.difference_low is not None and comparison.difference_high is not None:
        text += f" [{form.format(comparison.difference_low)}, {form.format(comparison.difference_high)}]"
    return text


def _points(comparison: Comparison) -> str:
    """A difference of rates in percentage points (+5.0 pts: from 50% to 55%, not 50% more)."""

    def points(value: float) -> str:
        return f"{value * 100:+.1f}"

    text = f"{points(comparison.difference or 0.0)} pts"
    if comparison.difference_low is not None and comparison.difference_high is not None:
        text += f" [{points(comparison.difference_low)}, {points(comparison.difference_high)}]"
    return text


def _p(p_value: float | None) -> str:
    if p_value is None:
        return "-"
    return "<0.0001" if p_value < 0.0001 else f"{p_value:.2g}"


def _verdict(comparison: Comparison) -> str:
    if comparison.p_value is None or (comparison.note and not comparison.significant):
        return f"[dim]{comparison.note or 'not enough data'}[/dim]"
    if comparison.significant:
        return f"[bold]yes: {comparison.better} better[/bold]"
    return "no"


def _needed(comparison: Comparison) -> str:
    if comparison.needed_per_variant is None:
        return "-"
    more = comparison.more_samples or 0
    text = f"{comparison.needed_per_variant:,} / {more:,} {comparison.unit}s"
    if more and comparison.more_requests is not None and comparison.unit != "request":
        text += f" (≈{comparison.more_requests:,} requests)"
    return text

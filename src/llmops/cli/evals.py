"""`llmops evals`: evaluation runs, comparisons and CI gates from the command line.

`run` evaluates in-process through the gateway's own code path (traced, cost-accounted), with a
progress bar; it is registered as a job, so `llmops evals cancel RUN` from another terminal (or the
admin API) stops it, and `llmops evals resume RUN` finishes it later without re-running finished items.
A run id, a run name or a label works wherever RUN is asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmops.cli import eval_views as views
from llmops.cli._common import (
    default_author,
    echo_json,
    fail,
    progress_bar,
    readable_errors,
    settings_for,
    store_for,
)

if TYPE_CHECKING:
    from llmops.evals.repository import RunInfo
    from llmops.evals.service import RunRequest
    from llmops.evals.targets import Target
    from llmops.progress import Progress
    from llmops.settings import Settings

app = typer.Typer(
    help="Evaluation runs over dataset versions, metrics, comparisons with significance, CI gates.",
    no_args_is_help=True,
)

_RUN = "A run id, run name or label."
_JSON = "Print JSON instead of tables."


def _key_values(pairs: list[str] | None, option: str, number: bool) -> dict[str, Any]:
    import json

    found: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            fail(f"{option}: expected KEY=VALUE, got {pair!r}")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        if number and not isinstance(value, int | float):
            fail(f"{option}: {key} needs a number, got {text!r}")
        found[key] = value
    return found


def _target(
    model: str | None,
    prompt: str | None,
    endpoint: str | None,
    endpoint_model: str | None,
    endpoint_key_env: str | None,
    output_field: str | None,
    traces: bool,
    params: dict[str, Any],
) -> Target:
    from llmops.evals.targets import Target

    chosen = [
        name
        for name, value in (
            ("--model", model),
            ("--prompt", prompt),
            ("--endpoint", endpoint),
            ("--output-field", output_field),
            ("--traces", traces),
        )
        if value
    ]
    if len(chosen) != 1:
        fail("name exactly one target: --model, --prompt, --endpoint, --output-field or --traces")
    if model:
        return Target("model", model=model, params=params)
    if prompt:
        return Target("prompt", model=prompt.removeprefix("prompt:"), params=params)
    if endpoint:
        return Target(
            "endpoint", model=endpoint_model, base_url=endpoint, api_key_env=endpoint_key_env, params=params
        )
    if output_field:
        return Target("column", column=output_field)
    return Target("traces")


@app.command("run")
def run(
    ctx: typer.Context,
    metric: Annotated[
        list[str],
        typer.Option(
            "--metric",
            "-m",
            help="A metric: rouge_l, exact_match, judge:relevance, regex:PATTERN, ... (repeatable).",
        ),
    ],
    dataset: Annotated[
        str | None, typer.Option(help="The dataset version: NAME (latest) or NAME@VERSION.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Target: a model of the gateway.")] = None,
    prompt: Annotated[
        str | None,
        typer.Option(
            help="Target: a prompt, NAME@LABEL or NAME#VERSION, rendered with each row's variables."
        ),
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option(help="Target: an external OpenAI-compatible base URL (…/v1).")
    ] = None,
    endpoint_model: Annotated[str | None, typer.Option(help="--endpoint: the model name to send it.")] = None,
    endpoint_key_env: Annotated[
        str | None, typer.Option(help="--endpoint: the environment variable holding its key.")
    ] = None,
    output_field: Annotated[
        str | None, typer.Option(help="Target: no call; score this row field as the output.")
    ] = None,
    traces: Annotated[
        bool,
        typer.Option(
            "--traces", help="Target: no call; score production answers (with --trace-model, --since, ...)."
        ),
    ] = False,
    trace_model: Annotated[str | None, typer.Option(help="--traces: only traces of this model.")] = None,
    since: Annotated[str | None, typer.Option(help="--traces: 30m, 2h, 7d (ago) or an ISO time.")] = None,
    feedback: Annotated[
        str | None, typer.Option(help="--traces: only traces with a thumb up or down.")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="A request parameter: temperature=0, max_tokens=256 (repeatable)."),
    ] = None,
    threshold: Annotated[
        list[str] | None, typer.Option("--threshold", help="A pass threshold: rouge_l=0.5 (repeatable).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Name the run; the name works wherever a run id does.")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Items in flight at once.")] = 8,
    judge_model: Annotated[
        str | None, typer.Option(help="The model that judges (judge:RUBRIC metrics).")
    ] = None,
    scorers: Annotated[
        list[str] | None,
        typer.Option("--scorers", help="A Python file or module with @scorer functions (repeatable)."),
    ] = None,
    cache: Annotated[
        bool, typer.Option("--cache/--no-cache", help="Let the gateway answer from its cache.")
    ] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N items.")] = None,
    author: Annotated[
        str | None, typer.Option(help="Who runs it (default: git config user.name, else $USER).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help=_JSON)] = False,
) -> None:
    """Evaluate a target over a dataset version (or score existing outputs) and store every item's scores."""
    from llmops.evals.service import RunRequest

    with readable_errors():
        target = _target(
            model,
            prompt,
            endpoint,
            endpoint_model,
            endpoint_key_env,
            output_field,
            traces,
            _key_values(param, "--param", number=False),
        )
        selection = None
        if traces:
            from llmops.datasets.traces_source import selection_from_options

            selection = selection_from_options(model=trace_model, since=since, feedback=feedback, limit=limit)
        elif dataset is None:
            fail("--dataset: name the dataset version to evaluate (or use --traces)")
        request = RunRequest(
            target=target,
            metrics=metric,
            dataset=dataset,
            traces=selection,
            name=name,
            concurrency=concurrency,
            judge_model=judge_model,
            scorer_modules=[*settings_for(ctx).scorer_modules, *(scorers or [])],
            thresholds=_key_values(threshold, "--threshold", number=True),
            use_cache=cache,
            limit=None if traces else limit,
        )
        finished = _execute(ctx, request, None, default_author(author), show=not as_json)
    echo_json(finished.to_dict()) if as_json else views.print_run(finished)
    if finished.status != "succeeded":
        raise typer.Exit(1)


@app.command("resume")
def resume(
    ctx: typer.Context,
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help=_RUN)],
    as_json: Annotated[bool, typer.Option("--json", help=_JSON)] = False,
) -> None:
    """Finish an interrupted or cancelled run: items already evaluated are not run again."""
    with readable_errors():
        finished = _execute(ctx, None, run_ref, None, show=not as_json)
    echo_json(finished.to_dict()) if as_json else views.print_run(finished)
    if finished.status != "succeeded":
        raise typer.Exit(1)


def _execute(
    ctx: typer.Context, request: RunRequest | None, existing: str | None, author: str | None, *, show: bool
) -> RunInfo:
    import asyncio

    from llmops.evals.execution import settings_with_endpoint
    from llmops.evals.targets import Target

    settings = settings_for(ctx)
    if request is not None:
        settings = settings_with_endpoint(settings, request.target)
    else:
        with store_for(ctx) as store:
            found = store.evals.get(existing or "")
        settings = settings_with_endpoint(settings, Target.from_dict(found.target))
    return asyncio.run(_in_process(settings, request, existing, author, show))


async def _in_process(
    settings: Settings, request: RunRequest | None, existing: str | None, author: str | None, show: bool
) -> RunInfo:
    from llmops.evals.execution import check_models, execute_run, models_used
    from llmops.evals.scorers.registry import ScorerRegistry
    from llmops.progress import Cancelled
    from llmops.services import build_services

    services = build_services(settings, open_allowed=True)
    try:
        evals = services.store.evals
        if request is not None:
            check_models(request.target, request.judge_model, services)
            run_info = evals.create_run(request, ScorerRegistry(), author=author)
        else:
            run_info = evals.prepare_resume(existing or "")
        await services.start_in_process(models_used(run_info, services))
        params = {"run": run_info.id, "name": run_info.name}
        with (
            progress_bar(show) as bar,
            services.store.jobs.track("eval.run", params, created_by=author) as job,
        ):
            evals.repository.update_run(run_info.id, job_id=job.job_id)
            try:
                return await execute_run(services, run_info, progress=_both(bar, job.progress))
            except Cancelled:
                return evals.get(run_info.id)
    finally:
        await services.stop()


def _both(first: Progress, second: Progress) -> Progress:
    def report(stage: str, done: int, total: int | None) -> None:
        first(stage, done, total)
        second(stage, done, total)

    return report


@app.command("list")
def list_runs(
    ctx: typer.Context,
    dataset: Annotated[str | None, typer.Option(help="Only runs over this dataset (a name).")] = None,
    status: Annotated[
        str | None, typer.Option(help="queued, running, succeeded, failed or cancelled.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help=_JSON)] = False,
) -> None:
    """Evaluation runs, newest first, with their status and main scores."""
    with readable_errors(), store_for(ctx) as store:
        found = store.evals.list_runs(dataset=dataset, status=status, limit=limit)
    echo_json([item.to_dict() for item in found]) if as_json else views.print_runs(found)


@app.command("show")
def show(
    ctx: typer.Context,
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help=_RUN)],
    items: Annotated[int, typer.Option(min=0, help="Items to show (outputs and scores).")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help=_JSON)] = False,
) -> None:
    """A run: target, dataset version, metrics with their aggregates, and its first items."""
    with readable_errors(), store_for(ctx) as store:
        found = store.evals.get(run_ref)
        results = store.evals.results(found.id, limit=items)
    if as_json:
        echo_json({**found.to_dict(), "items": results})
    else:
        views.print_run(found, results)


@app.command("label")
def label(
    ctx: typer.Context,
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help=_RUN)],
    name: Annotated[
        str, typer.Argument(help="The label, e.g. production: the baseline a gate compares with.")
    ],
    author: Annotated[str | None, typer.Option(help="Who moves it.")] = None,
) -> None:
    """Point a label at a finished run (a label names one run; moving it is how a new baseline is adopted)."""
    with readable_errors(), store_for(ctx) as store:
        found = store.evals.label(run_ref, name, default_author(author))
    typer.echo(f"{name} -> {found.name or found.id}")


@app.command("cancel")
def cancel(
    ctx: typer.Context,
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help=_RUN)],
) -> None:
    """Stop a running evaluation at its next progress report; `resume` finishes it later."""
    with readable_errors(), store_for(ctx) as store:
        found = store.evals.get(run_ref)
        if found.job_id is None:
            fail(f"run {found.name or found.id} has no job to cancel (status {found.status})")
        store.jobs.cancel(found.job_id)
    typer.echo(f"cancel requested for {found.name or found.id}")


@app.command("compare")
def compare(
    ctx: typer.Context,
    runs: Annotated[
        list[str], typer.Argument(metavar="RUN...", help="The baseline first, then one or more candidates.")
    ],
    metric: Annotated[
        list[str] | None, typer.Option("--metric", "-m", help="Only these metrics (default: all they share).")
    ] = None,
    alpha: Annotated[
        float, typer.Option(min=0.001, max=0.5, help="Significance level; intervals at 1 - alpha.")
    ] = 0.05,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap and permutation resampling.")] = 0,
    report_format: Annotated[
        str | None, typer.Option("--format", help="Write a report instead of tables: markdown, json or html.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="The report's file (default: stdout).")] = None,
) -> None:
    """Per metric: means with intervals, the paired difference with its interval and p-value, a verdict."""
    from llmops.evals.report import render_comparison, render_report

    if report_format not in (None, "markdown", "json", "html"):
        fail(f"--format: expected markdown, json or html, got {report_format!r}")
    with readable_errors(), store_for(ctx) as store:
        found = store.evals.compare(runs, metrics=metric, alpha=alpha, seed=seed)
    if report_format is None:
        from rich.console import Console

        console = Console(highlight=False)
        for part in render_comparison(found):
            console.print(part)
        return
    text = render_report(found, report_format)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}", err=True)


@app.command("gate")
def gate(
    ctx: typer.Context,
    baseline: Annotated[
        str, typer.Option(help="The run compared with: a run id, name or label (e.g. production).")
    ],
    candidate: Annotated[str, typer.Option(help="The run under test: a run id, name or label.")],
    metric: Annotated[list[str], typer.Option("--metric", "-m", help="A metric to check (repeatable).")],
    max_drop: Annotated[
        list[float] | None,
        typer.Option(
            "--max-drop", help="Allowed drop per --metric, in the metric's units (one for all, or one each)."
        ),
    ] = None,
    alpha: Annotated[
        float, typer.Option(min=0.001, max=0.499, help="Significance level of the test.")
    ] = 0.05,
    seed: Annotated[int, typer.Option(help="Seed of the resampling.")] = 0,
) -> None:
    """CI gate: exit 0 unless the candidate is significantly worse than the baseline by more than the
    allowed drop on some metric (exit 1, naming it); exit 2 on a usage error."""
    drops = list(max_drop or [0.0])
    if len(drops) not in (1, len(metric)):
        fail(f"--max-drop: give one value, or one per --metric ({len(metric)})", 2)
    pairs = [(name, drops[0] if len(drops) == 1 else drops[index]) for index, name in enumerate(metric)]
    with readable_errors(code=2), store_for(ctx) as store:
        result = store.evals.gate(baseline, candidate, pairs, alpha=alpha, seed=seed)
    for line in result.messages:
        typer.echo(line)
    typer.echo(result.summary)
    raise typer.Exit(result.exit_code)

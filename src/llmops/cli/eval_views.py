"""How `llmops evals` prints runs: Rich tables of aggregates and items, no logic."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from llmops.evals.repository import RunInfo

CELL = 50


def _console() -> Console:
    from rich.console import Console

    return Console(highlight=False)


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _short(text: Any) -> str:
    value = " ".join(str(text or "").split())
    return value if len(value) <= CELL else value[: CELL - 1] + "…"


def print_runs(runs: list[RunInfo]) -> None:
    from rich.table import Table

    if not runs:
        _console().print(
            "no evaluation runs yet: `llmops evals run --dataset NAME --model M --metric exact_match`"
        )
        return
    table = Table(
        "run", "name", "dataset", "target", "status", "items", "metrics (mean)", "labels", "created"
    )
    for run in runs:
        metrics = (run.summary or {}).get("metrics", {})
        means = ", ".join(f"{name} {_number(values.get('mean'))}" for name, values in metrics.items())
        table.add_row(
            run.id[:12],
            run.name or "",
            run.dataset_ref or "traces",
            _target(run.target),
            run.status,
            f"{run.items_done}/{run.items_total if run.items_total is not None else '?'}",
            means,
            ", ".join(run.labels),
            run.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    _console().print(table)


def _target(target: dict[str, Any]) -> str:
    from llmops.evals.targets import Target

    return Target.from_dict(target).describe()


def print_run(run: RunInfo, results: list[dict[str, Any]] | None = None) -> None:
    from rich.table import Table

    console = _console()
    summary = run.summary or {}
    console.print(
        f"[bold]{run.name or run.id}[/bold] ({run.id})  {run.status}  dataset {run.dataset_ref or 'traces'}  "
        f"target {_target(run.target)}",
        markup=True,
    )
    if run.error:
        console.print(f"error: {run.error}", markup=False)
    console.print(
        f"items {run.items_done}/{run.items_total if run.items_total is not None else '?'}, "
        f"errors {summary.get('errors', 0)}, tokens {summary.get('tokens', 0)}, "
        f"cost ${summary.get('cost', 0.0):.6f}, "
        f"latency p50 {_number((summary.get('latency_ms') or {}).get('median'), 1)} ms",
        markup=False,
    )
    table = Table("metric", "n", "mean", "median", "stdev", "min", "max", "pass rate", "threshold")
    for name, values in (summary.get("metrics") or {}).items():
        table.add_row(
            name,
            str(values.get("n", 0)),
            *(
                _number(values.get(key))
                for key in ("mean", "median", "stdev", "min", "max", "pass_rate", "threshold")
            ),
        )
    console.print(table)
    if results:
        items = Table("#", "output", *run.metrics, "error")
        for result in results:
            scores = result.get("scores") or {}
            items.add_row(
                str(result["position"]),
                _short(result.get("output")),
                *(_number(scores.get(metric)) for metric in run.metrics),
                _short(result.get("error")),
            )
        console.print(items)

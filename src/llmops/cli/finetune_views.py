"""How `llmops finetune` shows runs: the live training line, the run list and one run in full."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress

    from llmops.training.repository import FinetuneInfo


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{rest:02d}" if hours else f"{minutes}:{rest:02d}"


def progress_line(report: dict[str, Any]) -> str:
    """One line of training figures: losses, throughput, time left."""
    return (
        f"loss {_number(report.get('train_loss'))}  val {_number(report.get('val_loss'))}  "
        f"{_number(report.get('tokens_per_second'), 5)} tok/s  ETA {_duration(report.get('eta_seconds'))}"
    )


@dataclass
class LiveView:
    """A Rich progress display on stderr: one bar per stage, the training bar with its figures."""

    bar: RichProgress | None
    _tasks: dict[str, Any] = field(default_factory=dict)

    def stage(self, stage: str, done: int, total: int | None) -> None:
        if self.bar is None:
            return
        if stage not in self._tasks:
            self._tasks[stage] = self.bar.add_task(stage, total=total, info="")
        self.bar.update(self._tasks[stage], completed=done, total=total)

    def training(self, report: dict[str, Any]) -> None:
        self.stage("train", int(report.get("step") or 0), report.get("total_steps"))
        if self.bar is not None:
            self.bar.update(self._tasks["train"], info=progress_line(report))


@contextmanager
def live_view(enabled: bool) -> Iterator[LiveView]:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as RichProgress

    if not enabled:
        yield LiveView(None)
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with RichProgress(*columns, console=Console(stderr=True)) as bar:
        yield LiveView(bar)


def print_runs(runs: list[FinetuneInfo]) -> None:
    table = Table("id", "name", "base", "data", "status", "step", "val loss", "model", "created")
    for run in runs:
        progress = run.progress or {}
        step = (
            f"{progress.get('step', '-')}/{progress.get('total_steps', '-')}" if "step" in progress else "-"
        )
        table.add_row(
            run.id,
            run.name or "",
            run.base_model,
            run.dataset_ref or run.data_file or "",
            run.status,
            step,
            _number(progress.get("val_loss")),
            run.model_version or "",
            run.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    Console().print(table)


def print_run(run: FinetuneInfo) -> None:
    console = Console()
    console.print(f"[bold]fine-tuning run {run.name or run.id}[/bold] ({run.id}): {run.status}")
    console.print(f"base {run.base_model}, data {run.dataset_ref or run.data_file}, folder {run.workdir}")
    if run.error:
        console.print(f"[red]error:[/red] {run.error}")
    progress = run.progress or {}
    if progress:
        stage = progress.get("stage", "-")
        if "step" in progress:
            step = f"{progress['step']}/{progress.get('total_steps')}"
            console.print(f"stage {stage}: step {step}, {progress_line(progress)}")
        else:
            console.print(f"stage {stage}")
    params = Table("parameter", "value", title="hyper-parameters")
    for key, value in run.params.items():
        params.add_row(key, str(value))
    console.print(params)
    result = run.result or {}
    evaluation = result.get("evaluation")
    if evaluation:
        _print_evaluation(console, evaluation)
    quantization = result.get("quantization") or []
    if quantization:
        table = Table("level", "MB", "tokens/s", "perplexity", title="GGUF quantisation")
        for level in quantization:
            table.add_row(
                level["level"],
                f"{level['bytes'] / 1e6:.1f}",
                _number(level.get("tokens_per_second"), 4),
                _number(level.get("perplexity"), 5),
            )
        console.print(table)
    if run.model_version:
        console.print(f"registered as [bold]{run.model_version}[/bold]")


def _print_evaluation(console: Console, evaluation: dict[str, Any]) -> None:
    table = Table("metric", "base", "tuned", "difference", "p-value", title="before / after (validation)")
    table.add_row(
        "loss",
        _number(evaluation["base_loss"]),
        _number(evaluation["tuned_loss"]),
        _number(evaluation["loss_difference"]),
        _number(evaluation["p_value"], 3),
    )
    table.add_row(
        "perplexity", _number(evaluation["base_perplexity"]), _number(evaluation["tuned_perplexity"]), "", ""
    )
    for metric, figures in (evaluation.get("metrics") or {}).items():
        table.add_row(
            metric,
            _number(figures.get("base")),
            _number(figures.get("tuned")),
            _number(figures.get("difference")),
            _number(figures.get("p_value"), 3),
        )
    console.print(table)
    verdict = "significantly lower" if evaluation.get("significant") else "not significantly different"
    console.print(f"tuned validation loss is {verdict} than the base's ({evaluation['examples']} examples)")

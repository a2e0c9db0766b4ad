"""`llmops finetune`: LoRA fine-tuning runs on dataset versions, from data to a registered model.

`run` trains in this process with a live view (step, losses, tokens/s, ETA); it is registered as a
job, so `llmops finetune cancel RUN` from another terminal (or the admin API) stops it at the next
step, leaving a checkpoint that `llmops finetune resume RUN` continues from. A running server takes
the same runs over REST (`POST /api/finetune`) and trains them in the background.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llmops.cli import finetune_views as views
from llmops.cli._common import default_author, echo_json, fail, readable_errors, store_for

if TYPE_CHECKING:
    from llmops.services import Store
    from llmops.training.repository import FinetuneInfo

app = typer.Typer(
    help="LoRA fine-tuning on dataset versions: train, evaluate before/after, export GGUF, register.",
    no_args_is_help=True,
)

_RUN = "A run id or run name."
_JSON = "Print JSON instead of tables."


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in (value or "").split(",") if item.strip())


@app.command("run")
def run(
    ctx: typer.Context,
    base: Annotated[
        str,
        typer.Option(help="Base model: smollm2 (the embedded SmolLM2-135M-Instruct) or a local HF folder."),
    ] = "smollm2",
    dataset: Annotated[
        str | None, typer.Option(help="Training data: a dataset version, NAME or NAME@VERSION.")
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="Training data: a JSONL file of chat or prompt/completion examples.")
    ] = None,
    validation: Annotated[
        Path | None, typer.Option(help="A JSONL file of validation examples (else a split of the data).")
    ] = None,
    validation_split: Annotated[
        float, typer.Option(help="Share of the data kept for validation when no file is given.")
    ] = 0.1,
    system: Annotated[
        str | None, typer.Option(help="A system message put first in every example without one.")
    ] = None,
    rank: Annotated[int, typer.Option(help="LoRA rank r.")] = 8,
    alpha: Annotated[float, typer.Option(help="LoRA alpha (scaling is alpha / rank).")] = 16.0,
    dropout: Annotated[float, typer.Option(help="LoRA dropout.")] = 0.05,
    target_modules: Annotated[
        str, typer.Option(help="Comma-separated module names LoRA adapts.")
    ] = "q_proj,k_proj,v_proj,o_proj",
    epochs: Annotated[float, typer.Option(help="Passes over the training data.")] = 1.0,
    max_steps: Annotated[
        int | None, typer.Option(help="Stop after this many optimizer steps (overrides --epochs).")
    ] = None,
    learning_rate: Annotated[
        float, typer.Option("--learning-rate", "--lr", help="Peak learning rate.")
    ] = 2e-4,
    schedule: Annotated[
        str, typer.Option(help="Learning-rate schedule: linear, cosine or constant.")
    ] = "linear",
    warmup_ratio: Annotated[float, typer.Option(help="Share of the steps spent warming up.")] = 0.03,
    batch_size: Annotated[int, typer.Option(help="Examples per forward pass.")] = 8,
    gradient_accumulation: Annotated[int, typer.Option(help="Forward passes per optimizer step.")] = 1,
    max_seq_length: Annotated[int, typer.Option(help="Tokens per example (longer prompts are cut).")] = 512,
    seed: Annotated[int, typer.Option(help="Seed of the split, the data order and the initial weights.")] = 0,
    eval_every: Annotated[
        int | None, typer.Option(help="Steps between validation losses (default: about 10 per run).")
    ] = None,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints.")] = 50,
    metrics: Annotated[
        str | None,
        typer.Option(
            help="Evaluation metrics scored before/after on the validation split: exact_match,rouge_l"
        ),
    ] = None,
    quantize: Annotated[
        str, typer.Option(help="GGUF levels to export, comma-separated (empty: no GGUF).")
    ] = "f16,q8_0,q4_k_m",
    register: Annotated[
        str | None, typer.Option(help="Register the tuned model as a new version of this registry model.")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Name the run; the name works wherever a run id does.")
    ] = None,
    author: Annotated[
        str | None, typer.Option(help="Who runs it (default: git config user.name, else $USER).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help=_JSON)] = False,
) -> None:
    """Fine-tune a base model with LoRA on a dataset version (or JSONL files), in this process."""
    from llmops.training.params import LoraParams
    from llmops.training.service import FinetuneRequest

    with readable_errors():
        params = LoraParams(
            rank=rank,
            alpha=alpha,
            dropout=dropout,
            target_modules=_csv(target_modules),
            epochs=epochs,
            max_steps=max_steps,
            learning_rate=learning_rate,
            schedule=schedule,
            warmup_ratio=warmup_ratio,
            batch_size=batch_size,
            gradient_accumulation=gradient_accumulation,
            max_seq_length=max_seq_length,
            seed=seed,
            eval_every=eval_every,
            checkpoint_every=checkpoint_every,
        )
        request = FinetuneRequest(
            base=base,
            params=params,
            dataset=dataset,
            data_file=None if data is None else str(data.resolve()),
            validation_file=None if validation is None else str(validation.resolve()),
            validation_split=validation_split,
            system=system,
            metrics=_csv(metrics),
            quantize=_csv(quantize),
            register_as=register,
            name=name,
        )
        with store_for(ctx) as store:
            created = store.finetune.create(request, author=default_author(author))
            finished = _execute(store, created, show=not as_json)
    _finish(finished, as_json)


@app.command("resume")
def resume(
    ctx: typer.Context,
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help=_RUN)],
    as_json: Annotated[bool, typer.Option("--json", help=_JSON)] = False,
) -> None:
    """Continue a cancelled, failed or interrupted run from its last checkpoint."""
    with readable_errors(), store_for(ctx) as store:
        prepared = store.finetune.prepare_resume(run_ref)
        finished = _execute(store, prepared, show=not as_json)
    _finish(finished, as_json)


def _execute(store: Store, run_info: FinetuneInfo, *, show: bool) -> FinetuneInfo:
    from llmops.progress import Cancelled

    params = {"run": run_info.id, "name": run_info.name}
    with views.live_view(show) as view:
        try:
            with store.jobs.track("finetune", params, created_by=run_info.created_by) as job:
                sink = _Sink(job, view)
                return store.finetune.execute(run_info.id, sink, job_id=job.job_id, on_report=view.training)
        except Cancelled:
            return store.finetune.get(run_info.id)


class _Sink:
    """The job's progress and log, with every report also drawn on the live view."""

    def __init__(self, job: object, view: views.LiveView) -> None:
        self._job = job
        self._view = view

    def progress(self, stage: str, done: int, total: int | None) -> None:
        if stage != "train":
            self._view.stage(stage, done, total)
        self._job.progress(stage, done, total)  # type: ignore[attr-defined]

    def log(self, message: str, level: str = "info") -> None:
        self._job.log(message, level)  # type: ignore[attr-defined]


def _finish(finished: FinetuneInfo, as_json: bool) -> None:
    echo_json(finished.to_dict()) if as_json else views.print_run(finished)
    if finished.status != "succeeded":
        raise typer.Exit(1)


@app.command("list")
def list_runs(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option(help="queued, running, succeeded, failed or cancelled.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help=_JSON)] = False,
) -> None:
    """Fine-tuning runs, newest first, with their status, step and validation loss."""
    with readable_errors(), store_for(ctx) as store:
        found = store.finetune.list_runs(status=status, limit=limit)
    echo_json([item.to_dict() for item in found]) if as_json else views.print_runs(found)


@app.command("show")
def show(
    ctx: typer.Context,
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help=_RUN)],
    curve: Annotated[
        Path | None, typer.Option(help="Also write the loss curves as an SVG file here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help=_JSON)] = False,
) -> None:
    """One run: progress, hyper-parameters, before/after evaluation, GGUF report, registered version."""
    with readable_errors(), store_for(ctx) as store:
        found = store.finetune.get(run_ref)
        if curve is not None:
            curve.write_text(store.finetune.loss_curve(run_ref))
    echo_json(found.to_dict(curves=True)) if as_json else views.print_run(found)
    if curve is not None and not as_json:
        typer.echo(f"loss curves written to {curve}")


@app.command("logs")
def logs(
    ctx: typer.Context,
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help=_RUN)],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the run ends.")] = False,
) -> None:
    """The run's log lines (stages, data, resumes, results)."""
    import time

    with readable_errors(), store_for(ctx) as store:
        after = 0
        while True:
            found = store.finetune.get(run_ref)
            if found.job_id is None:
                fail(f"fine-tuning run {run_ref} has not started; no log yet")
            for line in store.jobs.logs(found.job_id, after=after):
                after = line["seq"]
                typer.echo(f"{line['at']} {line['level']:7} {line['message']}")
            if not follow or found.status not in ("queued", "running"):
                return
            time.sleep(1.0)


@app.command("cancel")
def cancel(
    ctx: typer.Context,
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help=_RUN)],
) -> None:
    """Stop a queued or running run at its next step; `resume` continues from its last checkpoint."""
    with readable_errors(), store_for(ctx) as store:
        found = store.finetune.get(run_ref)
        if found.job_id is None or found.status not in ("queued", "running"):
            fail(f"fine-tuning run {run_ref} is {found.status}; nothing to cancel")
        store.jobs.cancel(found.job_id)
    typer.echo(f"cancelling fine-tuning run {found.name or found.id}")

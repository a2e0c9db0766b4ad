"""Fine-tuning runs: check and record a request, then run it as a job from data to a registered model.

A run goes through fixed stages, each reported as job progress (so `llmops finetune cancel`, the
admin API or a server shutdown stops it at the next report):

1. ``prepare``: the base model (the embedded SmolLM2 is converted once from its GGUF) and the data:
   a dataset version is exported as chat examples with a seeded validation split (rows that would break
   training are left out and counted), or the JSONL files are read;
2. ``train``: LoRA steps with checkpoints in the run's folder (a resumed run continues from the last);
3. ``evaluate``: the validation split scored with the base and the tuned model, compared with a paired test;
4. ``export`` and ``quantize``: the merged model as GGUF, quantised to the chosen levels, each measured;
5. ``register``: the artefacts, parameters, metrics and lineage as a new version in the model registry.

Training and export need the ``train`` extra; they are imported only when a run executes.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Engine

from llmops.datasets.service import DatasetService
from llmops.errors import UserError
from llmops.ids import new_id
from llmops.progress import Cancelled
from llmops.training.repository import FinetuneConflict, FinetuneInfo, FinetuneRepository

if TYPE_CHECKING:
    from llmops.registry.service import RegistryService
    from llmops.training.base_models import BaseModel
    from llmops.training.params import LoraParams
    from llmops.training.trainer import StepReport, TrainOutcome

FINISHED = ("succeeded", "failed", "cancelled")
DEFAULT_LEVELS: tuple[str, ...] = ("f16", "q8_0", "q4_k_m")
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}"
REGISTRY_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_REPORT_EVERY = 2.0  # seconds between progress rows written during training
_PERPLEXITY_TEXTS = 100  # validation texts measured per quantisation level
_TRAIN_EXTRA = "fine-tuning needs the train extra: pip install 'llmops[train]'"


class InvalidFinetune(UserError):
    """A request that cannot run (bad parameters, unknown base, no data)."""


class RunSink(Protocol):
    """Where a running fine-tune reports: a job's context (its progress raises Cancelled to stop)."""

    def progress(self, stage: str, done: int, total: int | None) -> None: ...

    def log(self, message: str, level: str = "info") -> None: ...


@dataclass(frozen=True)
class FinetuneRequest:
    """What to fine-tune: a base model, the data (a dataset version or JSONL files) and how."""

    base: str
    params: LoraParams
    dataset: str | None = None
    data_file: str | None = None
    validation_file: str | None = None
    validation_split: float = 0.1
    system: str | None = None
    metrics: tuple[str, ...] = ()
    quantize: tuple[str, ...] = DEFAULT_LEVELS
    register_as: str | None = None
    name: str | None = None

    def options(self) -> dict[str, Any]:
        return {
            "validation_split": self.validation_split,
            "system": self.system,
            "metrics": list(self.metrics),
            "quantize": list(self.quantize),
            "register_as": self.register_as,
        }


@dataclass
class _StepRecorder:
    """Turns trainer step reports into job progress (every step) and a progress row (every few seconds)."""

    repository: FinetuneRepository
    run_id: str
    sink: RunSink
    curves: list[dict[str, Any]]
    on_report: Callable[[dict[str, Any]], None] | None = None
    _written: float = 0.0
    latest: dict[str, Any] = field(default_factory=dict)

    def __call__(self, report: StepReport) -> None:
        point = {
            "step": report.step,
            "train_loss": report.train_loss,
            "learning_rate": report.learning_rate,
            "tokens_per_second": report.tokens_per_second,
        }
        if report.val_loss is not None:
            point["val_loss"] = report.val_loss
        self.curves[:] = [item for item in self.curves if item["step"] < report.step]
        self.curves.append(point)
        self.latest = {
            "stage": "train",
            "step": report.step,
            "total_steps": report.total_steps,
            "epoch": round(report.epoch, 4),
            "train_loss": report.train_loss,
            "val_loss": report.val_loss if report.val_loss is not None else self.latest.get("val_loss"),
            "learning_rate": report.learning_rate,
            "tokens_per_second": round(report.tokens_per_second, 1),
            "elapsed_seconds": round(report.elapsed_seconds, 1),
            "eta_seconds": None if report.eta_seconds is None else round(report.eta_seconds, 1),
        }
        if self.on_report is not None:
            self.on_report(self.latest)
        now = time.monotonic()
        final = report.step >= report.total_steps
        if final or report.val_loss is not None or now - self._written >= _REPORT_EVERY:
            self._written = now
            self.repository.update(self.run_id, progress=self.latest, curves=list(self.curves))
        self.sink.progress("train", report.step, report.total_steps)  # raises Cancelled when asked


class FinetuneService:
    def __init__(
        self,
        engine: Engine,
        datasets: DatasetService,
        home: Path,
        registry: RegistryService | None = None,
    ) -> None:
        self.engine = engine
        self.datasets = datasets
        self.home = home
        self.registry = registry
        self.repository = FinetuneRepository(engine)

    # -- creating --------------------------------------------------------------------------------

    def create(self, request: FinetuneRequest, *, author: str | None) -> FinetuneInfo:
        """Check and record a run (status ``queued``); nothing is trained yet."""
        self._check(request)
        dataset, version = None, None
        if request.dataset is not None:
            found = self.datasets.resolve(request.dataset)
            if found.row_count < 2:
                raise InvalidFinetune(
                    f"dataset {found.dataset}@{found.number} has {found.row_count} rows; "
                    "fine-tuning needs at least 2 (one to train on, one to validate)",
                    param="dataset",
                )
            dataset, version = found.dataset, found.number
        run_id = new_id()
        self.repository.create(
            {
                "id": run_id,
                "name": request.name,
                "base_model": request.base,
                "dataset": dataset,
                "dataset_version": version,
                "data_file": request.data_file,
                "validation_file": request.validation_file,
                "params": request.params.to_dict(),
                "options": request.options(),
                "status": "queued",
                "workdir": str(self.home / "finetune" / run_id),
                "created_by": author,
                "created_at": datetime.now(UTC),
            }
        )
        return self.repository.get(run_id)

    def _check(self, request: FinetuneRequest) -> None:
        from llmops.evals.scorers.registry import ScorerError, ScorerRegistry, parse_spec
        from llmops.training.base_models import BASE_ALIASES
        from llmops.training.quantize import QUANT_LEVELS

        if request.name is not None and not re.fullmatch(NAME_PATTERN, request.name):
            raise InvalidFinetune(f"invalid run name {request.name!r}", param="name")
        if request.register_as is not None and not re.fullmatch(REGISTRY_NAME_PATTERN, request.register_as):
            raise InvalidFinetune(
                f"invalid model name {request.register_as!r}: letters, digits, '.', '_', '-'",
                param="register_as",
            )
        request.params.validate()
        if (request.dataset is None) == (request.data_file is None):
            raise InvalidFinetune(
                "name the training data: a dataset version or a JSONL file", param="dataset"
            )
        for what, path in (("data_file", request.data_file), ("validation_file", request.validation_file)):
            if path is not None and not Path(path).is_file():
                raise InvalidFinetune(f"{what}: {path} is not a file", param=what)
        if request.validation_file is None and not 0 < request.validation_split < 1:
            raise InvalidFinetune(
                "validation_split is the share of rows kept for validation: between 0 and 1 (say 0.1)",
                param="validation_split",
            )
        base = Path(request.base).expanduser()
        if request.base.lower() not in BASE_ALIASES and not (base / "config.json").is_file():
            raise InvalidFinetune(
                f"unknown base model {request.base!r}: use {', '.join(sorted(BASE_ALIASES))} "
                "or a local Hugging Face model folder (with config.json)",
                param="base",
            )
        unknown = [level for level in request.quantize if level not in QUANT_LEVELS]
        if unknown:
            raise InvalidFinetune(
                f"unknown quantisation level {unknown[0]!r}; known: {', '.join(QUANT_LEVELS)}",
                param="quantize",
            )
        scorers = ScorerRegistry()
        for spec in request.metrics:
            try:
                scorers.get(parse_spec(spec)[0])
            except ScorerError as exc:
                raise InvalidFinetune(str(exc), param="metrics") from exc

    # -- running ---------------------------------------------------------------------------------

    def execute(
        self,
        reference: str,
        sink: RunSink,
        *,
        job_id: str | None = None,
        on_report: Callable[[dict[str, Any]], None] | None = None,
    ) -> FinetuneInfo:
        """Run every stage of a queued run; the run's row ends succeeded, failed or cancelled.

        ``sink`` has ``progress(stage, done, total)`` (raising Cancelled to stop) and ``log(message)``:
        a job's context. ``on_report`` sees each training progress report (the CLI's live view).
        """
        run = self.repository.get(reference)
        if run.status != "queued":
            raise FinetuneConflict(f"fine-tuning run {run.name or run.id} is {run.status}", param="run")
        self.repository.update(
            run.id, status="running", job_id=job_id, started_at=datetime.now(UTC), error=None
        )
        try:
            result = self._stages(run, sink, on_report)
        except Cancelled:
            self._end(run.id, "cancelled", error="cancelled on request")
            raise
        except UserError as exc:
            self._end(run.id, "failed", error=exc.message)
            raise
        except BaseException as exc:
            self._end(run.id, "failed", error=f"{type(exc).__name__}: {exc}")
            raise
        self._stage(run.id, sink, "done")
        self.repository.update(
            run.id,
            status="succeeded",
            result=result,
            model_version=result.get("model_version"),
            finished_at=datetime.now(UTC),
        )
        return self.repository.get(run.id)

    def _end(self, run_id: str, status: str, *, error: str) -> None:
        self.repository.update(run_id, status=status, error=error, finished_at=datetime.now(UTC))

    def _stages(
        self, run: FinetuneInfo, sink: RunSink, on_report: Callable[[dict[str, Any]], None] | None
    ) -> dict[str, Any]:
        try:
            from llmops.training.base_models import resolve_base
            from llmops.training.evaluation import compare_base_and_tuned
            from llmops.training.params import LoraParams
            from llmops.training.trainer import train_lora
        except ImportError as exc:  # the train extra is missing
            raise UserError(_TRAIN_EXTRA) from exc

        _quiet_transformers()
        workdir = Path(run.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        params = LoraParams.from_dict(run.params)
        self._stage(run.id, sink, "prepare")
        base = resolve_base(run.base_model, self.home)
        sink.log(f"base model {base.name}: {base.hf_dir}")
        train, validation, data_report = self._data(run, workdir, params.seed)
        sink.log(f"data: {len(train)} training and {len(validation)} validation examples")

        recorder = _StepRecorder(self.repository, run.id, sink, list(run.curves or []), on_report)
        outcome = train_lora(base, train, validation, params, workdir, on_step=recorder, log=sink.log)
        self.repository.update(run.id, curves=outcome.curves)

        self._stage(run.id, sink, "evaluate")
        comparison = compare_base_and_tuned(
            base.hf_dir,
            outcome.merged_dir,
            validation,
            metrics=run.options.get("metrics") or (),
            max_seq_length=params.max_seq_length,
            progress=sink.progress,
        )
        sink.log(
            f"validation loss {comparison.base_loss:.4f} (base) -> {comparison.tuned_loss:.4f} (tuned), "
            f"p = {comparison.p_value:.4g}"
        )
        levels = list(run.options.get("quantize") or [])
        ggufs, quantization = self._gguf(run, base, outcome, validation, levels, sink)
        result: dict[str, Any] = {
            "data": data_report,
            "training": outcome.to_dict(),
            "evaluation": comparison.to_dict(),
            "quantization": quantization,
            "artefacts": {
                "adapter": str(outcome.adapter_dir),
                "merged": str(outcome.merged_dir),
                **{f"gguf-{level}": str(path) for level, path in ggufs.items()},
                "loss-curve": str(workdir / "loss.svg"),
            },
        }
        report_path = workdir / "report.json"
        report_path.write_text(json.dumps(result, indent=2, default=str))
        register_as = run.options.get("register_as")
        if register_as:
            result["model_version"] = self._register(run, register_as, result, report_path, sink)
        return result

    def _stage(self, run_id: str, sink: RunSink, stage: str, done: int = 0, total: int | None = None) -> None:
        """Report a stage; the training figures stay in the progress row (the last ones are the result)."""
        figures = {
            key: value
            for key, value in (self.repository.get(run_id).progress or {}).items()
            if key not in ("stage", "stage_done", "stage_total")
        }
        progress = {**figures, "stage": stage, "stage_done": done, "stage_total": total}
        self.repository.update(run_id, progress=progress)
        sink.progress(stage, done, total)

    def _data(
        self, run: FinetuneInfo, workdir: Path, seed: int
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
        """The training and validation examples; a dataset version is exported once into the run's folder
        (a resumed run reads the same files, so its data and split cannot change)."""
        from llmops.training.data import read_jsonl

        if run.data_file is not None:
            train = read_jsonl(Path(run.data_file))
            if run.validation_file is not None:
                validation = read_jsonl(Path(run.validation_file))
            else:
                train, validation = _split(train, float(run.options["validation_split"]), seed)
            return train, validation, {"train": len(train), "validation": len(validation)}
        folder = workdir / "data"
        report: dict[str, Any]
        if not (folder / "validation.jsonl").is_file():
            report = self._export(run, folder, seed)
            (folder / "export.json").write_text(json.dumps(report))
        else:
            report = json.loads((folder / "export.json").read_text())
        train = read_jsonl(folder / "train.jsonl")
        validation = read_jsonl(folder / "validation.jsonl")
        if not train or not validation:
            raise InvalidFinetune(
                f"dataset {run.dataset_ref}: {len(train)} usable training and {len(validation)} validation "
                "rows; both splits need at least one (rows need a question and an answer)",
                param="dataset",
            )
        return train, validation, report

    def _export(self, run: FinetuneInfo, folder: Path, seed: int) -> dict[str, Any]:
        from llmops.datasets.finetune import export_finetune

        version = self.datasets.resolve(str(run.dataset_ref))
        exported = export_finetune(
            ((position, row) for position, _, row in self.datasets.iter_rows(version)),
            total=version.row_count,
            format="chat",
            out_dir=folder,
            split=1 - float(run.options["validation_split"]),
            seed=seed,
            max_tokens=None,
            on_invalid="skip",
            system=run.options.get("system"),
        )
        return {
            "dataset": run.dataset_ref,
            "train": exported.counts.get("train", 0),
            "validation": exported.counts.get("validation", 0),
            "skipped": exported.skipped,
            "problems": [str(problem) for problem in exported.problems[:20]],
        }

    def _gguf(
        self,
        run: FinetuneInfo,
        base: BaseModel,
        outcome: TrainOutcome,
        validation: Sequence[dict[str, Any]],
        levels: list[str],
        sink: RunSink,
    ) -> tuple[dict[str, Path], list[dict[str, Any]]]:
        """The merged model as GGUF at each level, and the quantisation report (size, speed, perplexity)."""
        if not levels:
            return {}, []
        from llmops.training.gguf_export import export_gguf
        from llmops.training.quantize import quantization_report, quantize_gguf

        folder = Path(run.workdir) / "gguf"
        folder.mkdir(parents=True, exist_ok=True)
        self._stage(run.id, sink, "export")
        f16 = export_gguf(
            outcome.merged_dir, folder / "model-f16.gguf", dtype="f16", tokenizer_source=base.gguf_source
        )
        paths: dict[str, Path] = {}
        for done, level in enumerate(levels):
            self._stage(run.id, sink, "quantize", done, len(levels))
            paths[level] = (
                f16 if level == "f16" else quantize_gguf(f16, folder / f"model-{level}.gguf", level)
            )
        if "f16" not in levels:
            measured = {"f16": f16, **paths}
        else:
            measured = paths
        self._stage(run.id, sink, "measure")
        texts = _validation_texts(validation)[:_PERPLEXITY_TEXTS]
        reports = [item.to_dict() for item in quantization_report(measured, texts, progress=sink.progress)]
        if "f16" not in levels:
            f16.unlink(missing_ok=True)
        return paths, reports

    def _register(
        self, run: FinetuneInfo, name: str, result: dict[str, Any], report_path: Path, sink: RunSink
    ) -> str:
        if self.registry is None:
            raise UserError("no model registry is configured to register the tuned model in")
        self._stage(run.id, sink, "register")
        artefacts = {kind: Path(path) for kind, path in result["artefacts"].items()}
        artefacts["report"] = report_path
        evaluation = result["evaluation"]
        metrics: dict[str, Any] = {
            "val_loss": evaluation["tuned_loss"],
            "val_perplexity": evaluation["tuned_perplexity"],
            "base_val_loss": evaluation["base_loss"],
            "base_val_perplexity": evaluation["base_perplexity"],
            "val_loss_p_value": evaluation["p_value"],
        }
        for metric, figures in (evaluation.get("metrics") or {}).items():
            metrics[metric] = figures.get("tuned")
            metrics[f"base_{metric}"] = figures.get("base")
        for level in result["quantization"]:
            metrics[f"gguf_{level['level']}_perplexity"] = level.get("perplexity")
            metrics[f"gguf_{level['level']}_tokens_per_second"] = level.get("tokens_per_second")
        version = self.registry.register(
            name,
            artefacts=artefacts,
            base_model=run.base_model,
            dataset=run.dataset,
            dataset_version=run.dataset_version,
            params=run.params,
            metrics=metrics,
            job_id=run.job_id,
            source={"finetune": run.id, **({"name": run.name} if run.name else {})},
            description=f"LoRA fine-tune of {run.base_model} (run {run.name or run.id})",
            author=run.created_by,
        )
        sink.log(f"registered as {version.ref}")
        return version.ref

    # -- resuming and reading --------------------------------------------------------------------

    def prepare_resume(self, reference: str) -> FinetuneInfo:
        """A stopped run to execute again: training continues from its last checkpoint."""
        run = self.repository.get(reference)
        if run.status == "succeeded":
            raise FinetuneConflict(f"fine-tuning run {run.name or run.id} has finished", param="run")
        if run.status in ("running", "queued") and self._job_alive(run.job_id):
            raise FinetuneConflict(f"fine-tuning run {run.name or run.id} is {run.status}", param="run")
        self.repository.update(run.id, status="queued", finished_at=None, error=None)
        return self.repository.get(run.id)

    def _job_alive(self, job_id: str | None) -> bool:
        """Whether the job running a run still runs (a killed process leaves its run 'running')."""
        from llmops.jobs.service import job_state

        return job_id is not None and job_state(self.engine, job_id)[1]

    def get(self, reference: str) -> FinetuneInfo:
        """A run by id or name; one whose job ended without ending it (cancelled before it started, or
        its process killed) is marked so first."""
        run = self.repository.get(reference)
        if run.status in ("queued", "running") and run.job_id is not None and not self._job_alive(run.job_id):
            if self._job_status(run.job_id) == "cancelled":
                self._end(run.id, "cancelled", error="cancelled on request")
            else:
                self._end(run.id, "failed", error="interrupted: the process running it stopped; resume it")
            run = self.repository.get(run.id)
        return run

    def _job_status(self, job_id: str) -> str | None:
        from llmops.jobs.service import job_state

        return job_state(self.engine, job_id)[0]

    def list_runs(self, *, status: str | None = None, limit: int = 50) -> list[FinetuneInfo]:
        return self.repository.list_runs(status=status, limit=limit)

    def loss_curve(self, reference: str) -> str:
        """The run's loss curves as SVG (drawn from the stored points, so it shows a run under way too)."""
        from llmops.training.curves import loss_curve_svg

        run = self.repository.get(reference)
        return loss_curve_svg(run.curves or [], f"fine-tuning {run.name or run.id}")


def _quiet_transformers() -> None:
    """The run reports its own progress: the library's loading bars and deprecation notes would only
    interleave with it (on the CLI's live view, in a server's log)."""
    import warnings

    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")


def _split(
    examples: list[dict[str, Any]], share: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from llmops.datasets.finetune import split_positions

    if len(examples) < 2:
        raise InvalidFinetune("the data file needs at least 2 examples", param="data_file")
    chosen = split_positions(len(examples), 1 - share, seed)
    if not chosen:
        chosen = frozenset({len(examples) - 1})
    train = [example for position, example in enumerate(examples) if position not in chosen]
    validation = [example for position, example in enumerate(examples) if position in chosen]
    return train, validation


def _validation_texts(examples: Sequence[dict[str, Any]]) -> list[str]:
    """Plain texts of the validation examples, for perplexity under llama.cpp."""
    texts = []
    for example in examples:
        if "messages" in example:
            texts.append("\n".join(str(message.get("content") or "") for message in example["messages"]))
        else:
            texts.append(f"{example.get('prompt') or ''}{example.get('completion') or ''}")
    return [text for text in texts if text.strip()]

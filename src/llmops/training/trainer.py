"""LoRA fine-tuning of a causal language model: a plain torch loop over peft's LoRA layers.

What a run does, in order: tokenise the examples (:mod:`.data`, loss on the answers only), load the
base in float32 with LoRA layers on ``params.target_modules`` (the base weights stay frozen), then
take optimizer steps (AdamW, warm-up then the schedule, gradient accumulation, gradients clipped to
norm 1.0). Every ``eval_every`` steps the validation loss (mean negative log-likelihood per answer
token) is measured on the first ``eval_max_examples`` validation examples; after the last step, on
all of them. ``on_step`` hears of every optimizer step.

Checkpoints (every ``checkpoint_every`` steps, at the end of each epoch, at the last step, and when
the run is cancelled) go to ``workdir/checkpoints/step-<N>/``: the adapter (safetensors), optimizer,
scheduler and torch RNG states, and ``state.json`` (step, epoch, position in the data order, curves,
params, a fingerprint of the training data). A checkpoint is written under a temporary name and
renamed, and only the last two are kept. A run started on a ``workdir`` that holds checkpoints
resumes from the latest one when its params and training data are the same (the data order of an
epoch depends only on the seed and the epoch, so it continues exactly where it stopped, with the
same RNG state); otherwise it is a :class:`~llmops.errors.UserError`.

Cancelling: when ``on_step`` raises :class:`~llmops.progress.Cancelled`, the step it reported is
saved as a checkpoint first and the exception then propagates, so the job can be resumed from there.

At the end: ``workdir/adapter/`` (``adapter_model.safetensors`` + ``adapter_config.json``),
``workdir/merged/`` (the base with the adapter merged in, with its tokenizer), ``workdir/curves.json``
and ``workdir/loss.svg``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmops.errors import UserError
from llmops.progress import Cancelled
from llmops.training.base_models import TRAIN_EXTRA_HINT, BaseModel
from llmops.training.curves import loss_curve_svg
from llmops.training.data import (
    TokenizedExample,
    collate,
    epoch_batches,
    pad_token_id,
    tokenize_examples,
    truncation_counts,
)
from llmops.training.evaluation import (
    answer_logits,
    answer_token_losses,
    limit_openmp_spinning,
    torch_threads,
)
from llmops.training.merge import merge_adapter, replace_folder
from llmops.training.params import LoraParams

__all__ = ["StepReport", "TrainOutcome", "latest_checkpoint", "train_lora"]

CHECKPOINTS = "checkpoints"
KEEP_CHECKPOINTS = 2
STATE_FILE = "state.json"
TRAINING_STATE_FILE = "training_state.pt"
SMOOTHING_STEPS = 10  # the outcome's train loss is the mean over this many last steps
_CHECKPOINT_NAME = re.compile(r"^step-(\d+)$")


@dataclass(frozen=True)
class StepReport:
    step: int
    total_steps: int
    epoch: float
    train_loss: float
    val_loss: float | None  # measured at this step, else None
    learning_rate: float
    tokens_per_second: float  # since this session started
    elapsed_seconds: float  # of the whole run, earlier sessions included
    eta_seconds: float | None


@dataclass(frozen=True)
class TrainOutcome:
    adapter_dir: Path
    merged_dir: Path
    steps: int
    epochs: float
    train_loss: float | None  # mean of the last steps' losses
    val_loss: float | None  # on every validation example, after the last step
    tokens_trained: int
    train_seconds: float
    curves: list[dict[str, float]]
    resumed_from: int | None

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["adapter_dir"] = str(self.adapter_dir)
        values["merged_dir"] = str(self.merged_dir)
        return values


def _no_step(report: StepReport) -> None:
    """The default ``on_step``: nothing."""


def _no_log(line: str) -> None:
    """The default ``log``: nothing."""


def train_lora(
    base: BaseModel,
    train: Sequence[dict[str, Any]],
    validation: Sequence[dict[str, Any]],
    params: LoraParams,
    workdir: Path,
    *,
    on_step: Callable[[StepReport], None] = _no_step,
    log: Callable[[str], None] = _no_log,
    threads: int | None = None,
    group_by_length: bool = True,
) -> TrainOutcome:
    """Train a LoRA adapter on ``train`` (resuming from ``workdir``'s checkpoints) and merge it.

    ``threads`` sets torch's CPU threads for the run (default: every core; restored afterwards).
    ``group_by_length`` batches examples of similar length together (less padding; the order stays
    seeded).
    """
    params.validate()
    if not train:
        raise UserError("fine-tuning needs at least one training example")
    _check_train_extra()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base.hf_dir)
    train_set = tokenize_examples(train, tokenizer, params.max_seq_length)
    validation_set = tokenize_examples(validation, tokenizer, params.max_seq_length)
    _log_data(log, train_set, validation_set)
    checkpoint = latest_checkpoint(workdir)
    if checkpoint is not None:  # before the model loads: a mismatch is reported at once
        _check_same_run(checkpoint, params, _fingerprint(train_set))
    with torch_threads(threads):
        pad_id = pad_token_id(tokenizer)
        run = _Run(base, params, train_set, validation_set, pad_id, workdir, log, group_by_length)
        if checkpoint is not None:
            run.restore(checkpoint)
        run.train(on_step)
        return run.finish()


def latest_checkpoint(workdir: Path) -> Path | None:
    """The newest complete checkpoint folder under ``workdir``, if any."""
    found = _checkpoints(workdir)
    return found[-1][1] if found else None


@dataclass
class _Clock:
    """Time and tokens: of the whole run (earlier sessions included) and of this session."""

    run_seconds: float = 0.0
    tokens: int = 0
    session_start: float = field(default_factory=time.monotonic)
    session_steps: int = 0
    session_tokens: int = 0
    session_compute: float = 0.0  # forward, backward and optimizer only

    def elapsed(self) -> float:
        return self.run_seconds + time.monotonic() - self.session_start

    def tokens_per_second(self) -> float:
        return self.session_tokens / self.session_compute if self.session_compute > 0 else 0.0

    def eta(self, remaining_steps: int) -> float | None:
        if self.session_steps == 0:
            return None
        return (time.monotonic() - self.session_start) / self.session_steps * remaining_steps


class _Run:
    """One session of a run: the model, its optimizer and schedule, and where the run stands."""

    def __init__(
        self,
        base: BaseModel,
        params: LoraParams,
        train_set: list[TokenizedExample],
        validation_set: list[TokenizedExample],
        pad_id: int,
        workdir: Path,
        log: Callable[[str], None],
        group_by_length: bool,
    ) -> None:
        import torch

        self.base, self.params, self.workdir, self.log = base, params, workdir, log
        self.train_set, self.validation_set, self.pad_id = train_set, validation_set, pad_id
        self.group_by_length = group_by_length
        self.steps_per_epoch = params.steps_per_epoch(len(train_set))
        self.total_steps = params.total_steps(len(train_set))
        self.fingerprint = _fingerprint(train_set)
        self.step = 0
        self.curves: list[dict[str, float]] = []
        self.clock = _Clock()
        self.resumed_from: int | None = None
        self.saved_step: int | None = None
        self.last_rate = 0.0  # the learning rate of the last step
        self._orders: dict[int, list[list[int]]] = {}
        torch.manual_seed(params.seed)  # the LoRA initialisation and dropout
        self.model = _lora_model(base.hf_dir, params)
        self.trainable = [parameter for parameter in self.model.parameters() if parameter.requires_grad]
        self.optimizer = torch.optim.AdamW(self.trainable, lr=params.learning_rate, weight_decay=0.0)
        schedule = _schedule(params.schedule, params.warmup_steps(self.total_steps), self.total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        log(
            f"LoRA rank {params.rank} on {', '.join(params.target_modules)}: "
            f"{sum(parameter.numel() for parameter in self.trainable):,} trainable parameters; "
            f"{self.total_steps} steps of {params.batch_size} x {params.gradient_accumulation} examples"
        )

    # --- resuming -------------------------------------------------------------------------------

    def restore(self, checkpoint: Path) -> None:
        import torch
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        state = _read_state(checkpoint)
        set_peft_model_state_dict(self.model, load_file(checkpoint / "adapter_model.safetensors"))
        training = torch.load(checkpoint / TRAINING_STATE_FILE, weights_only=True)
        self.optimizer.load_state_dict(training["optimizer"])
        self.scheduler.load_state_dict(training["scheduler"])
        torch.set_rng_state(training["torch_rng"])
        self.step = self.resumed_from = self.saved_step = int(state["step"])
        self.curves = list(state["curves"])
        self.clock = _Clock(run_seconds=float(state["train_seconds"]), tokens=int(state["tokens_trained"]))
        self.log(f"resumed from step {self.step}")

    # --- training -------------------------------------------------------------------------------

    def train(self, on_step: Callable[[StepReport], None]) -> None:
        for stale in (self.workdir / CHECKPOINTS).glob(".step-*.partial"):  # left by a crash mid-save
            shutil.rmtree(stale, ignore_errors=True)
        self.model.train()
        self.clock.session_start = time.monotonic()  # the ETA's average step leaves model loading out
        interval = self.params.evaluation_interval(self.total_steps)
        while self.step < self.total_steps:
            loss = self._optimizer_step()
            last = self.step == self.total_steps
            val_loss = (
                self._validation_loss(None if last else self.params.eval_max_examples)
                if (last or self.step % interval == 0)
                else None
            )
            self._record(loss, val_loss)
            if last or self.step % self.params.checkpoint_every == 0 or self.step % self.steps_per_epoch == 0:
                self._save_checkpoint()
            try:
                on_step(self._report(loss, val_loss))
            except Cancelled:
                if self.saved_step != self.step:
                    self._save_checkpoint()
                self.log(f"cancelled after step {self.step}; resume from checkpoint step-{self.step}")
                raise

    def _optimizer_step(self) -> float:
        """One optimizer step over ``gradient_accumulation`` batches; its mean answer-token loss."""
        import torch

        started = time.monotonic()
        micro_batches = self._micro_batches(self.step)
        answer_tokens = sum(self.train_set[index].answer_tokens for batch in micro_batches for index in batch)
        loss_total = 0.0
        for indices in micro_batches:
            batch = collate([self.train_set[index] for index in indices], self.pad_id)
            logits, targets, _ = answer_logits(self.model, batch)
            loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum") / answer_tokens
            torch.autograd.backward(loss)
            loss_total += float(loss.detach())
            tokens = int(batch["attention_mask"].sum())
            self.clock.tokens += tokens
            self.clock.session_tokens += tokens
        torch.nn.utils.clip_grad_norm_(self.trainable, 1.0)
        self.last_rate = float(self.optimizer.param_groups[0]["lr"])
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.clock.session_steps += 1
        self.clock.session_compute += time.monotonic() - started
        return loss_total

    def _micro_batches(self, step: int) -> list[list[int]]:
        """The batches of optimizer step ``step`` (0-based): its slice of its epoch's seeded order."""
        epoch, position = divmod(step, self.steps_per_epoch)
        if epoch not in self._orders:
            self._orders = {
                epoch: epoch_batches(
                    [len(example.input_ids) for example in self.train_set],
                    self.params.batch_size,
                    seed=self.params.seed,
                    epoch=epoch,
                    group_by_length=self.group_by_length,
                )
            }
        accumulation = self.params.gradient_accumulation
        return self._orders[epoch][position * accumulation : (position + 1) * accumulation]

    def _validation_loss(self, limit: int | None) -> float | None:
        chosen = self.validation_set if limit is None else self.validation_set[:limit]
        if not chosen:
            return None
        pairs = answer_token_losses(self.model, chosen, pad_id=self.pad_id, batch_size=self.params.batch_size)
        loss = math.fsum(total for total, _ in pairs) / max(1, sum(count for _, count in pairs))
        self.log(f"step {self.step}: validation loss {loss:.4f} on {len(chosen)} examples")
        return loss

    def _record(self, loss: float, val_loss: float | None) -> None:
        point = {
            "step": float(self.step),
            "train_loss": loss,
            "learning_rate": self.last_rate,
            "tokens_per_second": self.clock.tokens_per_second(),
        }
        if val_loss is not None:
            point["val_loss"] = val_loss
        self.curves.append(point)

    def _report(self, loss: float, val_loss: float | None) -> StepReport:
        return StepReport(
            step=self.step,
            total_steps=self.total_steps,
            epoch=self.step / self.steps_per_epoch,
            train_loss=loss,
            val_loss=val_loss,
            learning_rate=self.last_rate,
            tokens_per_second=self.clock.tokens_per_second(),
            elapsed_seconds=self.clock.elapsed(),
            eta_seconds=self.clock.eta(self.total_steps - self.step),
        )

    # --- checkpoints ----------------------------------------------------------------------------

    def _save_checkpoint(self) -> None:
        import torch

        folder = self.workdir / CHECKPOINTS
        folder.mkdir(parents=True, exist_ok=True)
        staging = folder / f".step-{self.step}.{uuid.uuid4().hex}.partial"
        try:
            self.model.save_pretrained(staging, safe_serialization=True)
            torch.save(
                {
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                },
                staging / TRAINING_STATE_FILE,
            )
            (staging / STATE_FILE).write_text(json.dumps(self._state(), indent=1), encoding="utf-8")
            replace_folder(staging, folder / f"step-{self.step}")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self.saved_step = self.step
        for _, old in _checkpoints(self.workdir)[:-KEEP_CHECKPOINTS]:
            shutil.rmtree(old, ignore_errors=True)

    def _state(self) -> dict[str, Any]:
        epoch, position = divmod(self.step, self.steps_per_epoch)
        return {
            "step": self.step,
            "total_steps": self.total_steps,
            "epoch": self.step / self.steps_per_epoch,
            "data_position": {"epoch": epoch, "step_in_epoch": position},
            "curves": self.curves,
            "params": self.params.to_dict(),
            "data_fingerprint": self.fingerprint,
            "train_seconds": self.clock.elapsed(),
            "tokens_trained": self.clock.tokens,
        }

    # --- the end --------------------------------------------------------------------------------

    def finish(self) -> TrainOutcome:
        adapter_dir = self.workdir / "adapter"
        staging = self.workdir / f".adapter.{uuid.uuid4().hex}.partial"
        try:
            self.model.save_pretrained(staging, safe_serialization=True)
            replace_folder(staging, adapter_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        train_seconds = self.clock.elapsed()
        del self.model, self.optimizer, self.trainable  # the merge loads the base again
        merged_dir = merge_adapter(self.base.hf_dir, adapter_dir, self.workdir / "merged")
        (self.workdir / "curves.json").write_text(json.dumps(self.curves, indent=1), encoding="utf-8")
        title = f"LoRA on {self.base.name}: loss per step"
        (self.workdir / "loss.svg").write_text(loss_curve_svg(self.curves, title), encoding="utf-8")
        recent = [point["train_loss"] for point in self.curves[-SMOOTHING_STEPS:]]
        return TrainOutcome(
            adapter_dir=adapter_dir,
            merged_dir=merged_dir,
            steps=self.step,
            epochs=self.step / self.steps_per_epoch,
            train_loss=math.fsum(recent) / len(recent) if recent else None,
            val_loss=self.curves[-1].get("val_loss") if self.curves else None,
            tokens_trained=self.clock.tokens,
            train_seconds=train_seconds,
            curves=self.curves,
            resumed_from=self.resumed_from,
        )


def _check_train_extra() -> None:
    limit_openmp_spinning()
    try:
        import peft  # noqa: F401 - imported here so that a missing extra is one line
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise UserError(TRAIN_EXTRA_HINT) from exc


def _lora_model(hf_dir: Path, params: LoraParams) -> Any:
    """The base model in float32 with LoRA layers: only the LoRA weights require gradients."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    model.config.use_cache = False
    config = LoraConfig(
        r=params.rank,
        lora_alpha=params.alpha,  # type: ignore[arg-type]  # annotated int; a float scales alike
        lora_dropout=params.dropout,
        target_modules=list(params.target_modules),
        task_type=TaskType.CAUSAL_LM,
        bias="none",
    )
    try:
        return get_peft_model(model, config)
    except ValueError as exc:  # peft names the modules it did not find
        raise UserError(f"target_modules: {exc}".splitlines()[0], param="target_modules") from exc


def _schedule(kind: str, warmup: int, total: int) -> Callable[[int], float]:
    """The learning-rate factor of optimizer step ``step`` (0-based): a linear warm-up from
    1/(warmup+1), then constant, linear or cosine decay that reaches 0 just after the last step."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if kind == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        if kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return max(0.0, 1.0 - progress)

    return factor


def _read_state(checkpoint: Path) -> dict[str, Any]:
    try:
        state = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(
            f"checkpoint {checkpoint} cannot be read ({exc}); delete it to resume from the one before"
        ) from exc
    if not isinstance(state, dict):
        raise UserError(f"checkpoint {checkpoint}: {STATE_FILE} is not an object")
    return state


def _check_same_run(checkpoint: Path, params: LoraParams, fingerprint: str) -> None:
    """A checkpoint resumes only the run that wrote it: same params, same training data."""
    state = _read_state(checkpoint)
    where = f"{checkpoint.parent.parent} holds checkpoints of another run"
    advice = f"use another workdir or delete {checkpoint.parent}"
    theirs, ours = state.get("params", {}), params.to_dict()
    differing = sorted(key for key in set(theirs) | set(ours) if theirs.get(key) != ours.get(key))
    if differing:
        key = differing[0]
        raise UserError(f"{where} ({key} {theirs.get(key)!r}, now {ours.get(key)!r}); {advice}", param=key)
    if state.get("data_fingerprint") != fingerprint:
        raise UserError(f"{where} (other training data); {advice}")


def _checkpoints(workdir: Path) -> list[tuple[int, Path]]:
    folder = workdir / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = []
    for child in folder.iterdir():
        match = _CHECKPOINT_NAME.match(child.name)
        if match and (child / STATE_FILE).is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


def _fingerprint(examples: Sequence[TokenizedExample]) -> str:
    digest = hashlib.sha256()
    for example in examples:
        digest.update(json.dumps([example.input_ids, example.labels]).encode())
    return digest.hexdigest()


def _log_data(
    log: Callable[[str], None], train_set: list[TokenizedExample], validation_set: list[TokenizedExample]
) -> None:
    for label, examples in (("training", train_set), ("validation", validation_set)):
        if not examples:
            continue
        counts = truncation_counts(examples)
        tokens = sum(len(example.input_ids) for example in examples)
        log(
            f"{label}: {len(examples)} examples, {tokens:,} tokens; prompt truncated in "
            f"{counts.prompt_truncated}, answer truncated in {counts.answer_truncated}"
        )

"""The hyper-parameters of a LoRA fine-tuning run, checked before any model loads.

A run's parameters are stored with its checkpoints (``to_dict``) and compared on resume, so a
resumed run is the same run; ``from_dict`` reads them back (from a job row, a REST body, a
checkpoint) and refuses keys it does not know, which catches typos in a request. Every mistake is a
:class:`~llmops.errors.UserError` whose one line names the parameter (``param`` is set too).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from llmops.errors import UserError

__all__ = ["SCHEDULES", "LoraParams"]

SCHEDULES = ("linear", "cosine", "constant")
EVALUATIONS_PER_RUN = 10  # validation passes in a run when eval_every is not given


@dataclass(frozen=True)
class LoraParams:
    """What a LoRA run is asked to do; see the field comments for the meaning of each."""

    rank: int = 8  # r: the rank of the low-rank update
    alpha: float = 16.0  # the update is scaled by alpha / rank
    dropout: float = 0.05  # dropout on the LoRA input
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    epochs: float = 1.0  # passes over the training examples (fractions allowed)
    max_steps: int | None = None  # optimizer steps; overrides epochs when given
    learning_rate: float = 2e-4
    schedule: str = "linear"  # linear | cosine | constant, after a linear warm-up
    warmup_ratio: float = 0.03  # share of the steps spent warming up
    batch_size: int = 8  # examples per forward pass
    gradient_accumulation: int = 1  # forward passes per optimizer step
    max_seq_length: int = 512  # tokens per example (prompt truncated from the left)
    seed: int = 0
    eval_every: int | None = None  # steps between validation passes (None: about 10 per run)
    checkpoint_every: int = 50  # steps between checkpoints (and one at each epoch's end)
    eval_max_examples: int = 200  # validation examples scored during training; the final pass scores all

    def validate(self) -> LoraParams:
        """Raise :class:`UserError` naming the first parameter out of range; return self."""
        _whole("rank", self.rank, 1)
        _number("alpha", self.alpha, above=0.0)
        _number("dropout", self.dropout, at_least=0.0)
        if self.dropout >= 1.0:
            raise UserError(f"dropout must be below 1, got {self.dropout}", param="dropout")
        if isinstance(self.target_modules, str) or not self.target_modules:
            raise UserError(
                "target_modules must name at least one module, e.g. q_proj,v_proj", param="target_modules"
            )
        for name in self.target_modules:
            if not isinstance(name, str) or not name.strip():
                raise UserError(f"target_modules: {name!r} is not a module name", param="target_modules")
        _number("epochs", self.epochs, above=0.0)
        if self.max_steps is not None:
            _whole("max_steps", self.max_steps, 1)
        _number("learning_rate", self.learning_rate, above=0.0)
        if self.schedule not in SCHEDULES:
            raise UserError(
                f"unknown schedule {self.schedule!r}; use one of {', '.join(SCHEDULES)}", param="schedule"
            )
        _number("warmup_ratio", self.warmup_ratio, at_least=0.0)
        if self.warmup_ratio >= 1.0:
            raise UserError(f"warmup_ratio must be below 1, got {self.warmup_ratio}", param="warmup_ratio")
        _whole("batch_size", self.batch_size, 1)
        _whole("gradient_accumulation", self.gradient_accumulation, 1)
        _whole("max_seq_length", self.max_seq_length, 8)
        _whole("seed", self.seed, 0)
        if self.eval_every is not None:
            _whole("eval_every", self.eval_every, 1)
        _whole("checkpoint_every", self.checkpoint_every, 1)
        _whole("eval_max_examples", self.eval_max_examples, 1)
        return self

    @property
    def examples_per_step(self) -> int:
        return self.batch_size * self.gradient_accumulation

    def steps_per_epoch(self, train_examples: int) -> int:
        """Optimizer steps in one pass over ``train_examples`` (a last partial step counts)."""
        return max(1, math.ceil(train_examples / self.examples_per_step))

    def total_steps(self, train_examples: int) -> int:
        """The run's optimizer steps: ``max_steps``, else ``epochs`` passes rounded up."""
        if self.max_steps is not None:
            return self.max_steps
        return max(1, math.ceil(self.epochs * self.steps_per_epoch(train_examples)))

    def warmup_steps(self, total_steps: int) -> int:
        return math.ceil(self.warmup_ratio * total_steps)

    def evaluation_interval(self, total_steps: int) -> int:
        """Steps between validation passes: ``eval_every``, else about 10 passes per run."""
        if self.eval_every is not None:
            return self.eval_every
        return max(1, math.ceil(total_steps / EVALUATIONS_PER_RUN))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (``target_modules`` as a list)."""
        values = asdict(self)
        values["target_modules"] = list(self.target_modules)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> LoraParams:
        """Parameters from ``values`` (missing keys take their defaults), validated.

        Unknown keys are a :class:`UserError` naming them. ``target_modules`` may be a list or a
        comma-separated string.
        """
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(
                f"unknown fine-tuning parameter {unknown[0]!r}; known: {', '.join(sorted(known))}",
                param=unknown[0],
            )
        given = dict(values)
        modules = given.get("target_modules")
        if isinstance(modules, str):
            given["target_modules"] = tuple(part.strip() for part in modules.split(",") if part.strip())
        elif isinstance(modules, list | tuple):
            given["target_modules"] = tuple(modules)
        elif "target_modules" in given:
            raise UserError("target_modules must be a list of module names", param="target_modules")
        return cls(**given).validate()


def _whole(name: str, value: object, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{name} must be a whole number, got {value!r}", param=name)
    if value < least:
        raise UserError(f"{name} must be at least {least}, got {value}", param=name)


def _number(name: str, value: object, *, above: float | None = None, at_least: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UserError(f"{name} must be a number, got {value!r}", param=name)
    if above is not None and value <= above:
        raise UserError(f"{name} must be above {above:g}, got {value}", param=name)
    if at_least is not None and value < at_least:
        raise UserError(f"{name} must be at least {at_least:g}, got {value}", param=name)

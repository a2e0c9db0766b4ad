"""LoRA training on the real SmolLM2-135M, in tiny runs (4 steps of 2 short examples).

One uninterrupted run is shared by the module; a second run is cancelled after step 2 by its
``on_step`` and resumed, and must end where the uninterrupted one did. The tuned model of the
shared run is then compared with its base (it learnt the answer style, so its loss is lower).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from llmops.errors import UserError
from llmops.progress import Cancelled
from llmops.training.base_models import BaseModel
from llmops.training.evaluation import compare_base_and_tuned
from llmops.training.params import LoraParams
from llmops.training.trainer import StepReport, TrainOutcome, latest_checkpoint, train_lora

THREADS = 1  # two threads on two busy cores are several times slower than one
PARAMS = LoraParams(
    rank=4,
    max_steps=4,
    batch_size=2,
    max_seq_length=64,
    learning_rate=2e-3,
    warmup_ratio=0.25,
    eval_every=2,
    checkpoint_every=1,
    seed=7,
)


def _example(index: int) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": f"How many legs do {index} cats have?"},
            {"role": "assistant", "content": f"ZEBRA-7 says: {4 * index} legs."},
        ]
    }


TRAIN = [_example(index) for index in range(1, 9)]
VALIDATION = [_example(index) for index in range(20, 24)]


@dataclass
class Recorder:
    """Collects what the trainer reports; cancels after ``cancel_after`` steps when set."""

    cancel_after: int | None = None
    reports: list[StepReport] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def step(self, report: StepReport) -> None:
        self.reports.append(report)
        if report.step == self.cancel_after:
            raise Cancelled

    def log(self, line: str) -> None:
        self.lines.append(line)


@pytest.fixture(scope="module")
def base(smollm2_hf_dir: Path) -> BaseModel:
    return BaseModel("smollm2", smollm2_hf_dir, None, "LlamaForCausalLM")


@pytest.fixture(scope="module")
def reference(base: BaseModel, tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainOutcome, Recorder]:
    recorder = Recorder()
    workdir = tmp_path_factory.mktemp("reference")
    outcome = train_lora(
        base, TRAIN, VALIDATION, PARAMS, workdir, on_step=recorder.step, log=recorder.log, threads=THREADS
    )
    return outcome, recorder


def test_a_run_reports_every_step_with_losses_rate_and_eta(reference: tuple[TrainOutcome, Recorder]) -> None:
    outcome, recorder = reference
    assert [report.step for report in recorder.reports] == [1, 2, 3, 4]
    assert all(report.total_steps == 4 for report in recorder.reports)
    assert [report.epoch for report in recorder.reports] == [0.25, 0.5, 0.75, 1.0]
    assert [report.val_loss is not None for report in recorder.reports] == [False, True, False, True]
    # warm-up of one step from half the rate, then linear decay
    assert [report.learning_rate for report in recorder.reports] == pytest.approx(
        [1e-3, 2e-3, 4e-3 / 3, 2e-3 / 3]
    )
    assert all(report.tokens_per_second > 0 for report in recorder.reports)
    assert recorder.reports[-1].eta_seconds == 0
    assert recorder.reports[0].elapsed_seconds <= recorder.reports[-1].elapsed_seconds
    assert outcome.steps == 4
    assert outcome.epochs == 1.0
    assert outcome.resumed_from is None
    assert outcome.tokens_trained > 8 * 20


def test_the_model_learns_the_answer_style(reference: tuple[TrainOutcome, Recorder]) -> None:
    outcome, recorder = reference
    losses = [report.train_loss for report in recorder.reports]
    assert losses[-1] < losses[0] * 0.8
    val_losses = [point["val_loss"] for point in outcome.curves if "val_loss" in point]
    assert val_losses[-1] < val_losses[0]
    assert outcome.val_loss == val_losses[-1]
    assert outcome.train_loss == pytest.approx(sum(losses) / 4)  # the mean of the last (here: all 4) steps


def test_artefacts_are_the_adapter_the_merged_model_curves_and_svg(
    reference: tuple[TrainOutcome, Recorder],
) -> None:
    outcome, _ = reference
    workdir = outcome.adapter_dir.parent
    assert (outcome.adapter_dir / "adapter_model.safetensors").is_file()
    adapter_config = json.loads((outcome.adapter_dir / "adapter_config.json").read_text())
    assert adapter_config["r"] == 4
    assert sorted(adapter_config["target_modules"]) == ["k_proj", "o_proj", "q_proj", "v_proj"]
    assert (outcome.merged_dir / "model.safetensors").is_file()
    assert "adapter_config.json" not in {path.name for path in outcome.merged_dir.iterdir()}
    assert "<|im_start|>" in (outcome.merged_dir / "chat_template.jinja").read_text()
    assert json.loads((workdir / "curves.json").read_text()) == outcome.curves
    assert [point["step"] for point in outcome.curves] == [1.0, 2.0, 3.0, 4.0]
    ET.fromstring((workdir / "loss.svg").read_text())
    assert sorted(path.name for path in (workdir / "checkpoints").iterdir()) == ["step-3", "step-4"]
    assert outcome.to_dict()["merged_dir"] == str(outcome.merged_dir)


def test_a_cancelled_run_keeps_a_checkpoint_and_resumes_to_the_same_end(
    base: BaseModel, reference: tuple[TrainOutcome, Recorder], tmp_path: Path
) -> None:
    params = replace(PARAMS, checkpoint_every=50)  # the only checkpoints: at cancel, epoch end
    first = Recorder(cancel_after=2)
    with pytest.raises(Cancelled):
        train_lora(
            base, TRAIN, VALIDATION, params, tmp_path, on_step=first.step, log=first.log, threads=THREADS
        )
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step-2"
    assert not (tmp_path / "adapter").exists()
    state = json.loads((tmp_path / "checkpoints" / "step-2" / "state.json").read_text())
    assert state["step"] == 2
    assert state["data_position"] == {"epoch": 0, "step_in_epoch": 2}

    second = Recorder()
    outcome = train_lora(
        base, TRAIN, VALIDATION, params, tmp_path, on_step=second.step, log=second.log, threads=THREADS
    )
    assert "resumed from step 2" in second.lines
    assert [report.step for report in second.reports] == [3, 4]
    assert outcome.resumed_from == 2
    assert outcome.steps == 4
    expected, expected_steps = reference
    assert [point["step"] for point in outcome.curves] == [1.0, 2.0, 3.0, 4.0]
    assert outcome.val_loss == pytest.approx(expected.val_loss, abs=1e-4)
    assert [report.train_loss for report in second.reports] == pytest.approx(
        [report.train_loss for report in expected_steps.reports[2:]], abs=1e-4
    )
    assert outcome.tokens_trained == expected.tokens_trained


def test_resuming_with_other_params_or_data_is_refused(
    base: BaseModel, reference: tuple[TrainOutcome, Recorder]
) -> None:
    workdir = reference[0].adapter_dir.parent
    with pytest.raises(UserError, match=r"another run \(rank 4, now 8\)") as raised:
        train_lora(base, TRAIN, VALIDATION, replace(PARAMS, rank=8), workdir)
    assert raised.value.param == "rank"
    with pytest.raises(UserError, match="other training data"):
        train_lora(base, TRAIN[:-1], VALIDATION, PARAMS, workdir)


def test_bad_inputs_are_one_line_errors(base: BaseModel, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="at least one training example"):
        train_lora(base, [], VALIDATION, PARAMS, tmp_path)
    with pytest.raises(UserError, match="^example 0: "):
        train_lora(base, [{"prompt": "no completion"}], VALIDATION, PARAMS, tmp_path)
    with pytest.raises(UserError, match="target_modules") as raised:
        train_lora(base, TRAIN, VALIDATION, replace(PARAMS, target_modules=("no_such_proj",)), tmp_path)
    assert raised.value.param == "target_modules"


def test_the_tuned_model_scores_lower_than_its_base(
    base: BaseModel, reference: tuple[TrainOutcome, Recorder]
) -> None:
    outcome, _ = reference
    result = compare_base_and_tuned(
        base.hf_dir,
        outcome.merged_dir,
        VALIDATION,
        metrics=["contains:ZEBRA-7"],
        max_new_tokens=12,
        threads=THREADS,
    )
    assert result.examples == 4
    assert result.tuned_loss < result.base_loss
    assert result.loss_difference == pytest.approx(result.tuned_loss - result.base_loss)
    assert result.interval[1] < 0
    assert result.p_value == 1 / 16  # every example better: the one extreme pattern of 2^4 sign flips
    assert not result.significant  # four examples cannot reach 0.05 with a sign-flip test
    contains = result.metrics["contains:ZEBRA-7"]
    assert contains["base"] == 0.0
    assert contains["tuned"] is not None
    assert contains["difference"] == contains["tuned"]


def test_gradient_accumulation_trains_as_the_larger_batch_would(base: BaseModel, tmp_path: Path) -> None:
    """Two batches of 2 accumulated make the same steps as one batch of 4 (the loss is weighted by
    answer tokens over the whole step; without length grouping both see the same examples per step)."""
    losses = {}
    for batch_size, accumulation in ((4, 1), (2, 2)):
        recorder = Recorder()
        params = replace(
            PARAMS, max_steps=2, batch_size=batch_size, gradient_accumulation=accumulation, dropout=0.0
        )
        train_lora(
            base,
            TRAIN,
            VALIDATION[:1],
            params,
            tmp_path / f"{batch_size}x{accumulation}",
            on_step=recorder.step,
            threads=THREADS,
            group_by_length=False,
        )
        losses[accumulation] = [report.train_loss for report in recorder.reports]
    assert losses[2] == pytest.approx(losses[1], abs=1e-5)
    assert losses[1][1] < losses[1][0]

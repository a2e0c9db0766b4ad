"""LoRA hyper-parameters: defaults, one-line errors naming the parameter, round trips, step counts."""

from __future__ import annotations

from typing import Any

import pytest

from llmops.errors import UserError
from llmops.training.params import LoraParams


def test_defaults_are_valid_and_match_the_documented_values() -> None:
    params = LoraParams().validate()
    assert (params.rank, params.alpha, params.dropout) == (8, 16.0, 0.05)
    assert params.target_modules == ("q_proj", "k_proj", "v_proj", "o_proj")
    assert (params.epochs, params.max_steps, params.learning_rate, params.schedule) == (
        1.0,
        None,
        2e-4,
        "linear",
    )
    assert (params.batch_size, params.gradient_accumulation, params.max_seq_length) == (8, 1, 512)
    assert (params.checkpoint_every, params.eval_max_examples, params.eval_every) == (50, 200, None)


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"rank": 0}, "rank"),
        ({"rank": 2.5}, "rank"),
        ({"alpha": 0}, "alpha"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"target_modules": ()}, "target_modules"),
        ({"target_modules": ("q_proj", "")}, "target_modules"),
        ({"epochs": 0}, "epochs"),
        ({"max_steps": 0}, "max_steps"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"schedule": "exponential"}, "schedule"),
        ({"warmup_ratio": 1.0}, "warmup_ratio"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
        ({"gradient_accumulation": 0}, "gradient_accumulation"),
        ({"max_seq_length": 4}, "max_seq_length"),
        ({"seed": -1}, "seed"),
        ({"eval_every": 0}, "eval_every"),
        ({"checkpoint_every": 0}, "checkpoint_every"),
        ({"eval_max_examples": 0}, "eval_max_examples"),
    ],
)
def test_each_out_of_range_value_is_a_one_line_error_naming_it(change: dict[str, Any], param: str) -> None:
    with pytest.raises(UserError) as raised:
        LoraParams(**change).validate()
    assert raised.value.param == param
    assert param in raised.value.message
    assert "\n" not in raised.value.message


def test_unknown_schedule_lists_the_known_ones() -> None:
    with pytest.raises(UserError, match="linear, cosine, constant"):
        LoraParams(schedule="step").validate()


def test_round_trip_through_a_json_ready_dict() -> None:
    params = LoraParams(rank=4, target_modules=("q_proj", "v_proj"), max_steps=10, schedule="cosine")
    values = params.to_dict()
    assert values["target_modules"] == ["q_proj", "v_proj"]
    assert LoraParams.from_dict(values) == params


def test_from_dict_fills_defaults_and_reads_modules_from_a_comma_list() -> None:
    params = LoraParams.from_dict({"rank": 16, "target_modules": "q_proj, v_proj"})
    assert params == LoraParams(rank=16, target_modules=("q_proj", "v_proj"))


def test_from_dict_refuses_unknown_keys_naming_them() -> None:
    with pytest.raises(UserError, match="'lr'") as raised:
        LoraParams.from_dict({"lr": 0.1})
    assert raised.value.param == "lr"


def test_from_dict_validates() -> None:
    with pytest.raises(UserError, match="rank"):
        LoraParams.from_dict({"rank": -1})


def test_steps_from_epochs_round_up_and_max_steps_overrides() -> None:
    params = LoraParams(batch_size=8, gradient_accumulation=2)
    assert params.steps_per_epoch(1000) == 63  # 1000 / 16 = 62.5
    assert params.total_steps(1000) == 63
    assert LoraParams(batch_size=8, epochs=2.5).total_steps(1000) == 313  # 2.5 * 125 = 312.5
    assert LoraParams(batch_size=8, max_steps=7, epochs=3).total_steps(1000) == 7
    assert LoraParams(batch_size=8).total_steps(3) == 1


def test_about_ten_evaluations_per_run_unless_eval_every_is_given() -> None:
    assert LoraParams().evaluation_interval(125) == 13
    assert LoraParams().evaluation_interval(4) == 1
    assert LoraParams(eval_every=5).evaluation_interval(125) == 5
    assert LoraParams(warmup_ratio=0.03).warmup_steps(125) == 4

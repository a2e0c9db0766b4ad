"""Before/after evaluation on the real SmolLM2: answer-token losses, the paired test, text metrics.

The base is compared with itself (every difference is 0), which pins the plumbing: equal losses, a
p-value of 1, and metrics scored on greedy answers that the test generates on its own for two of
the four examples. That the tuned model of a real run scores lower is tested in test_trainer.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmops.errors import UserError
from llmops.training.data import pad_token_id, tokenize_examples
from llmops.training.evaluation import answer_token_losses, compare_base_and_tuned

QUESTIONS = ["What is the capital of France?", "Name a colour.", "What is 2 + 3?", "Say hi."]


def _chat(question: str, answer: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


@pytest.fixture(scope="module")
def model_and_tokenizer(smollm2_hf_dir: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)  # robust timing on a busy machine; scoring restores its own setting
    model = AutoModelForCausalLM.from_pretrained(smollm2_hf_dir, dtype=torch.float32)
    model.eval()
    return model, AutoTokenizer.from_pretrained(smollm2_hf_dir)


def _greedy(model: Any, tokenizer: Any, question: str, max_new_tokens: int) -> str:
    import torch

    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False
    )
    ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        output = model.generate(input_ids=ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=2)
    return str(tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True)).strip()


def test_answer_token_losses_in_padded_batches_equal_the_models_own_loss(
    model_and_tokenizer: tuple[Any, Any],
) -> None:
    import torch

    model, tokenizer = model_and_tokenizer
    examples = [_chat(question, f"ZEBRA answer number {index}.") for index, question in enumerate(QUESTIONS)]
    tokenized = tokenize_examples(examples, tokenizer, 128)
    pairs = answer_token_losses(model, tokenized, pad_id=pad_token_id(tokenizer), batch_size=3)
    for example, (total, count) in zip(tokenized, pairs, strict=True):
        with torch.no_grad():
            own = model(
                input_ids=torch.tensor([example.input_ids]), labels=torch.tensor([example.labels])
            ).loss
        assert count == example.answer_tokens
        assert total / count == pytest.approx(float(own), rel=1e-4)


def test_a_model_compared_with_itself_differs_by_nothing(
    model_and_tokenizer: tuple[Any, Any], smollm2_hf_dir: Path
) -> None:
    model, tokenizer = model_and_tokenizer
    known = {question: _greedy(model, tokenizer, question, 8) for question in QUESTIONS[:2]}
    validation = [_chat(question, known.get(question, "ZEBRA never says this")) for question in QUESTIONS]
    stages: set[str] = set()
    result = compare_base_and_tuned(
        smollm2_hf_dir,
        smollm2_hf_dir,
        validation,
        metrics=["exact_match", "contains:ZEBRA"],
        max_new_tokens=8,
        progress=lambda stage, done, total: stages.add(stage),
        threads=1,
    )
    assert result.examples == 4
    assert result.base_loss == result.tuned_loss
    assert result.loss_difference == 0.0
    assert result.interval == (0.0, 0.0)
    assert result.p_value == 1.0
    assert not result.significant
    assert result.base_perplexity == pytest.approx(2.718281828**result.base_loss)
    assert result.metrics["exact_match"] == {"base": 0.5, "tuned": 0.5, "difference": 0.0, "p_value": 1.0}
    assert result.metrics["contains:ZEBRA"]["base"] == 0.0
    assert stages == {
        "scoring the base model",
        "scoring the tuned model",
        "generating with the base model",
        "generating with the tuned model",
    }
    assert result.to_dict()["interval"] == [0.0, 0.0]


@pytest.mark.parametrize(
    ("metric", "reason"),
    [
        ("judge:relevance", "model_caller"),
        ("embedding_similarity", "embedder"),
        ("latency", "a gateway call"),
    ],
)
def test_metrics_that_need_more_than_texts_are_refused_by_name(
    smollm2_hf_dir: Path, metric: str, reason: str
) -> None:
    with pytest.raises(UserError, match=f"metric '{metric}' cannot score") as raised:
        compare_base_and_tuned(smollm2_hf_dir, smollm2_hf_dir, [_chat("q", "a")], metrics=[metric])
    assert reason in raised.value.message
    assert raised.value.param == "metrics"


def test_unknown_metrics_and_empty_validation_are_errors(smollm2_hf_dir: Path) -> None:
    with pytest.raises(UserError, match="unknown metric 'exact_matc'"):
        compare_base_and_tuned(smollm2_hf_dir, smollm2_hf_dir, [_chat("q", "a")], metrics=["exact_matc"])
    with pytest.raises(UserError, match="at least one validation example"):
        compare_base_and_tuned(smollm2_hf_dir, smollm2_hf_dir, [])

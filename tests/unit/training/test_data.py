"""Training data with SmolLM2's real tokenizer: answer-only labels, truncation, shapes, JSONL, batches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmops.errors import UserError
from llmops.training.data import (
    IGNORE_INDEX,
    TokenizedExample,
    collate,
    epoch_batches,
    pad_token_id,
    read_jsonl,
    tokenize_examples,
    truncation_counts,
)

QUESTION = "What colour is the sky?"
ANSWER = "ZEBRA: blue, on a clear day."


@pytest.fixture(scope="module")
def tokenizer(smollm2_hf_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_hf_dir)


def _chat(question: str = QUESTION, answer: str = ANSWER) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def _answer_text(example: TokenizedExample, tokenizer: Any) -> str:
    return str(tokenizer.decode([label for label in example.labels if label != IGNORE_INDEX]))


def test_a_chat_example_is_the_chat_template_with_loss_on_the_answer_and_its_end_of_turn(
    tokenizer: Any,
) -> None:
    [example] = tokenize_examples([_chat()], tokenizer, 512)
    assert len(example.input_ids) == len(example.labels)
    assert _answer_text(example, tokenizer) == ANSWER + "<|im_end|>"
    whole = tokenizer.apply_chat_template(_chat()["messages"], tokenize=False)
    assert tokenizer.decode(example.input_ids) == whole.rstrip()
    answer_start = next(index for index, label in enumerate(example.labels) if label != IGNORE_INDEX)
    assert tokenizer.decode(example.input_ids[:answer_start]).endswith("<|im_start|>assistant\n")
    assert example.labels[answer_start:] == example.input_ids[answer_start:]
    assert not example.prompt_truncated
    assert not example.answer_truncated


def test_the_prompt_is_tokenised_as_the_model_sees_it_when_asked_to_answer(tokenizer: Any) -> None:
    [example] = tokenize_examples([_chat()], tokenizer, 512)
    prompt = tokenizer.apply_chat_template(
        _chat()["messages"][:1], add_generation_prompt=True, tokenize=False
    )
    expected = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert example.input_ids[: len(expected)] == expected
    assert all(label == IGNORE_INDEX for label in example.labels[: len(expected)])
    assert example.answer_tokens == len(example.input_ids) - len(expected)


def test_only_the_last_assistant_turn_counts(tokenizer: Any) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "EARLIER answer"},
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": ANSWER},
    ]
    [example] = tokenize_examples([{"messages": messages}], tokenizer, 512)
    assert _answer_text(example, tokenizer) == ANSWER + "<|im_end|>"
    assert "EARLIER answer" in tokenizer.decode(example.input_ids)


def test_prompt_completion_counts_the_completion_and_end_of_sequence(tokenizer: Any) -> None:
    [example] = tokenize_examples([{"prompt": "Q: 2+2?\nA:", "completion": " ZEBRA 4"}], tokenizer, 512)
    assert _answer_text(example, tokenizer) == " ZEBRA 4" + tokenizer.eos_token
    assert tokenizer.decode(example.input_ids).startswith("Q: 2+2?\nA:")


def test_a_long_prompt_loses_its_start_and_the_answer_stays_whole(tokenizer: Any) -> None:
    long_question = "Please consider this. " * 40 + QUESTION
    examples = tokenize_examples([_chat(long_question), _chat()], tokenizer, 48)
    long, short = examples
    assert len(long.input_ids) == 48
    assert long.prompt_truncated
    assert not long.answer_truncated
    assert _answer_text(long, tokenizer) == ANSWER + "<|im_end|>"
    assert tokenizer.decode(long.input_ids).endswith(
        QUESTION + "<|im_end|>\n<|im_start|>assistant\n" + ANSWER + "<|im_end|>"
    )
    assert truncation_counts(examples).to_dict() == {"prompt_truncated": 1, "answer_truncated": 0}
    assert not short.prompt_truncated


def test_an_answer_longer_than_the_limit_keeps_one_prompt_token_and_loses_its_end(tokenizer: Any) -> None:
    [example] = tokenize_examples([_chat(answer="ZEBRA " + "word " * 100)], tokenizer, 32)
    assert len(example.input_ids) == 32
    assert example.answer_truncated
    assert example.labels[0] == IGNORE_INDEX
    assert example.answer_tokens == 31
    assert _answer_text(example, tokenizer).startswith("ZEBRA word")
    assert truncation_counts([example]).answer_truncated == 1


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ("not an object", "expected an object"),
        ({"messages": []}, "non-empty list"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "last message must be the assistant"),
        ({"messages": [{"role": "assistant", "content": "alone"}]}, "no turn before"),
        ({"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]}, "message 0"),
        ({"prompt": "p"}, "'completion'"),
        ({"text": "neither shape"}, "'messages'"),
    ],
)
def test_a_malformed_example_is_an_error_naming_its_index(tokenizer: Any, bad: Any, fragment: str) -> None:
    with pytest.raises(UserError, match="^example 1: ") as raised:
        tokenize_examples([_chat(), bad], tokenizer, 64)
    assert fragment in raised.value.message


def test_read_jsonl_reads_objects_and_names_the_bad_line(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text('{"prompt": "a", "completion": "b"}\n\n{"messages": []}\n')
    assert read_jsonl(good) == [{"prompt": "a", "completion": "b"}, {"messages": []}]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a"}\n{"prompt": \n')
    with pytest.raises(UserError, match="bad.jsonl: line 2 is not valid JSON"):
        read_jsonl(bad)
    bad.write_text("[1, 2]\n")
    with pytest.raises(UserError, match="line 1 is not a JSON object"):
        read_jsonl(bad)
    with pytest.raises(UserError, match="file not found"):
        read_jsonl(tmp_path / "missing.jsonl")


def test_epoch_batches_are_seeded_complete_and_differ_between_epochs() -> None:
    lengths = [5 + (index * 7) % 40 for index in range(50)]
    first = epoch_batches(lengths, 4, seed=3, epoch=0)
    assert first == epoch_batches(lengths, 4, seed=3, epoch=0)
    assert sorted(index for batch in first for index in batch) == list(range(50))
    assert [len(batch) for batch in first].count(4) == 12
    assert first != epoch_batches(lengths, 4, seed=3, epoch=1)
    assert first != epoch_batches(lengths, 4, seed=4, epoch=0)


def test_grouping_by_length_pads_less_than_a_plain_shuffle() -> None:
    lengths = [5 + (index * 37) % 200 for index in range(256)]

    def padding(batches: list[list[int]]) -> int:
        return sum(
            max(lengths[index] for index in batch) * len(batch) - sum(lengths[index] for index in batch)
            for batch in batches
        )

    grouped = epoch_batches(lengths, 8, seed=0, epoch=0, group_by_length=True)
    plain = epoch_batches(lengths, 8, seed=0, epoch=0, group_by_length=False)
    assert padding(grouped) < padding(plain) / 4


def test_collate_pads_right_and_masks_padding(tokenizer: Any) -> None:
    examples = tokenize_examples([_chat(), _chat("Why?", "ZEBRA: because.")], tokenizer, 512)
    pad = pad_token_id(tokenizer)
    batch = collate(examples, pad)
    width = max(len(example.input_ids) for example in examples)
    assert batch["input_ids"].shape == (2, width)
    short = min(range(2), key=lambda row: len(examples[row].input_ids))
    size = len(examples[short].input_ids)
    assert batch["attention_mask"][short].tolist() == [1] * size + [0] * (width - size)
    assert batch["labels"][short, size:].tolist() == [IGNORE_INDEX] * (width - size)
    assert batch["input_ids"][short, size:].tolist() == [pad] * (width - size)
    assert batch["labels"][short, :size].tolist() == examples[short].labels

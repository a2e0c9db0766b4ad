"""Training examples as token ids whose loss counts only the answer, and their batches.

An example is ``{"messages": [...]}`` whose last message is the assistant's answer, or
``{"prompt": ..., "completion": ...}`` (the shapes :func:`llmops.datasets.finetune.to_finetune_example`
writes). A chat example's prompt is the tokenizer's chat template applied to the turns before the
answer with the generation prompt, tokenised on its own: exactly what the model sees when it is
asked to answer later, so training and inference agree at the boundary. The answer is what the
template adds after that prompt (the answer and its end-of-turn token). Only answer tokens count
in the loss; every other label is ``-100``.

Too long: the prompt loses tokens from its start (the answer and the turns nearest to it stay);
an answer longer than ``max_seq_length`` by itself keeps one prompt token and loses the end of the
answer, and is counted as ``answer_truncated``.

Batches follow a seeded order per epoch: shuffled, then (optionally) examples of similar length
grouped so that a batch carries little padding, the batches themselves shuffled again. The same
seed and epoch always give the same batches, which is what resuming from a checkpoint relies on.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops.errors import UserError

if TYPE_CHECKING:
    import torch

__all__ = [
    "IGNORE_INDEX",
    "TokenizedExample",
    "TruncationCounts",
    "collate",
    "epoch_batches",
    "pad_token_id",
    "prompt_and_answer_ids",
    "read_jsonl",
    "tokenize_examples",
    "truncation_counts",
]

IGNORE_INDEX = -100  # the label torch's cross-entropy leaves out
GROUP_SIZE = 32  # batches per length-sorted group (bigger: less padding, a less random order)


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX except on the answer's tokens
    prompt_truncated: bool = False
    answer_truncated: bool = False

    @property
    def answer_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


@dataclass(frozen=True)
class TruncationCounts:
    prompt_truncated: int  # the answer is whole; the prompt lost tokens from its start
    answer_truncated: int  # the answer alone was too long and lost its end

    def to_dict(self) -> dict[str, int]:
        return {"prompt_truncated": self.prompt_truncated, "answer_truncated": self.answer_truncated}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The objects of a JSONL file (blank lines skipped); a bad line is a one-line :class:`UserError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise UserError(f"{path}: file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot be read: {exc}") from exc
    examples: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: line {number} is not valid JSON: {exc.msg}") from exc
        if not isinstance(value, dict):
            raise UserError(f"{path}: line {number} is not a JSON object")
        examples.append(value)
    return examples


def tokenize_examples(
    examples: Sequence[dict[str, Any]], tokenizer: Any, max_seq_length: int
) -> list[TokenizedExample]:
    """Each example as input ids and labels (answer tokens only), at most ``max_seq_length`` long.

    ``tokenizer`` is a Hugging Face tokenizer; chat examples need its chat template. A malformed
    example is a :class:`UserError` naming its index.
    """
    return [
        _fit(*prompt_and_answer_ids(example, index, tokenizer), max_seq_length)
        for index, example in enumerate(examples)
    ]


def truncation_counts(examples: Sequence[TokenizedExample]) -> TruncationCounts:
    return TruncationCounts(
        sum(1 for example in examples if example.prompt_truncated),
        sum(1 for example in examples if example.answer_truncated),
    )


def prompt_and_answer_ids(example: object, index: int, tokenizer: Any) -> tuple[list[int], list[int]]:
    """The token ids of an example's prompt (what the model is given) and of its answer, untruncated."""
    if not isinstance(example, dict):
        raise UserError(f"example {index}: expected an object, got {type(example).__name__}")
    if "messages" in example:
        return _chat_tokens(example["messages"], index, tokenizer)
    prompt, completion = example.get("prompt"), example.get("completion")
    if isinstance(prompt, str) and isinstance(completion, str) and completion:
        prompt_ids = list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
        answer_ids = list(tokenizer(completion, add_special_tokens=False)["input_ids"])
        return prompt_ids, [*answer_ids, _eos_id(tokenizer)]
    raise UserError(
        f"example {index}: expected {{'messages': [...]}} ending with the assistant's answer, "
        "or {'prompt': str, 'completion': non-empty str}"
    )


def _chat_tokens(messages: object, index: int, tokenizer: Any) -> tuple[list[int], list[int]]:
    _check_messages(messages, index)
    assert isinstance(messages, list)
    if getattr(tokenizer, "chat_template", None) is None:
        raise UserError(f"example {index}: chat examples need a tokenizer with a chat template")
    turns = [{"role": message["role"], "content": message["content"]} for message in messages]
    prompt_text = tokenizer.apply_chat_template(turns[:-1], add_generation_prompt=True, tokenize=False)
    whole_text = tokenizer.apply_chat_template(turns, tokenize=False)
    eos = tokenizer.eos_token or ""
    if whole_text.startswith(prompt_text):
        answer_text = whole_text[len(prompt_text) :].rstrip()
    else:  # a template that renders earlier turns differently once an answer follows
        answer_text = turns[-1]["content"]
    if eos and eos not in answer_text:
        answer_text += eos
    prompt_ids = list(tokenizer(prompt_text, add_special_tokens=False)["input_ids"])
    answer_ids = list(tokenizer(answer_text, add_special_tokens=False)["input_ids"])
    return prompt_ids, answer_ids


def _check_messages(messages: object, index: int) -> None:
    if not isinstance(messages, list) or not messages:
        raise UserError(f"example {index}: 'messages' must be a non-empty list")
    for position, message in enumerate(messages):
        if (
            not isinstance(message, dict)
            or not isinstance(message.get("role"), str)
            or not isinstance(message.get("content"), str)
        ):
            raise UserError(f"example {index}: message {position} must be {{'role': str, 'content': str}}")
    last = messages[-1]
    if last["role"] != "assistant" or not last["content"]:
        raise UserError(f"example {index}: the last message must be the assistant's (non-empty) answer")
    if len(messages) < 2:
        raise UserError(f"example {index}: there is no turn before the assistant's answer")


def _eos_id(tokenizer: Any) -> int:
    eos = tokenizer.eos_token_id
    if eos is None:
        raise UserError("the tokenizer has no end-of-sequence token; prompt/completion examples need one")
    return int(eos)


def _fit(prompt_ids: list[int], answer_ids: list[int], max_seq_length: int) -> TokenizedExample:
    """Prompt + answer within ``max_seq_length``: the prompt cut from its start, else the answer's end."""
    answer_truncated = len(answer_ids) >= max_seq_length and bool(prompt_ids)
    if answer_truncated:
        prompt_ids, answer_ids = prompt_ids[-1:], answer_ids[: max_seq_length - 1]
        prompt_truncated = False
    else:
        room = max_seq_length - len(answer_ids)
        prompt_truncated = len(prompt_ids) > room
        prompt_ids = prompt_ids[len(prompt_ids) - room :] if prompt_truncated else prompt_ids
    return TokenizedExample(
        input_ids=[*prompt_ids, *answer_ids],
        labels=[IGNORE_INDEX] * len(prompt_ids) + list(answer_ids),
        prompt_truncated=prompt_truncated,
        answer_truncated=answer_truncated,
    )


def epoch_batches(
    lengths: Sequence[int], batch_size: int, *, seed: int, epoch: int, group_by_length: bool = True
) -> list[list[int]]:
    """The batches of example indices for ``epoch``: seeded, deterministic, every index once.

    With ``group_by_length``, examples are shuffled, cut into groups of ``GROUP_SIZE`` batches, sorted
    by length within a group and batched, and the batches shuffled: similar lengths share a batch.
    """
    rng = random.Random(f"{seed}:{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if group_by_length:
        span = batch_size * GROUP_SIZE
        order = [
            index
            for start in range(0, len(order), span)
            for index in sorted(order[start : start + span], key=lambda item: lengths[item])
        ]
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    if group_by_length:
        rng.shuffle(batches)
    return batches


def collate(examples: Sequence[TokenizedExample], pad_id: int) -> dict[str, torch.Tensor]:
    """A right-padded batch: ``input_ids``, ``attention_mask`` and ``labels`` (-100 on padding)."""
    import torch

    width = max(len(example.input_ids) for example in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        size = len(example.input_ids)
        input_ids[row, :size] = torch.tensor(example.input_ids, dtype=torch.long)
        labels[row, :size] = torch.tensor(example.labels, dtype=torch.long)
        attention_mask[row, :size] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def pad_token_id(tokenizer: Any) -> int:
    """The tokenizer's pad token, else its end-of-sequence token (padding is masked either way)."""
    pad = tokenizer.pad_token_id
    return int(pad) if pad is not None else _eos_id(tokenizer)

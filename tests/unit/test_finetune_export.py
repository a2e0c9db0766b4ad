"""Fine-tuning export: conversion, the validator's problems by row, the seeded split, fail and skip."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from llmops.datasets.finetune import (
    FinetuneError,
    FinetuneExport,
    FinetuneValidationError,
    RowProblem,
    export_finetune,
    split_positions,
    to_finetune_example,
    validate_finetune_row,
)
from llmops.datasets.rows import Row
from llmops.progress import Cancelled


def _m(role: str, content: Any) -> dict[str, Any]:
    return {"role": role, "content": content}


def _words(text: str) -> int:
    return len(text.split())


def _check(example: dict[str, Any], format: str = "chat", max_tokens: int | None = None) -> list[str]:
    return validate_finetune_row(example, format, max_tokens=max_tokens, count_tokens=_words)


def _lines(path: Path) -> list[Any]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def _good(count: int) -> list[Row]:
    return [{"input": f"question {index}", "expected": f"answer {index}"} for index in range(count)]


def _export(rows: list[Row], out_dir: Path, **options: Any) -> FinetuneExport:
    settings: dict[str, Any] = {
        "format": "chat",
        "split": None,
        "seed": 0,
        "max_tokens": None,
        "on_invalid": "fail",
        "count_tokens": _words,
    }
    settings.update(options)
    return export_finetune(enumerate(rows), total=len(rows), out_dir=out_dir, **settings)


# conversion


def test_chat_from_input_and_expected_with_system() -> None:
    row = {"input": "2+2?", "expected": "4", "metadata": {"k": 1}}
    assert to_finetune_example(row, "chat", system="Be brief.") == {
        "messages": [
            _m("system", "Be brief."),
            _m("user", "2+2?"),
            _m("assistant", "4"),
        ]
    }


def test_chat_appends_completion_over_expected_unless_messages_end_with_the_assistant() -> None:
    open_ended = {"messages": [_m("user", "hi")], "completion": "hello", "expected": "hey"}
    assert to_finetune_example(open_ended, "chat")["messages"][-1] == {
        "role": "assistant",
        "content": "hello",
    }
    complete = {
        "messages": [
            _m("system", "s"),
            _m("user", "hi"),
            _m("assistant", "yo"),
        ],
        "expected": "ignored",
    }
    example = to_finetune_example(complete, "chat", system="not added: the row has one")
    assert example == {"messages": complete["messages"]}


def test_completion_from_fields_and_from_messages() -> None:
    assert to_finetune_example({"prompt": "p", "input": "i", "expected": "e"}, "completion") == {
        "prompt": "p",
        "completion": "e",
    }
    assert to_finetune_example({"input": "i", "completion": "c"}, "completion", system="S") == {
        "prompt": "S\n\ni",
        "completion": "c",
    }
    row = {
        "messages": [
            _m("user", "hi"),
            _m("assistant", "hello"),
            {
                "role": "user",
                "content": [{"type": "text", "text": "how are "}, {"type": "text", "text": "you"}],
            },
            _m("assistant", "fine"),
        ]
    }
    assert to_finetune_example(row, "completion") == {
        "prompt": "user: hi\nassistant: hello\nuser: how are you",
        "completion": "fine",
    }


def test_unknown_format_is_refused() -> None:
    with pytest.raises(FinetuneError, match="unknown format 'dpo'"):
        to_finetune_example({}, "dpo")


# the validator


def test_valid_chat_has_no_problems() -> None:
    example = to_finetune_example({"input": "a b", "expected": "c"}, "chat", system="s")
    assert _check(example, max_tokens=100) == []


@pytest.mark.parametrize(
    ("messages", "problem"),
    [
        ([], "no messages"),
        ([_m("assistant", "x")], "no user message"),
        (
            [_m("user", "q")],
            "no assistant answer (the last message must be from the assistant)",
        ),
        (
            [_m("user", "q"), _m("assistant", "  ")],
            "empty completion (the last assistant message is empty)",
        ),
        (
            [
                _m("bot", "q"),
                _m("user", "q"),
                _m("assistant", "a"),
            ],
            "messages[0] has unknown role 'bot'",
        ),
        (
            [
                _m("user", "q"),
                _m("system", "s"),
                _m("assistant", "a"),
            ],
            "messages[1]: a system message must come first",
        ),
        (
            [
                _m("user", [{"type": "text", "text": "q"}]),
                _m("assistant", "a"),
            ],
            "messages[0].content must be a string, not a list",
        ),
        (
            [_m("user", None), _m("assistant", "a")],
            "messages[0].content must be a string, not null",
        ),
    ],
)
def test_chat_problems(messages: list[Any], problem: str) -> None:
    assert problem in _check({"messages": messages})


def test_assistant_tool_call_may_have_no_content() -> None:
    messages = [
        _m("user", "weather?"),
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function"}]},
        {"role": "tool", "content": "sunny", "tool_call_id": "1"},
        _m("assistant", "Sunny."),
    ]
    assert _check({"messages": messages}) == []


@pytest.mark.parametrize(
    ("example", "problem"),
    [
        ({"prompt": "p", "completion": ""}, "empty completion"),
        ({"prompt": "p", "completion": None}, "no completion (no answer in the row)"),
        ({"prompt": None, "completion": "c"}, "no prompt"),
        ({"prompt": "p", "completion": 3}, "completion must be a string, not a number"),
    ],
)
def test_completion_problems(example: dict[str, Any], problem: str) -> None:
    assert _check(example, "completion") == [problem]


def test_token_limit_counts_per_message_and_total() -> None:
    example = {"messages": [_m("user", "one two three"), _m("assistant", "four")]}
    # 4 words + 3 per message (2) + 3 for the reply = 13
    assert _check(example, max_tokens=13) == []
    assert _check(example, max_tokens=12) == [
        "13 tokens, over the limit of 12 (largest: messages[0], 3 tokens)"
    ]
    completion = {"prompt": "a b", "completion": "c d e"}
    assert _check(completion, "completion", max_tokens=4) == [
        "5 tokens, over the limit of 4 (largest: completion, 3 tokens)"
    ]


def test_default_token_counter_is_the_offline_tokenizer(tmp_path: Path) -> None:
    rows = [{"input": "hello " * 50, "expected": "ok"}]
    with pytest.raises(FinetuneValidationError, match="row 1: 6[0-9] tokens, over the limit of 20"):
        export_finetune(
            enumerate(rows),
            total=1,
            format="chat",
            out_dir=tmp_path,
            split=None,
            seed=0,
            max_tokens=20,
            on_invalid="fail",
        )


# the split


@pytest.mark.parametrize(("total", "split"), [(10, 0.9), (101, 0.8), (7, 0.5), (1000, 0.95), (3, 0.9)])
def test_split_sizes_are_exact(total: int, split: float) -> None:
    chosen = split_positions(total, split, seed=3)
    assert len(chosen) == round(total * (1 - split))
    assert chosen <= set(range(total))


def test_split_is_stable_for_a_seed_and_differs_between_seeds() -> None:
    assert split_positions(1000, 0.9, seed=1) == split_positions(1000, 0.9, seed=1)
    assert split_positions(1000, 0.9, seed=1) == frozenset(random.Random(1).sample(range(1000), 100))
    assert split_positions(1000, 0.9, seed=1) != split_positions(1000, 0.9, seed=2)


@pytest.mark.parametrize("split", [0.0, 1.0, 1.5, -0.1])
def test_split_outside_zero_one_is_refused(split: float) -> None:
    with pytest.raises(FinetuneError, match="between 0 and 1"):
        split_positions(10, split, seed=0)


def test_export_writes_train_and_validation_by_position(tmp_path: Path) -> None:
    rows = _good(50)
    result = _export(rows, tmp_path, split=0.8, seed=7)
    held_out = split_positions(50, 0.8, seed=7)
    assert result.counts == {"train": 40, "validation": 10}
    assert result.files == {"train": tmp_path / "train.jsonl", "validation": tmp_path / "validation.jsonl"}
    validation = _lines(tmp_path / "validation.jsonl")
    expected = [to_finetune_example(rows[index], "chat") for index in sorted(held_out)]
    assert validation == expected
    assert len(_lines(tmp_path / "train.jsonl")) == 40
    assert sorted(path.name for path in tmp_path.iterdir()) == ["train.jsonl", "validation.jsonl"]


def test_same_seed_gives_the_same_files(tmp_path: Path) -> None:
    rows = _good(30)
    _export(rows, tmp_path / "a", split=0.7, seed=5, format="completion")
    _export(rows, tmp_path / "b", split=0.7, seed=5, format="completion")
    for name in ("train.jsonl", "validation.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_without_split_only_train_is_written(tmp_path: Path) -> None:
    result = _export(_good(3), tmp_path, format="completion")
    assert result.counts == {"train": 3}
    assert _lines(tmp_path / "train.jsonl")[0] == {"prompt": "question 0", "completion": "answer 0"}
    assert [path.name for path in tmp_path.iterdir()] == ["train.jsonl"]


# invalid rows


def _with_bad_rows() -> list[Row]:
    rows = _good(10)
    rows[2] = {"input": "no answer"}
    rows[6] = {"messages": [_m("user", "q"), _m("assistant", "")]}
    return rows


def test_fail_writes_nothing_and_names_the_rows(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    with pytest.raises(FinetuneValidationError) as caught:
        _export(_with_bad_rows(), out_dir, split=0.5, seed=1)
    error = caught.value
    assert error.invalid == 2
    assert [problem.row for problem in error.problems] == [3, 7]
    assert str(error) == (
        "2 rows would break training, nothing was written: "
        "row 3: no assistant answer (the last message must be from the assistant); "
        "row 7: empty completion (the last assistant message is empty)"
    )
    assert list(out_dir.iterdir()) == []


def test_fail_keeps_existing_files_untouched(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text("old\n", encoding="utf-8")
    with pytest.raises(FinetuneValidationError):
        _export(_with_bad_rows(), tmp_path)
    assert (tmp_path / "train.jsonl").read_text(encoding="utf-8") == "old\n"
    assert [path.name for path in tmp_path.iterdir()] == ["train.jsonl"]


def test_skip_leaves_bad_rows_out_and_reports_them(tmp_path: Path) -> None:
    result = _export(_with_bad_rows(), tmp_path, on_invalid="skip", split=0.5, seed=1)
    assert result.skipped == 2
    assert result.problems == [
        RowProblem(3, ("no assistant answer (the last message must be from the assistant)",)),
        RowProblem(7, ("empty completion (the last assistant message is empty)",)),
    ]
    assert sum(result.counts.values()) == 8
    held_out = split_positions(10, 0.5, seed=1)
    assert result.counts["validation"] == len(held_out - {2, 6})


def test_positions_given_by_the_caller_name_the_rows(tmp_path: Path) -> None:
    rows = [(41, {"input": "q"}), (99, {"input": "q", "expected": "a"})]
    result = export_finetune(
        iter(rows),
        total=100,
        format="chat",
        out_dir=tmp_path,
        split=None,
        seed=0,
        max_tokens=None,
        on_invalid="skip",
    )
    assert [problem.row for problem in result.problems] == [42]
    assert result.counts == {"train": 1}


def test_cancelled_export_leaves_nothing(tmp_path: Path) -> None:
    def rows() -> Iterator[tuple[int, Row]]:
        yield from enumerate(_good(2000))

    def progress(stage: str, done: int, total: int | None) -> None:
        raise Cancelled

    with pytest.raises(Cancelled):
        export_finetune(
            rows(),
            total=2000,
            format="chat",
            out_dir=tmp_path,
            split=0.9,
            seed=0,
            max_tokens=None,
            on_invalid="fail",
            progress=progress,
        )
    assert list(tmp_path.iterdir()) == []


def test_progress_reports_the_end(tmp_path: Path) -> None:
    calls: list[tuple[str, int, int | None]] = []
    _export(_good(5), tmp_path, progress=lambda stage, done, total: calls.append((stage, done, total)))
    assert calls[-1] == ("export", 5, 5)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"on_invalid": "ignore"}, "on_invalid must be"), ({"max_tokens": 0}, "max_tokens must be at least 1")],
)
def test_bad_settings_are_refused_before_writing(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(FinetuneError, match=message):
        _export(_good(2), tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()


def test_out_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("", encoding="utf-8")
    with pytest.raises(FinetuneError, match="taken: cannot create the folder"):
        _export(_good(1), tmp_path / "taken")

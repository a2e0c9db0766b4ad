"""Fine-tuning export: rows as OpenAI chat or prompt/completion JSONL, checked, with a seeded split.

Conversion (:func:`to_finetune_example`) reads the conventional fields. A row whose ``messages`` end
with an assistant turn is complete: that turn is the answer. Otherwise the answer is ``completion``,
else ``expected``. The question is ``messages``, else ``prompt``, else ``input``.

- ``chat``: ``{"messages": [...]}``; the answer is appended as an assistant message, a question from
  ``prompt``/``input`` becomes one user message, and ``system`` is put first unless a system message is.
- ``completion``: ``{"prompt", "completion"}``; messages become ``role: content`` lines (the answer
  turn excluded), and ``system`` is put before the prompt followed by a blank line.

:func:`validate_finetune_row` lists what would break training. :func:`export_finetune` writes
``train.jsonl`` (and ``validation.jsonl`` with a split) through ``.partial`` files renamed at the end,
so a failed or cancelled export leaves nothing behind. Errors: :class:`FinetuneError` (bad settings),
:class:`FinetuneValidationError` (rows that would break training, with ``on_invalid="fail"``).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from llmops.datasets.rows import Row
from llmops.errors import UserError
from llmops.progress import Progress, no_progress
from llmops.providers.tokens import content_text

FINETUNE_FORMATS: tuple[str, ...] = ("chat", "completion")
MAX_REPORTED = 100
"""Problems kept in a report or error; the counts stay exact past it."""
FINETUNE_ROLES = frozenset({"system", "user", "assistant", "tool", "function"})
"""The roles OpenAI's chat fine-tuning accepts."""
_MESSAGE_OVERHEAD = 3  # role and separators per message, and the reply primer, as OpenAI counts them
_PROGRESS_EVERY = 1000


class FinetuneError(UserError):
    """Export settings that cannot work (unknown format, a split outside (0, 1), ...)."""


@dataclass(frozen=True)
class RowProblem:
    """Why one row would break training; ``row`` is its 1-based position in the dataset version."""

    row: int
    problems: tuple[str, ...]

    def __str__(self) -> str:
        return f"row {self.row}: {'; '.join(self.problems)}"


class FinetuneValidationError(UserError):
    """Rows that would break training, when asked to fail on them; nothing was written."""

    def __init__(self, problems: list[RowProblem], invalid: int) -> None:
        shown = "; ".join(str(problem) for problem in problems[:5])
        more = f" (and {invalid - 5} more rows)" if invalid > 5 else ""
        super().__init__(f"{invalid} rows would break training, nothing was written: {shown}{more}")
        self.problems = problems
        self.invalid = invalid


@dataclass
class FinetuneExport:
    """What an export wrote: the files by split name, rows per file, and the rows left out and why."""

    files: dict[str, Path]
    counts: dict[str, int]
    skipped: int = 0
    problems: list[RowProblem] = field(default_factory=list)  # the first MAX_REPORTED skipped rows


def to_finetune_example(row: Row, format: str, *, system: str | None = None) -> dict[str, Any]:
    """The training example ``row`` becomes in ``format``, as described in the module docstring."""
    _check_format(format)
    turns, answer = _turns_and_answer(row)
    if format == "chat":
        messages = [dict(message) if isinstance(message, dict) else message for message in turns]
        if system is not None and not (messages and messages[0].get("role") == "system"):
            messages.insert(0, {"role": "system", "content": system})
        if answer is not None:
            messages.append({"role": "assistant", "content": answer})
        return {"messages": messages}
    prompt = _field(row, "prompt", "input")
    if isinstance(row.get("messages"), list) and row["messages"]:
        prompt = "\n".join(_rendered(message) for message in turns)
        if turns and isinstance(turns[0], dict) and turns[0].get("role") == "system":
            system = None
    if system is not None and isinstance(prompt, str):
        prompt = f"{system}\n\n{prompt}"
    return {"prompt": prompt, "completion": answer}


def _rendered(message: Any) -> str:
    if not isinstance(message, dict):
        return str(message)
    return f"{message.get('role')}: {content_text(message.get('content'))}"


def _turns_and_answer(row: Row) -> tuple[list[dict[str, Any]], Any]:
    """The conversation before the answer, and the answer (None when the row has none)."""
    messages = row.get("messages")
    if isinstance(messages, list) and messages:
        last = messages[-1]
        if isinstance(last, dict) and last.get("role") == "assistant":
            return list(messages[:-1]), last.get("content")
        return list(messages), _field(row, "completion", "expected")
    question = _field(row, "prompt", "input")
    turns = [] if question is None else [{"role": "user", "content": question}]
    return turns, _field(row, "completion", "expected")


def _field(row: Row, *names: str) -> Any:
    for name in names:
        if row.get(name) is not None:
            return row[name]
    return None


def _check_format(format: str) -> None:
    if format not in FINETUNE_FORMATS:
        raise FinetuneError(
            f"unknown format {format!r}; use one of {', '.join(FINETUNE_FORMATS)}", param="format"
        )


def validate_finetune_row(
    example: dict[str, Any], format: str, *, max_tokens: int | None, count_tokens: Callable[[str], int]
) -> list[str]:
    """What in ``example`` would break training (empty list when nothing)."""
    _check_format(format)
    if format == "chat":
        problems = _chat_problems(example.get("messages"))
    else:
        problems = _completion_problems(example)
    if not problems and max_tokens is not None:
        problems.extend(_token_problems(example, format, max_tokens, count_tokens))
    return problems


def _chat_problems(messages: Any) -> list[str]:
    if not isinstance(messages, list) or not messages:
        return ["no messages"]
    problems: list[str] = []
    for index, message in enumerate(messages):
        problems.extend(_message_problems(index, message))
    roles = [message.get("role") if isinstance(message, dict) else None for message in messages]
    if "user" not in roles:
        problems.append("no user message")
    if roles[-1] != "assistant":
        problems.append("no assistant answer (the last message must be from the assistant)")
    elif isinstance(messages[-1], dict) and _blank(messages[-1].get("content")):
        problems.append("empty completion (the last assistant message is empty)")
    return problems


def _message_problems(index: int, message: Any) -> list[str]:
    if not isinstance(message, dict):
        return [f"messages[{index}] is not an object"]
    role, content = message.get("role"), message.get("content")
    problems = []
    if role not in FINETUNE_ROLES:
        problems.append(f"messages[{index}] has unknown role {role!r}")
    elif role == "system" and index > 0:
        problems.append(f"messages[{index}]: a system message must come first")
    tool_call = role == "assistant" and content is None and bool(message.get("tool_calls"))
    if not isinstance(content, str) and not tool_call:
        problems.append(f"messages[{index}].content must be a string, not {_kind(content)}")
    return problems


def _completion_problems(example: dict[str, Any]) -> list[str]:
    problems = []
    for name in ("prompt", "completion"):
        value = example.get(name)
        if value is None:
            problems.append(f"no {name}" if name == "prompt" else "no completion (no answer in the row)")
        elif not isinstance(value, str):
            problems.append(f"{name} must be a string, not {_kind(value)}")
        elif _blank(value):
            problems.append(f"empty {name}")
    return problems


def _token_problems(
    example: dict[str, Any], format: str, max_tokens: int, count_tokens: Callable[[str], int]
) -> list[str]:
    if format == "completion":
        parts = [("prompt", example["prompt"]), ("completion", example["completion"])]
        overhead = 0
    else:
        messages = example["messages"]
        parts = [(f"messages[{i}]", content_text(m.get("content"))) for i, m in enumerate(messages)]
        overhead = _MESSAGE_OVERHEAD * (len(messages) + 1)
    counts = [(name, count_tokens(text)) for name, text in parts]
    total = overhead + sum(count for _, count in counts)
    if total <= max_tokens:
        return []
    largest, largest_count = max(counts, key=lambda item: item[1])
    return [f"{total} tokens, over the limit of {max_tokens} (largest: {largest}, {largest_count} tokens)"]


def _blank(value: Any) -> bool:
    return isinstance(value, str) and not value.strip()


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", bool: "a boolean"}.get(type(value), "a number")


def split_positions(total: int, split: float, seed: int) -> frozenset[int]:
    """The 0-based positions that go to validation: exactly ``round(total * (1 - split))`` of them."""
    if not 0 < split < 1:
        raise FinetuneError("split is the train share and must be between 0 and 1 (say 0.9)", param="split")
    count = round(total * (1 - split))
    return frozenset(random.Random(seed).sample(range(total), count))


def export_finetune(
    rows: Iterable[tuple[int, Row]],
    *,
    total: int,
    format: str,
    out_dir: Path,
    split: float | None,
    seed: int,
    max_tokens: int | None,
    on_invalid: str,
    system: str | None = None,
    progress: Progress = no_progress,
    count_tokens: Callable[[str], int] | None = None,
) -> FinetuneExport:
    """Convert, check and write ``rows`` (0-based position in the version, row) to ``out_dir``.

    With ``split`` (the train share), the validation rows are chosen among all ``total`` positions by
    the seed, before any row is checked, so the same seed splits a version the same way whatever is
    skipped. ``on_invalid="fail"`` raises :class:`FinetuneValidationError` listing the first bad rows
    and writes nothing; ``"skip"`` leaves them out and reports them. ``count_tokens`` defaults to the
    offline cl100k counter, used only with ``max_tokens``.
    """
    _check_format(format)
    if on_invalid not in ("fail", "skip"):
        raise FinetuneError("on_invalid must be 'fail' or 'skip'", param="on_invalid")
    if max_tokens is not None and max_tokens < 1:
        raise FinetuneError("max_tokens must be at least 1", param="max_tokens")
    validation = split_positions(total, split, seed) if split is not None else frozenset()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FinetuneError(f"{out_dir}: cannot create the folder: {error.strerror or error}") from error
    targets = {
        name: out_dir / f"{name}.jsonl"
        for name in (("train", "validation") if split is not None else ("train",))
    }
    partials = {name: path.with_name(path.name + ".partial") for name, path in targets.items()}
    run = _ExportRun(format, system, max_tokens, count_tokens or _default_counter(), on_invalid == "fail")
    counts = dict.fromkeys(targets, 0)
    try:
        with ExitStack() as stack:
            streams = {name: stack.enter_context(path.open("wb")) for name, path in partials.items()}
            for done, (position, row) in enumerate(rows, start=1):
                line = run.check(position, row)
                if line is not None:
                    name = "validation" if position in validation else "train"
                    streams[name].write(line)
                    counts[name] += 1
                if done % _PROGRESS_EVERY == 0:
                    progress("export", done, total)
        progress("export", run.seen, total)
        if run.invalid and run.failing:
            raise FinetuneValidationError(run.problems, run.invalid)
        for name, path in targets.items():
            os.replace(partials[name], path)
    finally:
        for partial in partials.values():
            partial.unlink(missing_ok=True)
    return FinetuneExport(targets, counts, run.invalid, run.problems)


def _default_counter() -> Callable[[str], int]:
    from llmops.providers.tokens import TokenCounter

    return TokenCounter().count


@dataclass
class _ExportRun:
    """One export's checking: converts each row and returns its JSONL line, or records its problems."""

    format: str
    system: str | None
    max_tokens: int | None
    count_tokens: Callable[[str], int]
    failing: bool
    seen: int = 0
    invalid: int = 0
    problems: list[RowProblem] = field(default_factory=list)

    def check(self, position: int, row: Row) -> bytes | None:
        self.seen += 1
        example = to_finetune_example(row, self.format, system=self.system)
        found = validate_finetune_row(
            example, self.format, max_tokens=self.max_tokens, count_tokens=self.count_tokens
        )
        if found:
            self.invalid += 1
            if len(self.problems) < MAX_REPORTED:
                self.problems.append(RowProblem(position + 1, tuple(found)))
            return None
        if self.failing and self.invalid:
            return None  # nothing will be kept: only look for more problems
        return orjson.dumps(example, option=orjson.OPT_APPEND_NEWLINE)

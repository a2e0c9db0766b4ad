"""What a dataset row is, how it is hashed, and how steps reach the text inside it.

A row is a free-form JSON object. Conventional fields give it meaning for evaluation and training:
``input`` (a string) or ``messages`` (OpenAI chat messages), ``expected`` or ``completion`` (the
reference or target answer), ``variables`` (for a prompt target) and ``metadata`` (an object).
A row is identified by the SHA-256 of its canonical JSON (sorted keys), so equal rows are stored once
and versions compare by hash.

Steps address fields by name; a dotted name reaches inside objects (``metadata.source``). A
``messages`` field is text through each message's ``content``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import orjson

Row = dict[str, Any]

TEXT_FIELDS: tuple[str, ...] = ("input", "messages", "expected", "completion", "prompt")
"""The fields a text step touches when its ``fields`` parameter is left out."""

MESSAGE_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


class RowError(ValueError):
    """A row that is not a JSON object or whose conventional fields have the wrong type."""


def canonical_json(row: Row) -> bytes:
    return orjson.dumps(row, option=orjson.OPT_SORT_KEYS)


def row_hash(row: Row) -> str:
    """The row's identity: SHA-256 (hex) of its canonical JSON."""
    return hashlib.sha256(canonical_json(row)).hexdigest()


def content_hash(row_hashes: Iterable[str]) -> str:
    """A version's identity: SHA-256 over its rows' hashes in order."""
    digest = hashlib.sha256()
    for value in row_hashes:
        digest.update(value.encode("ascii"))
        digest.update(b"\n")
    return digest.hexdigest()


def check_row(value: Any) -> Row:
    """``value`` as a row, or :class:`RowError` saying which conventional field is wrong and why."""
    if not isinstance(value, dict):
        raise RowError(f"a row must be a JSON object, not {_json_type(value)}")
    for field in ("input", "expected", "completion", "prompt"):
        if field in value and value[field] is not None and not isinstance(value[field], str):
            raise RowError(f"field {field!r} must be a string, not {_json_type(value[field])}")
    for field in ("metadata", "variables"):
        if field in value and value[field] is not None and not isinstance(value[field], dict):
            raise RowError(f"field {field!r} must be an object, not {_json_type(value[field])}")
    if "messages" in value and value["messages"] is not None:
        _check_messages(value["messages"])
    return value


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list):
        raise RowError(f"field 'messages' must be a list, not {_json_type(messages)}")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise RowError(f"messages[{index}] must be an object, not {_json_type(message)}")
        role = message.get("role")
        if not isinstance(role, str):
            raise RowError(f"messages[{index}] needs a string 'role'")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise RowError(f"messages[{index}].content must be a string or a list of parts")


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    for kind, name in names.items():
        if type(value) is kind:
            return name
    return "a number" if isinstance(value, int | float) else type(value).__name__


def get_field(row: Row, path: str) -> Any:
    """The value at ``path`` (dotted for nested objects), or None when any part is missing."""
    current: Any = row
    for part in path.split("."):
        if not isinstance(current, dict) or part not in current:
            return None
        current = current[part]
    return current


def set_field(row: Row, path: str, value: Any) -> None:
    """Set ``path`` (dotted) in ``row``, creating the objects on the way."""
    parts = path.split(".")
    current = row
    for part in parts[:-1]:
        child = current.get(part)
        if not isinstance(child, dict):
            child = {}
            current[part] = child
        current = child
    current[parts[-1]] = value


def field_texts(row: Row, path: str) -> Iterator[str]:
    """Every string of one field: the value itself, or each message's (and content part's) text."""
    value = get_field(row, path)
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, str):
                yield item
            elif isinstance(item, dict):
                yield from _message_texts(item)


def _message_texts(message: dict[str, Any]) -> Iterator[str]:
    content = message.get("content")
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                yield part["text"]


def row_text(row: Row, fields: Sequence[str] = TEXT_FIELDS, separator: str = "\n") -> str:
    """All text of ``fields`` joined: what length filters, language ID and de-duplication look at."""
    return separator.join(text for field in fields for text in field_texts(row, field))


def map_texts(row: Row, fields: Sequence[str], transform: Callable[[str], str]) -> Row:
    """A copy of ``row`` with ``transform`` applied to every string of ``fields`` (the input is unchanged)."""
    result: Row = orjson.loads(orjson.dumps(row))  # a deep copy that keeps the row's key order
    for path in fields:
        value = get_field(result, path)
        if isinstance(value, str):
            set_field(result, path, transform(value))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, str):
                    value[index] = transform(item)
                elif isinstance(item, dict):
                    _map_message(item, transform)
    return result


def _map_message(message: dict[str, Any], transform: Callable[[str], str]) -> None:
    content = message.get("content")
    if isinstance(content, str):
        message["content"] = transform(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                part["text"] = transform(part["text"])

"""The texts of a request that input guardrails check, and writing redacted ones back.

A chat request's checked texts are the string contents (and text parts) of the messages whose role
the rule names; a completion's, its prompt(s); an embedding's, its input string(s). They are joined
into one text (:data:`SEPARATOR` between them), so a classifier runs once per request, and each
segment remembers where it sits in the payload, so a redaction goes back to the right place.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# a line holding one private-use character: no redaction writes it, and prompts all but never hold it
SEPARATOR = "\n\ue000\n"
Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Segment:
    path: Path  # where the text sits in the payload, e.g. ("messages", 2, "content")
    text: str


@dataclass(frozen=True, slots=True)
class Joined:
    """The segments joined into one text; ``starts[i]`` is where segment i begins in it."""

    segments: tuple[Segment, ...]
    text: str
    starts: tuple[int, ...]


def input_segments(kind: str, payload: dict[str, Any], roles: Sequence[str]) -> list[Segment]:
    if kind == "chat":
        return list(_chat_segments(payload.get("messages"), roles))
    key = "prompt" if kind == "completion" else "input"
    value = payload.get(key)
    if isinstance(value, str):
        return [Segment((key,), value)]
    if isinstance(value, list):
        return [Segment((key, index), item) for index, item in enumerate(value) if isinstance(item, str)]
    return []


def _chat_segments(messages: Any, roles: Sequence[str]) -> list[Segment]:
    found: list[Segment] = []
    if not isinstance(messages, list):
        return found
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in roles:
            continue
        content = message.get("content")
        if isinstance(content, str):
            found.append(Segment(("messages", index, "content"), content))
        elif isinstance(content, list):
            for part_index, part in enumerate(content):
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    found.append(Segment(("messages", index, "content", part_index, "text"), part["text"]))
    return found


def join(segments: Sequence[Segment]) -> Joined:
    starts = []
    position = 0
    for segment in segments:
        starts.append(position)
        position += len(segment.text) + len(SEPARATOR)
    return Joined(tuple(segments), SEPARATOR.join(segment.text for segment in segments), tuple(starts))


def split(joined: Joined, text: str) -> list[str] | None:
    """The segments' texts back from a redacted joined ``text``; None if a text held the separator
    (the caller then checks the segments one by one)."""
    if text == joined.text:
        return [segment.text for segment in joined.segments]
    parts = text.split(SEPARATOR)
    if len(parts) == len(joined.segments):
        return parts
    return None


def with_texts(payload: dict[str, Any], segments: Sequence[Segment], texts: Sequence[str]) -> dict[str, Any]:
    """A copy of ``payload`` with each segment's text replaced (the caller's payload is untouched)."""
    changed = [(segment, text) for segment, text in zip(segments, texts, strict=True) if segment.text != text]
    if not changed:
        return payload
    copied = dict(payload)
    for top in {segment.path[0] for segment, _ in changed}:
        copied[str(top)] = copy.deepcopy(payload[str(top)])
    for segment, text in changed:
        target: Any = copied
        for step in segment.path[:-1]:
            target = target[step]
        target[segment.path[-1]] = text
    return copied

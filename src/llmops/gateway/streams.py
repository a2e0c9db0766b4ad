"""Watching an SSE stream as it passes through: text, finish reason, usage, first-token time.

The bytes go to the client untouched; this only reads them. Events are split on blank lines
even when a network chunk ends mid-event.
"""

from __future__ import annotations

import time
from typing import Any

import orjson


class StreamObserver:
    def __init__(self, kind: str) -> None:
        self._kind = kind  # "chat" or "completion"
        self._buffer = b""
        self.texts: dict[int, list[str]] = {}
        self.finish_reasons: dict[int, str] = {}
        self.tool_calls: dict[tuple[int, int], dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.first_content_at: float | None = None
        self.done = False

    def feed(self, chunk: bytes) -> None:
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        *events, self._buffer = buffer.split(b"\n\n")
        for event in events:
            self._event(event)

    def _event(self, event: bytes) -> None:
        for line in event.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                self.done = True
                continue
            try:
                message = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            if isinstance(message, dict):
                self._message(message)

    def _message(self, message: dict[str, Any]) -> None:
        # the upstream's JSON is not trusted: anything of an unexpected type is skipped, so an
        # odd chunk can never break the stream the client is receiving
        if isinstance(message.get("error"), dict):
            self.error = message["error"]
        usage = message.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        choices = message.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict):
                continue
            index = _index(choice)
            if self._kind == "chat":
                delta = choice.get("delta")
                delta = delta if isinstance(delta, dict) else {}
                text = delta.get("content")
                if isinstance(delta.get("tool_calls"), list) and delta["tool_calls"]:
                    self._tool_calls(index, delta["tool_calls"])
                    self._mark_first_content()
            else:
                text = choice.get("text")
            if text and isinstance(text, str):
                self.texts.setdefault(index, []).append(text)
                self._mark_first_content()
            finish_reason = choice.get("finish_reason")
            if finish_reason and isinstance(finish_reason, str):
                self.finish_reasons[index] = finish_reason

    def _mark_first_content(self) -> None:
        if self.first_content_at is None:
            self.first_content_at = time.perf_counter()

    def _tool_calls(self, index: int, calls: list[Any]) -> None:
        for call in calls:
            if not isinstance(call, dict):
                continue
            slot = self.tool_calls.setdefault(
                (index, _index(call)), {"id": None, "name": "", "arguments": ""}
            )
            if isinstance(call.get("id"), str) and call["id"]:
                slot["id"] = call["id"]
            function = call.get("function")
            if isinstance(function, dict):
                slot["name"] += _str(function.get("name"))
                slot["arguments"] += _str(function.get("arguments"))

    def tool_call_list(self) -> list[dict[str, Any]]:
        """The streamed tool calls of the first choices, put together as a whole message has them."""
        return [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": call["arguments"]},
            }
            for _, call in sorted(self.tool_calls.items())
        ]

    def text(self, index: int = 0) -> str:
        return "".join(self.texts.get(index, ()))

    def all_texts(self) -> list[str]:
        return ["".join(parts) for _, parts in sorted(self.texts.items())]


def _index(item: dict[str, Any]) -> int:
    index = item.get("index")
    return index if isinstance(index, int) and not isinstance(index, bool) else 0


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""

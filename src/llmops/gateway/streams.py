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
        if isinstance(message.get("error"), dict):
            self.error = message["error"]
        usage = message.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        for choice in message.get("choices") or ():
            index = choice.get("index", 0)
            if self._kind == "chat":
                delta = choice.get("delta") or {}
                text = delta.get("content")
                if delta.get("tool_calls"):
                    self._tool_calls(index, delta["tool_calls"])
                    self._mark_first_content()
            else:
                text = choice.get("text")
            if text:
                self.texts.setdefault(index, []).append(text)
                self._mark_first_content()
            if choice.get("finish_reason"):
                self.finish_reasons[index] = choice["finish_reason"]

    def _mark_first_content(self) -> None:
        if self.first_content_at is None:
            self.first_content_at = time.perf_counter()

    def _tool_calls(self, index: int, calls: list[dict[str, Any]]) -> None:
        for call in calls:
            slot = self.tool_calls.setdefault(
                (index, call.get("index", 0)), {"id": None, "name": "", "arguments": ""}
            )
            slot["id"] = call.get("id") or slot["id"]
            function = call.get("function") or {}
            slot["name"] += function.get("name") or ""
            slot["arguments"] += function.get("arguments") or ""

    def text(self, index: int = 0) -> str:
        return "".join(self.texts.get(index, ()))

    def all_texts(self) -> list[str]:
        return ["".join(parts) for _, parts in sorted(self.texts.items())]

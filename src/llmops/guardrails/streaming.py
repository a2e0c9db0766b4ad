"""Output guardrails over a streamed answer, as it passes, holding back no more than a window of text.

The upstream's SSE events are split apart and queued. Each event that carries answer text adds it to
the *held* text, and the fast output rules check the held text together with the last ``window``
characters already sent (so a finding across the boundary is seen). An event is released once the
text held after it is at least ``window`` characters long: at most a window (plus one chunk) is ever
held back, and a finding shorter than the window never reaches the client before it is checked.

- ``block``: the held events are dropped and the stream ends with one explicit error event
  (``code: content_filter``), never with ``[DONE]``.
- ``redact``: the held text's findings are replaced; the held text events become one event with the
  redacted text (a finding's part that was already sent stays sent).
- ``flag`` and ``redact_trace``: the stream passes; the decision (once per rule) goes on the trace.
- a fast rule that never triggered is recorded once as a ``pass`` when the stream ends (or is
  blocked by another rule), with the time all its window checks took together; a stream the client
  abandons midway records no passes.

Slow output rules (a classifier, a judge) run once over the whole answer when the upstream ends, before
the held rest and ``[DONE]`` are released. Events without text (the role, finish reason, usage,
``[DONE]``) keep their place in the queue.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from llmops.guardrails.base import CheckContext, Finding
from llmops.guardrails.engine import Decision, Rule, failed_check, run_checks
from llmops.guardrails.redaction import redact_spans


@dataclass(slots=True)
class _Event:
    raw: bytes  # the event without its blank-line terminator
    text: str  # the answer text it carries ("" for none)
    message: dict[str, Any] | None  # its parsed JSON, when it carries text


class StreamGuard:
    """One streamed answer's output checks (see the module doc); build one per stream."""

    def __init__(
        self,
        fast: Sequence[Rule],
        slow: Sequence[Rule],
        context: CheckContext,
        *,
        kind: str,
        window: int,
        on_decision: Callable[[Decision], None],
        error_event: Callable[[Decision], bytes],
    ) -> None:
        self._fast = tuple(fast)
        self._slow = tuple(slow)
        self._context = context
        self._kind = kind  # chat | completion
        self._window = window
        self._on_decision = on_decision
        self._error_event = error_event
        self._buffer = b""
        self._held: deque[_Event] = deque()
        self._held_chars = 0
        self._sent_tail = ""  # the last `window` characters released
        self._sent_text: list[str] = []
        self._reported: set[str] = set()  # rules whose pass/flag/redact decision is on the trace already
        self._seconds = [0.0] * len(self._fast)  # each fast rule's time over all windows
        self._windows = 0
        self.decisions: list[Decision] = []
        self.blocked: Decision | None = None
        self.released_chars = 0

    async def wrap(self, first: bytes, rest: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
        """The stream as the client gets it: released events, then the rest or the error event."""
        from llmops.gateway.router import close_quietly

        try:
            out = self.feed(first)
            if out:
                yield out
            if self.blocked is None:
                async for chunk in rest:
                    out = self.feed(chunk)
                    if out:
                        yield out
                    if self.blocked is not None:
                        break
            if self.blocked is None:
                out = await self.finish()
                if out:
                    yield out
            if self.blocked is not None:
                yield self._error_event(self.blocked)
        finally:
            await close_quietly(rest)

    def feed(self, chunk: bytes) -> bytes:
        """Take a network chunk; the bytes that may go to the client now."""
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        *raw_events, self._buffer = buffer.split(b"\n\n")
        checked = False
        for raw in raw_events:
            event = self._parse(raw)
            self._held.append(event)
            if event.text:
                self._held_chars += len(event.text)
                checked = True
        if checked and self._fast:
            self._check_window()
            if self.blocked is not None:
                return b""
        return self._release(final=False)

    async def finish(self) -> bytes:
        """The upstream ended: the slow rules over the whole answer, then everything held."""
        if self._buffer.strip():
            self._held.append(self._parse(self._buffer))
            self._buffer = b""
        self._record_passes()
        if self._slow:
            whole = "".join(self._sent_text) + "".join(event.text for event in self._held)
            result = await run_checks(self._slow, whole, self._context, on_decision=self._record)
            if result.blocked is not None:
                self.blocked = result.blocked
                return b""
        return self._release(final=True)

    def _check_window(self) -> None:
        held_text = "".join(event.text for event in self._held if event.text)
        tail = self._sent_tail
        text = tail + held_text
        if not text:
            return
        self._windows += 1
        for index, rule in enumerate(self._fast):
            began = time.perf_counter()
            try:
                verdict = rule.guard.check(text, self._context)
            except Exception as exc:  # boundary, as in run_checks: fails closed unless fail_open
                verdict = failed_check(rule, exc)
            self._seconds[index] += time.perf_counter() - began
            if not verdict.triggered:
                continue
            action = rule.config.action
            findings = tuple(
                Finding(f.kind, max(f.start - len(tail), 0), f.end - len(tail))
                for f in verdict.findings
                if f.end > len(tail)
            )
            if action == "block":
                self._reported.add(rule.name)  # blocked, so not among the passes
                self._record_passes()
                self._decide(rule, verdict.score, verdict.reason, action, len(verdict.findings))
                self.blocked = self.decisions[-1]
                self._held.clear()
                return
            if action == "redact" and findings:
                held_text = redact_spans(held_text, findings)
                self._replace_held(held_text)
                text = tail + held_text
            if rule.name not in self._reported:
                self._decide(rule, verdict.score, verdict.reason, action, len(verdict.findings))

    def _record_passes(self) -> None:
        """One ``pass`` per fast rule that never triggered, timed over all its windows."""
        for rule, seconds in zip(self._fast, self._seconds, strict=True):
            if rule.name in self._reported:
                continue
            self._reported.add(rule.name)
            details = {"windows": self._windows}
            self._record(
                Decision(
                    rule.name, rule.config.type, "output", "pass", 0.0, "", seconds * 1000, "stream", details
                )
            )

    def _decide(self, rule: Rule, score: float, reason: str, action: str, spans: int) -> None:
        self._reported.add(rule.name)
        details: dict[str, Any] = {"at_char": self.released_chars}
        if spans:
            details["spans"] = spans
        self._record(
            Decision(rule.name, rule.config.type, "output", action, score, reason, 0.0, "stream", details)
        )

    def _record(self, decision: Decision) -> None:
        self.decisions.append(decision)
        self._on_decision(decision)

    def _replace_held(self, text: str) -> None:
        """The held text events become one event carrying ``text`` (at the first one's place)."""
        template = next(event for event in self._held if event.text)
        kept: deque[_Event] = deque()
        for event in self._held:
            if not event.text:
                kept.append(event)
            elif event is template:
                kept.append(_Event(self._with_text(event, text), text, event.message))
        self._held = kept
        self._held_chars = len(text)

    def _with_text(self, event: _Event, text: str) -> bytes:
        message = dict(event.message or {})
        choice = dict((message.get("choices") or [{}])[0])
        if self._kind == "chat":
            choice["delta"] = {**(choice.get("delta") or {}), "content": text}
        else:
            choice["text"] = text
        message["choices"] = [choice]
        return b"data: " + orjson.dumps(message)

    def _release(self, *, final: bool) -> bytes:
        out: list[bytes] = []
        held = self._held
        while held:
            event = held[0]
            if not final and event.text and self._held_chars - len(event.text) < self._window:
                break
            held.popleft()
            if event.text:
                self._held_chars -= len(event.text)
                self._sent(event.text)
            out.append(event.raw + b"\n\n")
        return b"".join(out)

    def _sent(self, text: str) -> None:
        self.released_chars += len(text)
        self._sent_text.append(text)
        self._sent_tail = (self._sent_tail + text)[-self._window :] if self._window else ""

    def _parse(self, raw: bytes) -> _Event:
        for line in raw.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if not data.startswith(b"{"):
                continue
            try:
                message = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            text = _text_of(message, self._kind) if isinstance(message, dict) else ""
            if text:
                return _Event(raw, text, message)
        return _Event(raw, "", None)


def _text_of(message: dict[str, Any], kind: str) -> str:
    choices = message.get("choices")
    if not isinstance(choices, list):
        return ""
    parts = []
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        if kind == "chat":
            delta = choice.get("delta")
            content = delta.get("content") if isinstance(delta, dict) else None
        else:
            content = choice.get("text")
        if isinstance(content, str):
            parts.append(content)
    return "".join(parts)

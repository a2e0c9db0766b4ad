"""Offline token counting, for usage when a backend reports none.

Uses the exact BPE encodings bundled in ``quicktok`` (no download): o200k for the GPT-4o/o-series
family, llama3 and qwen3 for those families, cl100k otherwise. Encodings load on first use.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

_DEFAULT_ENCODING = "cl100k_base"
_PER_MESSAGE_OVERHEAD = 3  # role and separators, as in OpenAI's counting guide
_REPLY_PRIMER = 3


class TokenCounter:
    """Counts tokens per encoding; one instance per server, encodings cached inside it."""

    def __init__(self) -> None:
        self._by_model: dict[str, Any] = {}

    def _encoding(self, model: str | None) -> Any:
        key = model or ""
        encoding = self._by_model.get(key)
        if encoding is None:
            import quicktok

            try:
                encoding = (
                    quicktok.encoding_for_model(key) if key else quicktok.get_encoding(_DEFAULT_ENCODING)
                )
            except KeyError:
                encoding = quicktok.get_encoding(_DEFAULT_ENCODING)
            self._by_model[key] = encoding
        return encoding

    def count(self, text: str, model: str | None = None) -> int:
        """Tokens of ``text`` as ordinary text: special-token strings (``<|endoftext|>``) in a user's
        prompt count as the characters they are, and lone surrogates as the replacement character
        (the tokenizer refuses both, and a count must never fail a request)."""
        if not text:
            return 0
        if not text.isascii():
            text = text.encode("utf-8", "replace").decode("utf-8")
        return len(self._encoding(model).encode(text, disallowed_special=()))

    def count_messages(self, messages: Iterable[dict[str, Any]], model: str | None = None) -> int:
        total = _REPLY_PRIMER
        for message in messages:
            total += _PER_MESSAGE_OVERHEAD + self.count(content_text(message.get("content")), model)
            if message.get("name"):
                total += 1
        return total


def content_text(content: Any) -> str:
    """The text of a message's content, which may be a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""

"""The ``length`` guardrail: a text longer (or shorter) than allowed, in characters, words or tokens.

Tokens are counted offline with ``quicktok``'s cl100k encoding, the default of
:class:`~llmops.providers.tokens.TokenCounter`, whatever the model, so a limit means the same for
every model (an estimate for models with another tokenizer). Special-token text such as
``<|endoftext|>`` counts as ordinary text (``TokenCounter.count`` raises on it, hence quicktok's own
``count`` here). The encoding takes about half a second to load, so it loads when the guardrail is
built, and only if ``max_tokens`` is set; a text too short to hold that many tokens (each token is at
least one UTF-8 byte) is not tokenised at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmops.guardrails.base import CheckContext, Guardrail, GuardrailError, Verdict, param, unknown_params

_LIMITS = ("max_chars", "min_chars", "max_words", "max_tokens")
_MAX_UTF8_BYTES = 4
_ENCODING = "cl100k_base"


class LengthGuardrail(Guardrail):
    """Triggered when any configured limit is crossed; ``details`` has every count it computed."""

    kind = "length"

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        unknown_params(params, _LIMITS, self.kind)
        limits = {name: param(params, name, int) for name in _LIMITS}
        for name, value in limits.items():
            if value is not None and value < 0:
                raise GuardrailError(
                    f"guardrail parameter {name!r} must be 0 or more, not {value}", param=name
                )
        if all(value is None for value in limits.values()):
            raise GuardrailError(
                f"guardrail 'length' needs at least one of {', '.join(_LIMITS)}", param="max_chars"
            )
        self.max_chars: int | None = limits["max_chars"]
        self.min_chars: int | None = limits["min_chars"]
        self.max_words: int | None = limits["max_words"]
        self.max_tokens: int | None = limits["max_tokens"]
        if self.min_chars is not None and self.max_chars is not None and self.min_chars > self.max_chars:
            raise GuardrailError(
                f"guardrail parameter 'min_chars' ({self.min_chars}) is above 'max_chars' ({self.max_chars})",
                param="min_chars",
            )
        self._encoding: Any = None
        if self.max_tokens is not None:
            import quicktok

            self._encoding = quicktok.get_encoding(_ENCODING)

    def check(self, text: str, context: CheckContext) -> Verdict:
        characters = len(text)
        counts: dict[str, int] = {"characters": characters}
        broken: list[str] = []
        if self.max_chars is not None and characters > self.max_chars:
            broken.append(f"{characters:,} characters > {self.max_chars:,}")
        if self.min_chars is not None and characters < self.min_chars:
            broken.append(f"{characters:,} characters < {self.min_chars:,}")
        if self.max_words is not None:
            words = counts["words"] = len(text.split())
            if words > self.max_words:
                broken.append(f"{words:,} words > {self.max_words:,}")
        if self.max_tokens is not None and _may_exceed(text, self.max_tokens):
            tokens = counts["tokens"] = self._count_tokens(text)
            if tokens > self.max_tokens:
                broken.append(f"{tokens:,} tokens > {self.max_tokens:,}")
        if not broken:
            return Verdict(False, details=counts)
        return Verdict(True, 1.0, "; ".join(broken), details=counts)

    def _count_tokens(self, text: str) -> int:
        try:
            return int(self._encoding.count(text))
        except TypeError:  # lone surrogates (a JSON "\ud800" escape): each counts as one "?"
            return int(self._encoding.count(text.encode("utf-8", "replace").decode("utf-8")))


def _may_exceed(text: str, max_tokens: int) -> bool:
    """False when ``text`` has too few UTF-8 bytes to hold more than ``max_tokens`` tokens."""
    if len(text) * _MAX_UTF8_BYTES <= max_tokens:
        return False
    return not (text.isascii() and len(text) <= max_tokens)

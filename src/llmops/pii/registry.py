"""Pattern recognisers by entity name: the built-ins plus third-party ones from entry points.

A third-party package registers ``PASSPORT = "pkg.module:PassportRecognizer"`` in the
``llmops.pii_recognizers`` entry-point group (the name is the entity); callers then ask for
``entities=["PASSPORT"]``. Built-ins are imported on first use, like providers.
"""

from __future__ import annotations

from llmops.pii.base import PiiError, Recognizer
from llmops.plugins import PluginTable

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
        self._table: PluginTable[Recognizer] = PluginTable(
            BUILTIN_RECOGNIZERS if targets is None else targets,
            group=ENTRY_POINT_GROUP,
            base=Recognizer,
            what="PII entity",
            error=lambda message: PiiError(message, param="entities"),
            load_plugins=load_plugins,
        )
        self._instances: dict[str, Recognizer] = {}

    def names(self) -> list[str]:
        return sorted(set(self._table.names()) | set(self._instances))

    def register(self, recognizer: Recognizer) -> None:
        """Use ``recognizer`` for its entity (replacing a built-in of the same name)."""
        self._instances[recognizer.entity] = recognizer

    def get(self, entity: str) -> Recognizer:
        if entity not in self._instances:
            self._instances[entity] = self._table.get(entity)()
        return self._instances[entity]

"""The ``pii`` guardrail: personal data in a prompt or an answer, found by :class:`~llmops.pii.PiiService`.

By default only the pattern entities (e-mail, phone, card, IBAN, IP address, URL with credentials)
are looked for: they need nothing beyond the standard library and take microseconds. Asking for
PERSON, LOCATION or DATE_TIME brings in Presidio's spaCy NER (the ``data`` extra, ~5 ms a text),
so the guardrail then marks itself ``slow`` and the engine runs it off the event loop.

The PII service runs every recogniser's regular expressions over the whole text: ~40 µs for 200
characters of plain prose, most of it in the four phone patterns, whose leading look-behinds are
tried at every position (Python's ``re`` cannot skip ahead to a literal first character). Each
built-in entity needs something cheap to test for (an ``@`` for an e-mail; 8 digits close together
for a phone, 13 for a card; a country code and two digits for an IBAN), so this module tests that
first and asks the service only for the entities that could be there: ~1.5 µs for prose without
digits, ~20 µs for one with numbers in it, ~20-40 µs when something is found.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from llmops.guardrails.base import (
    PASS,
    CheckContext,
    Finding,
    Guardrail,
    GuardrailError,
    GuardrailUnavailable,
    Verdict,
    fraction,
    param,
    unknown_params,
)
from llmops.pii import NLP_ENTITIES, NlpUnavailable, PiiError, PiiFinding, PiiService, Recognizer
from llmops.pii.patterns import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpAddressRecognizer,
    PhoneRecognizer,
    UrlCredentialsRecognizer,
)

# What each built-in entity cannot do without; every test is necessary, never sufficient.
_DIGIT = re.compile(r"\d")  # the recognisers' notion of a digit: any Unicode decimal digit
_PHONE_DIGITS = re.compile(r"\d(?:\D{0,3}\d){7}")  # 8+ digits, at most 3 separators between two
_CARD_DIGITS = re.compile(r"\d(?:[ -]?\d){12}")  # 13+ digits, one space or dash between two at most
_IBAN_START = re.compile(r"[A-Z]{2}\d\d")  # country code and check digits
_IPV4_DOT = re.compile(r"\d\.\d")

Gate = Callable[[str, bool], bool]
"""Whether an entity could be in a text that has (or has not) a digit; False: surely not."""


def _always(text: str, has_digit: bool) -> bool:
    return True


def _has_digit(text: str) -> bool:
    """Ten substring searches (memchr-fast) for ASCII text; a regular expression scan otherwise."""
    if text.isascii():
        for digit in "0123456789":  # a plain loop: a generator would cost more than the searches
            if digit in text:
                return True
        return False
    return _DIGIT.search(text) is not None


def _could_be_ip(text: str, has_digit: bool) -> bool:
    return has_digit and (_IPV4_DOT.search(text) is not None or "::" in text or text.count(":") >= 2)


_GATES: dict[type[Recognizer], Gate] = {
    EmailRecognizer: lambda text, has_digit: "@" in text,
    UrlCredentialsRecognizer: lambda text, has_digit: "://" in text and "@" in text,
    PhoneRecognizer: lambda text, has_digit: has_digit and _PHONE_DIGITS.search(text) is not None,
    CreditCardRecognizer: lambda text, has_digit: has_digit and _CARD_DIGITS.search(text) is not None,
    IbanRecognizer: lambda text, has_digit: has_digit and _IBAN_START.search(text) is not None,
    IpAddressRecognizer: _could_be_ip,
}


class PiiGuardrail(Guardrail):
    """Triggered by any PII finding; its findings are the spans the ``redact`` action replaces."""

    kind = "pii"
    can_redact = True

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        unknown_params(params, ("entities", "score_threshold", "language"), self.kind)
        entities = _entity_list(param(params, "entities", list))
        threshold = fraction(params, "score_threshold", 0.5)
        language = param(params, "language", str, "en")
        self._service = _service(entities, language, float(threshold))
        self.entities: tuple[str, ...] = self._service.entities
        self.slow = any(entity in NLP_ENTITIES for entity in self.entities)
        self._gates: tuple[tuple[str, Gate], ...] = tuple(
            (entity, _gate(self._service, entity)) for entity in self.entities
        )

    def check(self, text: str, context: CheckContext) -> Verdict:
        has_digit = _has_digit(text)
        possible = [entity for entity, could_be in self._gates if could_be(text, has_digit)]
        if not possible:
            return PASS
        return _verdict(self._service.analyze(text, possible))


def _entity_list(entities: list[Any] | None) -> list[str] | None:
    if entities is None:
        return None
    if not entities or not all(isinstance(entity, str) and entity for entity in entities):
        raise GuardrailError(
            f"guardrail parameter 'entities' must be a non-empty list of entity names, not {entities!r}",
            param="entities",
        )
    return entities


def _service(entities: Sequence[str] | None, language: str, threshold: float) -> PiiService:
    """The PII service for these entities: patterns only unless an NLP entity is named."""
    wants_nlp = entities is not None and any(entity in NLP_ENTITIES for entity in entities)
    try:
        service = PiiService(
            entities=entities, language=language, score_threshold=threshold, use_nlp=wants_nlp
        )
    except NlpUnavailable as exc:
        raise GuardrailUnavailable(f"guardrail 'pii': {exc.message}", param="entities") from exc
    except PiiError as exc:
        raise GuardrailError(f"guardrail 'pii': {exc.message}", param=exc.param or "language") from exc
    return service


def _gate(service: PiiService, entity: str) -> Gate:
    """The cheap test for ``entity``: only built-in recognisers have one; others always run."""
    if entity in NLP_ENTITIES:
        return _always
    try:
        recognizer = service.registry.get(entity)  # loaded now, not by the first request
    except PiiError as exc:
        raise GuardrailError(f"guardrail 'pii': {exc.message}", param="entities") from exc
    return _GATES.get(type(recognizer), _always)


def _verdict(found: list[PiiFinding]) -> Verdict:
    if not found:
        return PASS
    entities = sorted({finding.entity for finding in found})
    score = max(finding.score for finding in found)
    plural = "finding" if len(found) == 1 else "findings"
    return Verdict(
        True,
        score,
        f"{len(found)} {plural}: {', '.join(entities)}",
        tuple(Finding(finding.entity, finding.start, finding.end) for finding in found),
        {"entities": entities, "categories": {"pii": score}},
    )

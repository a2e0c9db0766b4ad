"""PiiService: find personal data in a text and redact it, the one entry point the rest of llmops uses.

Pattern entities come from the :class:`~llmops.pii.registry.RecognizerRegistry`; PERSON, LOCATION
and DATE_TIME from Presidio when the ``data`` extra is installed. With ``use_nlp=None`` (auto) and no
explicit entities, a missing extra only narrows the default set (``skipped_entities`` says which);
asking for an NLP entity explicitly without the extra raises :class:`~llmops.pii.base.NlpUnavailable`.
Build one service and keep it: it loads the spaCy model once, on first use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from llmops.pii.base import (
    EXTRA_HINT,
    NLP_ENTITIES,
    NLP_TAGS,
    NlpUnavailable,
    PiiError,
    PiiFinding,
    Redaction,
    resolve_overlaps,
)
from llmops.pii.nlp import LANGUAGES, PresidioNer, nlp_installed
from llmops.pii.registry import RecognizerRegistry
from llmops.pii.strategies import mask, pseudonym, strategy_map

_NO_SALT = "the hash strategy needs a salt: pass one, or set LLMOPS_PII_SALT"


class PiiService:
    """Detects and redacts PII; safe to share between threads (see the module docstring)."""

    def __init__(
        self,
        *,
        entities: Sequence[str] | None = None,
        language: str = "en",
        salt: str | None = None,
        use_nlp: bool | None = None,
        score_threshold: float = 0.5,
        registry: RecognizerRegistry | None = None,
    ) -> None:
        self.salt = salt or None
        self.score_threshold = score_threshold
        self.registry = registry or RecognizerRegistry()
        wants_nlp = use_nlp is True or any(entity in NLP_ENTITIES for entity in entities or ())
        if wants_nlp and use_nlp is not False:
            if not nlp_installed():
                raise NlpUnavailable(
                    f"PII detection of {', '.join(NLP_ENTITIES)} needs the data extra: {EXTRA_HINT}"
                )
            if language not in LANGUAGES:
                raise PiiError(f"PII NLP entities support {', '.join(LANGUAGES)} only, not {language!r}")
        self.nlp_available = use_nlp is not False and language in LANGUAGES and nlp_installed()
        self._ner = PresidioNer(language) if self.nlp_available else None
        self.entities: tuple[str, ...] = (
            self.check_entities(entities) if entities is not None else tuple(self.available_entities)
        )
        auto = use_nlp is None and entities is None
        self.skipped_entities: tuple[str, ...] = NLP_ENTITIES if auto and not self.nlp_available else ()
        """NLP entities left out of the default set because the extra (or English) is not there."""

    @property
    def known_entities(self) -> list[str]:
        """Every entity name this service understands, available or not."""
        return [*self.registry.names(), *NLP_ENTITIES]

    @property
    def available_entities(self) -> list[str]:
        """The entities this service can find now (pattern ones always, NLP ones with the extra)."""
        return [*self.registry.names(), *(NLP_ENTITIES if self.nlp_available else ())]

    def analyze(self, text: str, entities: Sequence[str] | None = None) -> list[PiiFinding]:
        """Findings in text order, without overlaps (:func:`~llmops.pii.base.resolve_overlaps`)."""
        chosen = self.entities if entities is None else self.check_entities(entities)
        found: list[PiiFinding] = []
        for entity in chosen:
            if entity not in NLP_ENTITIES:
                found.extend(self.registry.get(entity).find(text))
        if self._ner is not None and any(entity in NLP_ENTITIES for entity in chosen):
            found.extend(self._ner.find(text, chosen))
        return resolve_overlaps(finding for finding in found if finding.score >= self.score_threshold)

    def redact(
        self, text: str, strategy: str | Mapping[str, str] = "tag", entities: Sequence[str] | None = None
    ) -> Redaction:
        """``text`` with each finding replaced as its entity's strategy says (see ``strategies``)."""
        self.check(strategy, entities)
        return self.replace(text, self.analyze(text, entities), strategy)

    def check(self, strategy: str | Mapping[str, str] = "tag", entities: Sequence[str] | None = None) -> None:
        """Raise :class:`PiiError` now for a bad strategy, entity or missing salt (before a long run)."""
        default, overrides = strategy_map(strategy, self.known_entities)
        if self.salt is None and "hash" in (default, *overrides.values()):
            raise PiiError(_NO_SALT, param="salt")
        if entities is not None:
            self.check_entities(entities)

    def replace(
        self, text: str, findings: Sequence[PiiFinding], strategy: str | Mapping[str, str]
    ) -> Redaction:
        """The redaction of ``text`` for findings already found in it (in text order, not overlapping)."""
        default, overrides = strategy_map(strategy, self.known_entities)
        pieces: list[str] = []
        position = 0
        drop = False
        for finding in findings:
            chosen = overrides.get(finding.entity, default)
            drop = drop or chosen == "drop"
            pieces.append(text[position : finding.start])
            pieces.append(self._replacement(finding, chosen))
            position = finding.end
        pieces.append(text[position:])
        return Redaction("".join(pieces), list(findings), drop)

    def tag(self, entity: str) -> str:
        """The short name of ``entity`` in tags and pseudonyms (``EMAIL_ADDRESS`` -> ``EMAIL``)."""
        return NLP_TAGS[entity] if entity in NLP_ENTITIES else self.registry.get(entity).tag

    def _replacement(self, finding: PiiFinding, strategy: str) -> str:
        if strategy == "mask":
            return mask(finding.text)
        if strategy == "mask_last4":
            return mask(finding.text, keep_last=4)
        tag = self.tag(finding.entity)
        if strategy != "hash":
            return f"<{tag}>"
        if self.salt is None:
            raise PiiError(_NO_SALT, param="salt")
        return pseudonym(tag, finding.entity, self._normalized(finding), self.salt)

    def _normalized(self, finding: PiiFinding) -> str:
        if finding.entity in NLP_ENTITIES:
            return " ".join(finding.text.split()).casefold()
        return self.registry.get(finding.entity).normalize(finding.text)

    def check_entities(self, entities: Sequence[str]) -> tuple[str, ...]:
        """``entities`` without duplicates, or :class:`PiiError` naming the unknown or unavailable one."""
        if isinstance(entities, str):
            entities = [entities]
        known = self.known_entities
        for entity in entities:
            if entity not in known:
                raise PiiError(f"unknown PII entity {entity!r}; known: {', '.join(known)}", param="entities")
            if entity in NLP_ENTITIES and self._ner is None:
                raise NlpUnavailable(
                    f"{entity} needs the NLP engine, which is off here (use_nlp=False, a language other than"
                    f" {', '.join(LANGUAGES)}, or no data extra: {EXTRA_HINT})",
                    param="entities",
                )
        return tuple(dict.fromkeys(entities))

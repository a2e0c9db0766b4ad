"""What a PII finding is, the recogniser base class, the errors, and the rule that settles overlaps.

Errors (all :class:`~llmops.errors.UserError`, so the CLI prints one line and the API answers 400):
:class:`PiiError` for a bad entity or strategy name or a missing salt, and its subclass
:class:`NlpUnavailable` when an NLP entity (PERSON, LOCATION, DATE_TIME) was asked for without the
``data`` extra.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import ClassVar

from llmops.errors import UserError

NLP_ENTITIES: tuple[str, ...] = ("PERSON", "LOCATION", "DATE_TIME")
"""Entities found by Presidio's spaCy NER (the ``data`` extra); every other entity is a pattern."""

NLP_TAGS: dict[str, str] = {"PERSON": "PERSON", "LOCATION": "LOCATION", "DATE_TIME": "DATE_TIME"}

EXTRA_HINT = "pip install 'llmops[data]'"


class PiiError(UserError):
    """A PII request that cannot run: unknown entity or strategy, hash without a salt, bad language."""


class NlpUnavailable(PiiError):
    """An NLP entity was asked for, but Presidio or the spaCy model is not installed."""


@dataclass(frozen=True)
class PiiFinding:
    """One piece of personal data: its entity, where it is (``text[start:end]``) and how sure we are."""

    entity: str
    start: int
    end: int
    text: str
    score: float


@dataclass(frozen=True)
class Redaction:
    """A redacted text, what was found in it, and whether the caller should drop the text/row."""

    text: str
    findings: list[PiiFinding]
    drop: bool


class Recognizer(ABC):
    """Finds one entity in a text with nothing beyond the standard library; one small class each.

    ``tag`` names the entity in the ``tag`` and ``hash`` strategies (``<EMAIL>``, ``<EMAIL_1a2b3c4d>``).
    ``normalize`` gives the form a pseudonym is computed from, so that ``4111 1111 1111 1111`` and
    ``4111-1111-1111-1111`` get the same one.
    """

    entity: ClassVar[str]
    tag: ClassVar[str]

    @abstractmethod
    def find(self, text: str) -> Iterator[PiiFinding]:
        """Every finding of this entity in ``text`` (overlaps between entities are settled later)."""

    def normalize(self, value: str) -> str:
        return " ".join(value.split())

    def _finding(self, text: str, start: int, end: int, score: float = 1.0) -> PiiFinding:
        return PiiFinding(self.entity, start, end, text[start:end], score)


def _rank(finding: PiiFinding) -> tuple[bool, int, float, int]:
    return (finding.entity not in NLP_ENTITIES, finding.end - finding.start, finding.score, -finding.start)


def resolve_overlaps(findings: Iterable[PiiFinding]) -> list[PiiFinding]:
    """Keep non-overlapping findings, in text order; where two overlap, one wins whole.

    The winner is, in this order: a pattern finding over an NLP one (patterns have exact boundaries
    and checksums, NER boundaries are fuzzy: a DATE_TIME inside a phone number loses), then the longer
    span (a card number inside a URL with credentials belongs to the URL), then the higher score, then
    the earlier start. The loser is dropped, not trimmed.
    """
    kept: list[PiiFinding] = []
    for finding in sorted(findings, key=_rank, reverse=True):
        if all(finding.end <= other.start or finding.start >= other.end for other in kept):
            kept.append(finding)
    return sorted(kept, key=lambda finding: finding.start)

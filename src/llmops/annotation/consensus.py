"""What an item's answers add up to when a queue is accepted, and the dataset row it becomes.

Rules (documented in docs/annotation.md):
- label: the most frequent; a tie goes to the label given first (the earliest answer among the tied).
- score: the mean of the scores given.
- correction: the most frequent text (exact match after trimming the ends); a tie goes to the earliest.
- agreement on the item: the share of its labels equal to the chosen label (None without labels).

The row: the item's row with the correction written into ``expected`` (into ``completion`` when the row
has a completion and no expected), and ``metadata.annotation`` holding the outcome.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from llmops.datasets.rows import Row

_T = TypeVar("_T")


@dataclass(frozen=True)
class Answer:
    """One annotator's answer on one item."""

    id: str
    item_id: str
    annotator: str
    label: str | None
    score: float | None
    correction: str | None
    comment: str | None
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "item_id": self.item_id,
            "annotator": self.annotator,
            "label": self.label,
            "score": self.score,
            "correction": self.correction,
            "comment": self.comment,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class Outcome:
    label: str | None
    score: float | None
    correction: str | None
    annotators: list[str]
    agreement: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "score": self.score,
            "correction": self.correction is not None,
            "annotators": self.annotators,
            "agreement": self.agreement,
        }


def most_frequent(values: Sequence[_T]) -> _T | None:
    """The most frequent value; among equally frequent ones, the one that appears first."""
    if not values:
        return None
    counts = Counter(values)
    top = max(counts.values())
    return next(value for value in values if counts[value] == top)


def outcome(answers: Sequence[Answer]) -> Outcome:
    """What ``answers`` (one item's) add up to; they are ordered by time here, whatever their order."""
    ordered = sorted(answers, key=lambda answer: (answer.created_at, answer.id))
    labels = [answer.label for answer in ordered if answer.label is not None]
    scores = [answer.score for answer in ordered if answer.score is not None]
    corrections = [answer.correction.strip() for answer in ordered if answer.correction is not None]
    label = most_frequent(labels)
    return Outcome(
        label=label,
        score=sum(scores) / len(scores) if scores else None,
        correction=most_frequent(corrections),
        annotators=[answer.annotator for answer in ordered],
        agreement=labels.count(label) / len(labels) if label is not None else None,
    )


def annotated_row(row: Row, result: Outcome, queue: str) -> Row:
    """A copy of ``row`` carrying the outcome (the stored item is left as it is)."""
    annotated: Row = copy.deepcopy(row)
    if result.correction is not None:
        target = "completion" if "completion" in annotated and "expected" not in annotated else "expected"
        annotated[target] = result.correction
    metadata = annotated.get("metadata")
    metadata = dict(metadata) if isinstance(metadata, dict) else {}
    metadata["annotation"] = {
        "queue": queue,
        "label": result.label,
        "score": result.score,
        "annotators": result.annotators,
        "agreement": result.agreement,
    }
    annotated["metadata"] = metadata
    return annotated

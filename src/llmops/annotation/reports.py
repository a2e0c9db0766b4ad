"""What a queue's status and agreement say, built from its answers (pure: no database here).

Which measure applies (see docs/annotation.md for how to read them):
- labels, exactly two annotators in the queue: Cohen's kappa over the items both labelled;
- labels, ``annotators_per_item`` of 2 or more: Fleiss' kappa over the items with that many labels;
- labels, any items with two labels or more (their number may vary): Krippendorff's alpha, nominal;
- scores: Krippendorff's alpha, interval.
A measure the data cannot support is None (e.g. one answer per item).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmops.annotation.agreement import cohen_kappa, fleiss_kappa, krippendorff_alpha
from llmops.annotation.consensus import Answer


@dataclass(frozen=True)
class AgreementReport:
    label_items: int = 0  # items with two labels or more
    label_annotators: int = 0
    cohen_kappa: float | None = None
    fleiss_kappa: float | None = None
    fleiss_items: int = 0
    label_alpha: float | None = None
    score_items: int = 0  # items with two scores or more
    score_alpha: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "labels": {
                "items": self.label_items,
                "annotators": self.label_annotators,
                "cohen_kappa": self.cohen_kappa,
                "fleiss_kappa": self.fleiss_kappa,
                "fleiss_items": self.fleiss_items,
                "krippendorff_alpha": self.label_alpha,
            },
            "scores": {"items": self.score_items, "krippendorff_alpha": self.score_alpha},
        }


@dataclass(frozen=True)
class AnnotatorCount:
    annotator: str
    answered: int
    skipped: int


@dataclass(frozen=True)
class QueueStatus:
    queue: dict[str, Any]
    items: int
    complete: int  # items with all the answers asked for
    partial: int  # items with some
    untouched: int  # items with none
    answers: int
    leased: int  # items handed out now and not yet answered
    annotators: list[AnnotatorCount] = field(default_factory=list)
    agreement: AgreementReport = field(default_factory=AgreementReport)

    def as_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "items": self.items,
            "complete": self.complete,
            "partial": self.partial,
            "untouched": self.untouched,
            "answers": self.answers,
            "leased": self.leased,
            "annotators": [vars(count) for count in self.annotators],
            "agreement": self.agreement.as_dict(),
        }


def agreement_report(answers: Sequence[Answer], annotators_per_item: int) -> AgreementReport:
    labels: dict[str, dict[str, str]] = {}
    scores: dict[str, list[float]] = {}
    for answer in answers:
        if answer.label is not None:
            labels.setdefault(answer.item_id, {})[answer.annotator] = answer.label
        if answer.score is not None:
            scores.setdefault(answer.item_id, []).append(answer.score)
    label_units: list[list[Hashable]] = [list(given.values()) for given in labels.values() if len(given) >= 2]
    score_units: list[list[Hashable]] = [list(given) for given in scores.values() if len(given) >= 2]
    annotators = sorted({annotator for given in labels.values() for annotator in given})
    fleiss_counts = [
        Counter(given.values()) for given in labels.values() if len(given) == annotators_per_item >= 2
    ]
    return AgreementReport(
        label_items=len(label_units),
        label_annotators=len(annotators),
        cohen_kappa=_cohen(labels, annotators),
        fleiss_kappa=fleiss_kappa(fleiss_counts),
        fleiss_items=len(fleiss_counts),
        label_alpha=krippendorff_alpha(label_units, "nominal"),
        score_items=len(score_units),
        score_alpha=krippendorff_alpha(score_units, "interval"),
    )


def _cohen(labels: Mapping[str, Mapping[str, str]], annotators: list[str]) -> float | None:
    if len(annotators) != 2:
        return None
    first, second = annotators
    return cohen_kappa(
        (given[first], given[second]) for given in labels.values() if first in given and second in given
    )


def queue_status(
    queue: dict[str, Any],
    items: int,
    answers_per_item: Mapping[str, int],
    skipped: Mapping[str, int],
    leased: int,
    answers: Sequence[Answer],
) -> QueueStatus:
    needed = int(queue["annotators_per_item"])
    complete = sum(1 for count in answers_per_item.values() if count >= needed)
    answered = Counter(answer.annotator for answer in answers)
    people = sorted(set(answered) | set(skipped))
    return QueueStatus(
        queue=queue,
        items=items,
        complete=complete,
        partial=len(answers_per_item) - complete,
        untouched=items - len(answers_per_item),
        answers=len(answers),
        leased=leased,
        annotators=[AnnotatorCount(name, answered[name], skipped.get(name, 0)) for name in people],
        agreement=agreement_report(answers, needed),
    )

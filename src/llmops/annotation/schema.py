"""What annotators are asked for on a queue (its label schema), and the check every answer passes.

A schema asks for any of: a label from ``categories``, a ``score`` within ``{min, max}`` (inclusive), and a
free-text ``correction`` (the output as it should have been); ``instructions`` tell annotators how to
judge. An answer gives at least one of the asked-for things and nothing that was not asked for; a
``comment`` is always allowed and never enough on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from llmops.errors import UserError

MAX_CATEGORIES = 50
MAX_LABEL_LENGTH = 200
MAX_CORRECTION_LENGTH = 100_000
MAX_COMMENT_LENGTH = 10_000


class InvalidSchema(UserError):
    """A label schema that asks for nothing, or whose categories or score range are malformed."""


class InvalidAnswer(UserError):
    """An answer that does not fit its queue's label schema (``param`` names the field)."""


@dataclass(frozen=True)
class LabelSchema:
    categories: tuple[str, ...] = ()
    score_min: float | None = None
    score_max: float | None = None
    correction: bool = False
    instructions: str | None = None

    def __post_init__(self) -> None:
        _check_categories(self.categories)
        if (self.score_min is None) != (self.score_max is None):
            raise InvalidSchema("a score range needs both min and max", param="score")
        if self.score_min is not None and self.score_max is not None:
            if not all(math.isfinite(value) for value in (self.score_min, self.score_max)):
                raise InvalidSchema("score min and max must be finite numbers", param="score")
            if self.score_min >= self.score_max:
                raise InvalidSchema(
                    f"score min ({self.score_min:g}) must be below max ({self.score_max:g})", param="score"
                )
        if not (self.categories or self.has_score or self.correction):
            raise InvalidSchema("a label schema asks for categories, a score range or a correction (or some)")

    @property
    def has_score(self) -> bool:
        return self.score_min is not None

    def as_dict(self) -> dict[str, Any]:
        """The stored (and REST) form: only what is asked for."""
        data: dict[str, Any] = {}
        if self.categories:
            data["categories"] = list(self.categories)
        if self.score_min is not None:
            data["score"] = {"min": self.score_min, "max": self.score_max}
        if self.correction:
            data["correction"] = True
        if self.instructions:
            data["instructions"] = self.instructions
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelSchema:
        score = data.get("score") or {}
        if not isinstance(score, dict):
            raise InvalidSchema("score must be an object {min, max}", param="score")
        return cls(
            categories=tuple(data.get("categories") or ()),
            score_min=_number(score.get("min")),
            score_max=_number(score.get("max")),
            correction=bool(data.get("correction", False)),
            instructions=data.get("instructions") or None,
        )

    def check_answer(self, label: str | None, score: float | None, correction: str | None) -> None:
        """Raise :class:`InvalidAnswer` unless the answer gives something asked for, and only that."""
        if label is not None:
            if not self.categories:
                raise InvalidAnswer("this queue asks for no label", param="label")
            if label not in self.categories:
                raise InvalidAnswer(
                    f"label {label!r} is not one of {', '.join(self.categories)}", param="label"
                )
        if score is not None:
            self._check_score(score)
        if correction is not None:
            if not self.correction:
                raise InvalidAnswer("this queue asks for no correction", param="correction")
            if len(correction) > MAX_CORRECTION_LENGTH:
                raise InvalidAnswer(
                    f"a correction holds at most {MAX_CORRECTION_LENGTH} characters", param="correction"
                )
        if label is None and score is None and correction is None:
            raise InvalidAnswer(f"an answer needs {self._wanted()}")

    def _check_score(self, score: float) -> None:
        if self.score_min is None or self.score_max is None:
            raise InvalidAnswer("this queue asks for no score", param="score")
        if not math.isfinite(score) or not self.score_min <= score <= self.score_max:
            raise InvalidAnswer(
                f"score {score:g} is outside {self.score_min:g}..{self.score_max:g}", param="score"
            )

    def _wanted(self) -> str:
        wanted = [
            name
            for name, asked in (
                ("a label", bool(self.categories)),
                ("a score", self.has_score),
                ("a correction", self.correction),
            )
            if asked
        ]
        return " or ".join(wanted)


def _check_categories(categories: tuple[str, ...]) -> None:
    if len(categories) > MAX_CATEGORIES:
        raise InvalidSchema(f"at most {MAX_CATEGORIES} categories", param="categories")
    for category in categories:
        if not isinstance(category, str) or not category.strip() or len(category) > MAX_LABEL_LENGTH:
            raise InvalidSchema(
                f"a category is a non-empty string of at most {MAX_LABEL_LENGTH} characters, "
                f"not {category!r}",
                param="categories",
            )
    if len(set(categories)) != len(categories):
        raise InvalidSchema("categories must be distinct", param="categories")


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidSchema(f"score min and max must be numbers, not {value!r}", param="score")
    return float(value)


def parse_score_range(text: str) -> tuple[float, float]:
    """``1-5``, ``0..1`` or ``-1..1`` (the CLI's ``--score``) as (min, max)."""
    cleaned = text.strip()
    low, sep, high = cleaned.partition("..")
    if not sep:
        low, sep, high = cleaned[1:].partition("-")
        low = cleaned[:1] + low
    try:
        return float(low), float(high)
    except ValueError:
        raise InvalidSchema(
            f"expected a score range such as 1-5 or 0..1, got {text!r}", param="score"
        ) from None

"""Steps that keep or remove whole rows: empty or non-text rows, length bounds, length outliers.

Lengths are measured over the text of a step's ``fields`` joined (see :func:`llmops.datasets.rows.row_text`)
in characters, whitespace-separated words, or tokens (cl100k by default, counted offline by
:class:`llmops.providers.tokens.TokenCounter`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, Literal

from pydantic import Field, model_validator

from llmops.datasets.cleaning.base import CleaningStep, StepContext, StepParams, StepReport
from llmops.datasets.rows import Row, field_texts, get_field, row_text

Unit = Literal["chars", "words", "tokens"]


def _measure(unit: Unit, model: str | None) -> Callable[[str], int]:
    """The length function for ``unit``; the token counter is built once per step."""
    if unit == "chars":
        return len
    if unit == "words":
        return lambda text: len(text.split())
    from llmops.providers.tokens import TokenCounter

    counter = TokenCounter()
    return lambda text: counter.count(text, model)


class DropEmptyParams(StepParams):
    require: Literal["all", "any"] | None = None
    """all: every field must hold text; any: at least one must. Left out: ``all`` when ``fields`` is
    given, ``any`` for the default fields (a row usually has only some of the conventional fields)."""

    @model_validator(mode="after")
    def _default_require(self) -> DropEmptyParams:
        if self.require is None:
            self.require = "all" if "fields" in self.model_fields_set else "any"
        return self


class DropEmpty(CleaningStep):
    """Removes rows without usable text: a field missing, empty, whitespace-only, or not text at all
    (a number or an object where text is expected)."""

    name = "drop_empty"
    Params = DropEmptyParams
    params: DropEmptyParams

    def apply(self, position: int, row: Row, report: StepReport) -> Row | None:
        fields = self.params.fields
        problems = [(path, problem) for path in fields if (problem := _text_problem(row, path))]
        if not problems or (self.params.require == "any" and len(problems) < len(fields)):
            return row
        if len(problems) > 1 and self.params.require == "any":
            reason = f"no text in any of {', '.join(fields)}"
        else:
            path, problem = problems[0]
            reason = f"field {path!r} is {problem}"
        report.record_removed(position, reason, row)
        return None


def _text_problem(row: Row, path: str) -> str | None:
    """Why ``path`` holds no usable text, or None when it does."""
    value = get_field(row, path)
    if value is None:
        return "missing"
    if isinstance(value, str):
        return None if value.strip() else ("empty" if not value else "whitespace-only")
    if isinstance(value, list):
        texts = list(field_texts(row, path))
        if not texts or not any(text.strip() for text in texts):
            return "empty" if not value else "without text"
        return None
    kinds = {bool: "a boolean", dict: "an object", int: "a number", float: "a number"}
    return f"{kinds.get(type(value), type(value).__name__)}, not text"


class LengthParams(StepParams):
    unit: Unit = "chars"
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)
    model: str | None = None
    """Whose tokenizer counts ``tokens`` (a model name known to quicktok); cl100k when left out."""

    @model_validator(mode="after")
    def _bounds(self) -> LengthParams:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class FilterLength(CleaningStep):
    """Keeps rows whose text length is within [min, max] (either bound may be left out)."""

    name = "filter_length"
    Params = LengthParams
    params: LengthParams

    def __init__(self, params: StepParams, context: StepContext) -> None:
        super().__init__(params, context)
        self._length = _measure(self.params.unit, self.params.model)

    def apply(self, position: int, row: Row, report: StepReport) -> Row | None:
        length = self._length(row_text(row, self.params.fields))
        unit = self.params.unit
        if self.params.min is not None and length < self.params.min:
            bound = f"below the minimum {self.params.min} ({unit})"
        elif self.params.max is not None and length > self.params.max:
            bound = f"above the maximum {self.params.max} ({unit})"
        else:
            return row
        report.record_removed(position, f"length {length} {bound}", row, group=f"length {bound}")
        return None


class OutlierParams(StepParams):
    unit: Unit = "chars"
    method: Literal["zscore", "iqr"] = "zscore"
    z: float = Field(default=3.0, gt=0)
    """zscore: rows further than ``z`` standard deviations from the mean length are removed."""
    k: float = Field(default=1.5, ge=0)
    """iqr: rows below Q1 - k*IQR or above Q3 + k*IQR are removed (Tukey's fences)."""
    model: str | None = None


class FilterOutliers(CleaningStep):
    """Removes rows whose length is an outlier among all rows, by z-score or interquartile range.

    ``scan`` keeps only a histogram of lengths (length -> count), so memory grows with the number of
    distinct lengths, not of rows; ``apply`` measures each row again and compares it with the bounds.
    """

    name = "filter_outliers"
    Params = OutlierParams
    params: OutlierParams
    needs_scan = True

    def __init__(self, params: StepParams, context: StepContext) -> None:
        super().__init__(params, context)
        self._length = _measure(self.params.unit, self.params.model)
        self._bounds: tuple[float, float] = (-math.inf, math.inf)
        self._details: dict[str, Any] = {}

    def scan(self, rows: Iterable[tuple[int, Row]]) -> None:
        histogram: Counter[int] = Counter(self._length(row_text(row, self.params.fields)) for _, row in rows)
        if not histogram:
            return
        if self.params.method == "zscore":
            mean, std = _mean_std(histogram)
            self._bounds = (mean - self.params.z * std, mean + self.params.z * std)
            self._details = {"mean": round(mean, 3), "std": round(std, 3), "z": self.params.z}
        else:
            q1, q3 = _quantile(histogram, 0.25), _quantile(histogram, 0.75)
            spread = self.params.k * (q3 - q1)
            self._bounds = (q1 - spread, q3 + spread)
            self._details = {"q1": q1, "q3": q3, "k": self.params.k}

    def apply(self, position: int, row: Row, report: StepReport) -> Row | None:
        length = self._length(row_text(row, self.params.fields))
        lower, upper = self._bounds
        method = self.params.method
        if length < lower:
            bound = f"below the lower bound {_number(lower)} ({method})"
        elif length > upper:
            bound = f"above the upper bound {_number(upper)} ({method})"
        else:
            return row
        report.record_removed(position, f"length {length} {bound}", row, group=f"length {bound}")
        return None

    def finish(self, report: StepReport) -> None:
        lower, upper = self._bounds
        report.details.update(
            {
                "method": self.params.method,
                "unit": self.params.unit,
                "lower": _number(lower) if math.isfinite(lower) else None,
                "upper": _number(upper) if math.isfinite(upper) else None,
                **self._details,
            }
        )


def _number(value: float) -> float | int:
    """A bound as shown to people: an integer when it is one, else rounded to 2 places."""
    return int(value) if float(value).is_integer() else round(value, 2)


def _mean_std(histogram: Counter[int]) -> tuple[float, float]:
    """Mean and population standard deviation of the lengths described by ``histogram``."""
    count = sum(histogram.values())
    mean = sum(length * times for length, times in histogram.items()) / count
    variance = sum(times * (length - mean) ** 2 for length, times in histogram.items()) / count
    return mean, math.sqrt(variance)


def _quantile(histogram: Counter[int], fraction: float) -> float:
    """The ``fraction`` quantile with linear interpolation between order statistics (numpy's default)."""
    count = sum(histogram.values())
    rank = (count - 1) * fraction
    low_index, weight = int(rank), rank - int(rank)
    low = _order_statistic(histogram, low_index)
    if weight == 0:
        return float(low)
    high = _order_statistic(histogram, low_index + 1)
    return low + weight * (high - low)


def _order_statistic(histogram: Counter[int], index: int) -> int:
    """The ``index``-th smallest length (from 0)."""
    seen = 0
    for length in sorted(histogram):
        seen += histogram[length]
        if index < seen:
            return length
    raise IndexError(index)

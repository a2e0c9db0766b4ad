"""Exact de-duplication: a row whose key (whole row, or chosen fields) was seen before is removed.

The step streams: it keeps a 16-byte BLAKE2b digest of each distinct key with the position of its
first row (about 130 bytes per distinct row in CPython, ~130 MB for a million), never the rows.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any, Literal

import orjson
from pydantic import model_validator

from llmops.datasets.cleaning.base import CleaningStep, StepContext, StepParams, StepReport
from llmops.datasets.rows import Row, get_field

WHOLE_ROW = "*"
_LARGEST_GROUPS = 10


class DedupParams(StepParams):
    fields: list[str] = [WHOLE_ROW]
    """The fields that make two rows duplicates; ``*`` (the default) means the whole row."""
    normalise: bool = False
    """Compare text case- and whitespace-insensitively ("Hello  World" equals "hello world")."""
    keep: Literal["first"] = "first"

    @model_validator(mode="after")
    def _whole_row_alone(self) -> DedupParams:
        if WHOLE_ROW in self.fields and len(self.fields) > 1:
            raise ValueError(f"{WHOLE_ROW!r} (the whole row) cannot be combined with other fields")
        return self


class DedupExact(CleaningStep):
    """Keeps the first row of each group of equal rows and removes the others."""

    name = "dedup_exact"
    Params = DedupParams
    params: DedupParams

    def __init__(self, params: StepParams, context: StepContext) -> None:
        super().__init__(params, context)
        self._first: dict[bytes, int] = {}
        self._copies: Counter[int] = Counter()

    def apply(self, position: int, row: Row, report: StepReport) -> Row | None:
        digest = hashlib.blake2b(self._key(row), digest_size=16).digest()
        first = self._first.setdefault(digest, position)
        if first == position:
            return row
        self._copies[first] += 1
        report.record_removed(position, f"duplicate of row {first}", row, group="duplicate")
        return None

    def _key(self, row: Row) -> bytes:
        value: Any = (
            row if self.params.fields == [WHOLE_ROW] else [get_field(row, f) for f in self.params.fields]
        )
        if self.params.normalise:
            value = _normalised(value)
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)

    def finish(self, report: StepReport) -> None:
        report.details.update(
            {
                "distinct": len(self._first),
                "groups": len(self._copies),
                "largest_groups": [
                    {"kept": first, "removed": copies}
                    for first, copies in self._copies.most_common(_LARGEST_GROUPS)
                ],
            }
        )
        self._first.clear()  # the digests are the step's only large state; free them now


def _normalised(value: Any) -> Any:
    """``value`` with every string case-folded and its whitespace runs collapsed (recursively)."""
    if isinstance(value, str):
        return " ".join(value.split()).casefold()
    if isinstance(value, list):
        return [_normalised(item) for item in value]
    if isinstance(value, dict):
        return {key: _normalised(item) for key, item in value.items()}
    return value

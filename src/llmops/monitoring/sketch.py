"""A mergeable quantile sketch with a relative-error guarantee (the idea of DDSketch).

A positive value ``x`` goes into the bucket ``ceil(log(x) / log(gamma))`` with
``gamma = (1 + a) / (1 - a)``; any quantile read back is within a relative error ``a`` of a true value
of the data (here ``a`` = 1%: a p95 of 812 ms is reported between 804 and 820 ms). Two sketches merge by
adding their bucket counts, so per-minute sketches from several replicas add up to the exact sketch of
all their values: that is what lets a dashboard answer from rollups instead of scanning traces.
Zero and negative values are counted in a zero bucket (latencies are never below zero).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

RELATIVE_ACCURACY = 0.01
_GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LOG_GAMMA = math.log(_GAMMA)
_MIN_VALUE = 1e-6  # values below this (in ms: a nanosecond) count as zero


def bucket_of(value: float) -> int | None:
    """The bucket of ``value``; None for the zero bucket."""
    if value < _MIN_VALUE:
        return None
    return math.ceil(math.log(value) / _LOG_GAMMA)


class QuantileSketch:
    __slots__ = ("bins", "count", "zeros")

    def __init__(self) -> None:
        self.bins: dict[int, int] = {}
        self.zeros = 0
        self.count = 0

    def add(self, value: float) -> None:
        self.add_key(bucket_of(value))

    def add_key(self, key: int | None) -> None:
        """Count a value by its bucket (:func:`bucket_of`): one logarithm for several sketches."""
        self.count += 1
        if key is None:
            self.zeros += 1
            return
        self.bins[key] = self.bins.get(key, 0) + 1

    def merge(self, other: QuantileSketch) -> None:
        self.count += other.count
        self.zeros += other.zeros
        bins = self.bins
        for key, count in other.bins.items():
            bins[key] = bins.get(key, 0) + count

    def quantile(self, q: float) -> float | None:
        """The value at quantile ``q`` (0..1), None for an empty sketch."""
        if self.count == 0:
            return None
        rank = q * (self.count - 1)
        seen = self.zeros
        if rank < seen:
            return 0.0
        for key in sorted(self.bins):
            seen += self.bins[key]
            if seen > rank:
                # the bucket (gamma^(k-1), gamma^k]: its midpoint in relative terms
                return 2 * _GAMMA**key / (_GAMMA + 1)
        return 2 * _GAMMA ** max(self.bins) / (_GAMMA + 1)

    def to_json(self) -> dict[str, Any]:
        """Dense and compact: ``{"o": lowest bucket, "c": [counts from it up], "z": zeros}`` (a list of
        small integers decodes and merges far faster than a mapping, which is what a query over
        thousands of rollup rows spends its time on)."""
        if not self.bins:
            return {"o": 0, "c": [], "z": self.zeros}
        low, high = min(self.bins), max(self.bins)
        bins = self.bins
        return {"o": low, "c": [bins.get(key, 0) for key in range(low, high + 1)], "z": self.zeros}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> QuantileSketch:
        sketch = cls()
        if data:
            sketch.merge_json(data)
        return sketch

    def merge_json(self, data: Mapping[str, Any]) -> None:
        """Merge a sketch in its JSON form without building it first."""
        offset = int(data.get("o") or 0)
        bins = self.bins
        added = 0
        for index, count in enumerate(data.get("c") or ()):
            if count:
                key = offset + index
                bins[key] = bins.get(key, 0) + count
                added += count
        zeros = int(data.get("z") or 0)
        self.zeros += zeros
        self.count += added + zeros

    @classmethod
    def of(cls, values: Iterable[float]) -> QuantileSketch:
        sketch = cls()
        for value in values:
            sketch.add(value)
        return sketch

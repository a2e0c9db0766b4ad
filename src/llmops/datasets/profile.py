"""What a dataset version looks like: size, fields, text lengths, languages, duplicates and PII.

One pass over the rows computes what is exact and cheap (row count, field coverage and types, length
distributions, exact duplicates by a 16-byte digest per row). Language identification, near-duplicate
detection and PII scanning are estimates: over every row by default, or over a seeded uniform sample
(reservoir) of ``sample`` rows, which the profile states. When the data extra is missing, the parts
that need it are left out with a note instead of failing the whole profile.
"""

from __future__ import annotations

import hashlib
import math
import random
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from llmops.datasets.cleaning.base import MissingExtraError
from llmops.datasets.rows import TEXT_FIELDS, Row, canonical_json, row_text
from llmops.errors import UserError
from llmops.progress import Progress, no_progress

if TYPE_CHECKING:
    from llmops.datasets.cleaning.near_dedup import NearDuplicateIndex
    from llmops.datasets.language import LanguageDetector
    from llmops.pii import PiiService

HISTOGRAM_BUCKETS = 10
TOP_LANGUAGES = 10
LANGUAGE_MIN_CHARS = 20
_PROGRESS_EVERY = 1000
_JSON_TYPES: dict[type, str] = {
    str: "string",
    bool: "boolean",
    int: "number",
    float: "number",
    dict: "object",
    list: "array",
    type(None): "null",
}


@dataclass
class HistogramBucket:
    low: float
    high: float
    count: int
    open_ended: bool = False
    """The last bucket when lengths have a long tail: everything above the 95th percentile."""


@dataclass
class Distribution:
    """Summary statistics of lengths and a histogram (equal-width buckets up to p95 or max)."""

    min: float
    p5: float
    p25: float
    median: float
    p75: float
    p95: float
    max: float
    mean: float
    histogram: list[HistogramBucket]

    @classmethod
    def of(cls, values: Sequence[int]) -> Distribution | None:
        if not values:
            return None
        ordered = sorted(values)
        quantile = _quantiles(ordered)
        return cls(
            min=ordered[0],
            p5=quantile(0.05),
            p25=quantile(0.25),
            median=quantile(0.5),
            p75=quantile(0.75),
            p95=quantile(0.95),
            max=ordered[-1],
            mean=sum(ordered) / len(ordered),
            histogram=_histogram(ordered, quantile(0.95)),
        )


def _quantiles(ordered: Sequence[int]) -> Any:
    def quantile(q: float) -> float:
        position = q * (len(ordered) - 1)
        low, high = math.floor(position), math.ceil(position)
        return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))

    return quantile


def _histogram(ordered: Sequence[int], p95: float) -> list[HistogramBucket]:
    """Equal-width buckets from min to max, or to p95 plus an open bucket when the tail is long."""
    low, high = ordered[0], ordered[-1]
    tail = high > 3 * p95 and p95 > low
    top = p95 if tail else high
    width = max(math.ceil((top - low) / HISTOGRAM_BUCKETS), 1)
    count = min(HISTOGRAM_BUCKETS, int((top - low) // width) + 1)
    buckets = [HistogramBucket(low + i * width, low + (i + 1) * width, 0) for i in range(count)]
    if tail:
        buckets.append(HistogramBucket(top, high, 0, open_ended=True))
    for value in ordered:
        index = min(int((value - low) // width), count - 1) if value <= top else len(buckets) - 1
        buckets[index].count += 1
    return buckets


@dataclass
class FieldCoverage:
    name: str
    rows: int
    share: float
    types: dict[str, int]


@dataclass
class NearDuplicateSummary:
    rows_checked: int
    duplicates: int
    """Rows that are not their cluster's representative (what ``dedup_near`` would remove)."""
    rate: float
    clusters: int
    threshold: float
    shingle: int


@dataclass
class DatasetProfile:
    rows: int
    text_fields: list[str]
    fields: list[FieldCoverage] = field(default_factory=list)
    chars: Distribution | None = None
    words: Distribution | None = None
    exact_duplicates: int = 0
    exact_duplicate_rate: float = 0.0
    analysed_rows: int = 0
    sampled: bool = False
    languages: dict[str, float] | None = None
    near_duplicates: NearDuplicateSummary | None = None
    pii: dict[str, float] | None = None
    """Entity -> share of analysed rows with at least one finding of it."""
    pii_rows: float | None = None
    """Share of analysed rows with any finding."""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Analyses:
    """Language, near-duplicate and PII estimates, fed one text at a time."""

    def __init__(self, pii: PiiService | None, near_duplicates: bool, notes: list[str]) -> None:
        self.rows = 0
        self.languages: Counter[str] = Counter()
        self.entities: Counter[str] = Counter()
        self.rows_with_pii = 0
        self.pii = pii
        self.detector = _optional(notes, "language mix", _detector)
        self.index: NearDuplicateIndex | None = None
        if near_duplicates:
            self.index = _optional(notes, "near-duplicates", _near_index)

    def add(self, position: int, text: str) -> None:
        self.rows += 1
        if self.detector is not None:
            self.languages[self.detector.detect(text)[0]] += 1
        if self.index is not None:
            self.index.add(position, text)
        if self.pii is not None:
            found = {finding.entity for finding in self.pii.analyze(text)}
            self.entities.update(found)
            self.rows_with_pii += bool(found)

    def fill(self, profile: DatasetProfile, progress: Progress) -> None:
        profile.analysed_rows = self.rows
        share = _share(self.rows)
        if self.detector is not None:
            top = self.languages.most_common(TOP_LANGUAGES)
            profile.languages = {language: share(count) for language, count in top}
            other = self.rows - sum(count for _, count in top)
            if other:
                profile.languages["other"] = share(other)
        if self.index is not None:
            result = self.index.result(progress)
            settings = self.index.settings
            profile.near_duplicates = NearDuplicateSummary(
                self.rows, result.removed, share(result.removed), len(result.clusters),
                settings.threshold, settings.shingle,
            )  # fmt: skip
        if self.pii is not None:
            profile.pii = {entity: share(count) for entity, count in self.entities.most_common()}
            profile.pii_rows = share(self.rows_with_pii)


def _share(total: int) -> Any:
    return lambda count: round(count / total, 6) if total else 0.0


def _optional(notes: list[str], what: str, build: Any) -> Any:
    try:
        return build()
    except MissingExtraError as exc:
        notes.append(f"{what} left out: {exc}")
        return None


def _detector() -> LanguageDetector:
    from llmops.datasets.language import LanguageDetector

    return LanguageDetector(min_chars=LANGUAGE_MIN_CHARS)


def _near_index() -> NearDuplicateIndex:
    from llmops.datasets.cleaning.near_dedup import NearDuplicateIndex, NearDuplicateSettings

    return NearDuplicateIndex(NearDuplicateSettings())


def profile_rows(
    rows: Iterable[Row],
    *,
    pii: PiiService | None = None,
    near_duplicates: bool = True,
    sample: int | None = None,
    progress: Progress = no_progress,
    fields: Sequence[str] = TEXT_FIELDS,
    seed: int = 0,
) -> DatasetProfile:
    """Profile ``rows`` in one pass. ``pii`` None leaves PII rates out (pass ``PiiService(use_nlp=False)``
    for the fast pattern entities); ``sample`` bounds the rows that language, near-duplicate and PII
    estimates look at (a seeded uniform sample; None: all rows). ``progress`` hears of the sample and
    near-duplicate stages; reading the rows is the caller's to report (it knows the total)."""
    if sample is not None and sample < 1:
        raise UserError(f"sample must be at least 1, not {sample}", param="sample")
    profile = DatasetProfile(rows=0, text_fields=list(fields))
    analyses = _Analyses(pii, near_duplicates, profile.notes)
    exact = _ExactCounts()
    reservoir: list[tuple[int, str]] = []
    chooser = random.Random(seed)
    for position, row in enumerate(rows):
        text = row_text(row, fields)
        exact.add(row, text)
        if sample is None:
            analyses.add(position, text)
        elif len(reservoir) < sample:
            reservoir.append((position, text))
        elif (slot := chooser.randrange(position + 1)) < sample:
            reservoir[slot] = (position, text)
    exact.fill(profile)
    if sample is not None:
        profile.sampled = profile.rows > sample
        reservoir.sort()
        for done, (position, text) in enumerate(reservoir):
            if done % _PROGRESS_EVERY == 0:
                progress("profile: sample", done, len(reservoir))
            analyses.add(position, text)
        progress("profile: sample", len(reservoir), len(reservoir))
    analyses.fill(profile, progress)
    return profile


class _ExactCounts:
    """What one pass counts exactly: field coverage and types, lengths, exact duplicates (a digest each)."""

    def __init__(self) -> None:
        self.coverage: dict[str, Counter[str]] = {}
        self.chars, self.words = array("q"), array("q")
        self.seen: set[bytes] = set()
        self.duplicates = 0

    def add(self, row: Row, text: str) -> None:
        for name, value in row.items():
            self.coverage.setdefault(name, Counter())[_JSON_TYPES.get(type(value), "other")] += 1
        digest = hashlib.blake2b(canonical_json(row), digest_size=16).digest()
        self.duplicates += digest in self.seen
        self.seen.add(digest)
        self.chars.append(len(text))
        self.words.append(len(text.split()))

    def fill(self, profile: DatasetProfile) -> None:
        profile.rows = len(self.chars)
        share = _share(profile.rows)
        profile.fields = sorted(
            (
                FieldCoverage(
                    name, sum(types.values()), share(sum(types.values())), dict(types.most_common())
                )
                for name, types in self.coverage.items()
            ),
            key=lambda item: (-item.rows, item.name),
        )
        profile.chars = Distribution.of(self.chars)
        profile.words = Distribution.of(self.words)
        profile.exact_duplicates = self.duplicates
        profile.exact_duplicate_rate = share(self.duplicates)

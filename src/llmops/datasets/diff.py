"""What changed between two dataset versions: rows added, removed, changed and unchanged.

Rows compare by content hash, as multisets (a row present twice in one version and once in the other
counts once as removed). A removed and an added row that share a *key* (``--key``; by default the
first of ``id``, ``metadata.id``, ``metadata.trace_id``, ``input``, ``prompt`` that every such row has)
are one changed row instead. With no key in common, an edit shows as one removal and one addition.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from llmops.datasets.repository import DatasetRepository, VersionInfo
from llmops.datasets.rows import Row, get_field

KEY_CANDIDATES = ("id", "metadata.id", "metadata.trace_id", "input", "prompt")
PAGE = 1000


@dataclass
class DatasetDiff:
    base: str
    other: str
    key: str | None
    added: int = 0
    removed: int = 0
    changed: int = 0
    unchanged: int = 0
    examples: dict[str, list[Any]] = field(
        default_factory=lambda: {"added": [], "removed": [], "changed": []}
    )

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "other": self.other,
            "key": self.key,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "examples": self.examples,
        }


def diff_versions(
    repository: DatasetRepository,
    base: VersionInfo,
    other: VersionInfo,
    *,
    key: str | None = None,
    examples: int = 5,
) -> DatasetDiff:
    before, after = repository.hash_counts(base.id), repository.hash_counts(other.id)
    removed_hashes = before - after
    added_hashes = after - before
    result = DatasetDiff(base.ref, other.ref, key)
    result.unchanged = sum((before & after).values())
    removed_rows = dict(_rows(repository, list(removed_hashes)))
    key = key or _common_key(removed_rows, repository, list(added_hashes))
    result.key = key
    by_key: dict[bytes, list[str]] = {}
    if key is not None:
        for row_hash, row in removed_rows.items():
            value = get_field(row, key)
            if value is not None:
                by_key.setdefault(_digest(value), []).extend([row_hash] * removed_hashes[row_hash])
    paired: Counter[str] = Counter()
    for row_hash, row in _rows(repository, list(added_hashes)):
        for _ in range(added_hashes[row_hash]):
            waiting = by_key.get(_digest(get_field(row, key))) if key is not None else None
            if waiting:
                before_hash = waiting.pop()
                paired[before_hash] += 1
                result.changed += 1
                _example(result, "changed", examples, {"before": removed_rows[before_hash], "after": row})
            else:
                result.added += 1
                _example(result, "added", examples, row)
    for row_hash, row in removed_rows.items():
        left = removed_hashes[row_hash] - paired[row_hash]
        result.removed += left
        if left > 0:
            _example(result, "removed", examples, row)
    return result


def _example(result: DatasetDiff, kind: str, limit: int, value: Any) -> None:
    if len(result.examples[kind]) < limit:
        result.examples[kind].append(value)


def _rows(repository: DatasetRepository, hashes: Sequence[str]) -> Iterator[tuple[str, Row]]:
    for start in range(0, len(hashes), PAGE):
        found = repository.rows_by_hash(hashes[start : start + PAGE])
        for row_hash in hashes[start : start + PAGE]:
            yield row_hash, found[row_hash]


def _common_key(removed: dict[str, Row], repository: DatasetRepository, added: Sequence[str]) -> str | None:
    """The first candidate every changed row has (looking at up to a thousand added rows)."""
    if not removed or not added:
        return None
    sample = [row for _, row in _rows(repository, list(added[:PAGE]))] + list(removed.values())
    for candidate in KEY_CANDIDATES:
        if all(get_field(row, candidate) is not None for row in sample):
            return candidate
    return None


def _digest(value: Any) -> bytes:
    return hashlib.blake2b(orjson.dumps(value, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()

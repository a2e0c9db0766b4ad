"""Scan (and optionally redact) a file: plain text (one text per line), JSONL (one object per line) or
CSV (with a header). What ``llmops pii scan`` runs; it streams, so a file of any size fits in memory.

Without ``fields`` every string of a record is scanned (every CSV column, every string at any depth
of a JSON object); with ``fields`` only those (dotted paths into JSON objects, column names in CSV).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from llmops.datasets.rows import map_texts
from llmops.pii.base import PiiError, PiiFinding
from llmops.pii.service import PiiService
from llmops.pii.strategies import mask
from llmops.progress import Progress, no_progress

FORMATS = ("text", "jsonl", "csv")
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}


@dataclass
class EntityCount:
    count: int = 0
    examples: list[str] = field(default_factory=list)


@dataclass
class FileScan:
    """What a scan found: counts per entity with a few masked examples, and what was written."""

    path: str
    format: str
    records: int = 0
    records_with_pii: int = 0
    dropped: int = 0
    entities: dict[str, EntityCount] = field(default_factory=dict)
    nlp: bool = False
    skipped_entities: list[str] = field(default_factory=list)
    written: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "records": self.records,
            "records_with_pii": self.records_with_pii,
            "dropped": self.dropped,
            "entities": {name: vars(count) for name, count in sorted(self.entities.items())},
            "nlp": self.nlp,
            "skipped_entities": self.skipped_entities,
            "written": self.written,
        }


def file_format(path: Path) -> str:
    """``jsonl`` for .jsonl/.ndjson, ``csv`` for .csv, else ``text``."""
    return _SUFFIXES.get(path.suffix.lower(), "text")


@dataclass
class _Scanner:
    service: PiiService
    entities: Sequence[str] | None
    strategy: str | Mapping[str, str] | None
    examples: int
    result: FileScan
    hit: bool = False
    drop: bool = False

    def redact(self, text: str) -> str:
        """The text as written out; counts what was found and notes whether the record must go."""
        findings = self.service.analyze(text, self.entities)
        for finding in findings:
            self._count(finding)
        if not findings:
            return text
        self.hit = True
        if self.strategy is None:
            return text
        redaction = self.service.replace(text, findings, self.strategy)
        self.drop = self.drop or redaction.drop
        return redaction.text

    def end_record(self, sink: IO[str] | None, output: str) -> bool:
        """Count the record that was just redacted and write ``output`` unless it is dropped."""
        result = self.result
        result.records += 1
        result.records_with_pii += int(self.hit)
        result.dropped += int(self.drop)
        keep = not self.drop
        if sink is not None and keep:
            sink.write(output)
        self.hit = self.drop = False
        return keep

    def _count(self, finding: PiiFinding) -> None:
        entry = self.result.entities.setdefault(finding.entity, EntityCount())
        entry.count += 1
        shown = mask(finding.text, keep_last=2 if sum(c.isalnum() for c in finding.text) >= 8 else 0)
        if len(entry.examples) < self.examples and shown not in entry.examples:
            entry.examples.append(shown)


def scan_file(
    path: Path,
    service: PiiService,
    *,
    fields: Sequence[str] | None = None,
    entities: Sequence[str] | None = None,
    strategy: str | Mapping[str, str] | None = None,
    out: Path | None = None,
    examples: int = 3,
    progress: Progress = no_progress,
) -> FileScan:
    """Scan ``path``; with ``strategy`` and ``out``, write the redacted file (dropped records left out)."""
    if strategy is not None:
        service.check(strategy, entities)
    elif entities is not None:
        service.check_entities(entities)
    kind = file_format(path)
    if out is not None and out.resolve() == path.resolve():
        raise PiiError("--out must not be the file being scanned", param="out")
    result = FileScan(
        str(path), kind, nlp=service.nlp_available, skipped_entities=list(service.skipped_entities)
    )
    scanner = _Scanner(service, entities, strategy, examples, result)
    total = path.stat().st_size
    with path.open("rb") as source:
        lines = _lines(source, lambda done: progress("scanning", done, total))
        if out is None:
            _run(kind, lines, scanner, fields, None)
        else:
            partial = out.with_name(out.name + ".partial")
            with partial.open("w", encoding="utf-8", newline="") as sink:
                _run(kind, lines, scanner, fields, sink)
            partial.replace(out)
            result.written = str(out)
    return result


def _lines(source: IO[bytes], advance: Callable[[int], None]) -> Iterator[str]:
    done = 0
    for number, raw in enumerate(source, start=1):
        done += len(raw)
        if number % 256 == 0:
            advance(done)
        yield raw.decode("utf-8", errors="replace")
    advance(done)


def _run(
    kind: str, lines: Iterator[str], scanner: _Scanner, fields: Sequence[str] | None, sink: IO[str] | None
) -> None:
    if kind == "csv":
        _run_csv(lines, scanner, fields, sink)
        return
    for number, line in enumerate(lines, start=1):
        body = line.rstrip("\r\n")
        if kind == "text":
            scanner.end_record(sink, scanner.redact(body) + line[len(body) :])
        elif body.strip():
            row = _json_object(body, number)
            redacted = (
                _map_strings(row, scanner.redact)
                if fields is None
                else map_texts(row, fields, scanner.redact)
            )
            scanner.end_record(sink, orjson.dumps(redacted).decode() + "\n")


def _json_object(body: str, number: int) -> dict[str, Any]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PiiError(f"line {number}: not JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise PiiError(f"line {number}: expected a JSON object")
    return value


def _map_strings(value: Any, transform: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return transform(value)
    if isinstance(value, list):
        return [_map_strings(item, transform) for item in value]
    if isinstance(value, dict):
        return {key: _map_strings(item, transform) for key, item in value.items()}
    return value


def _run_csv(
    lines: Iterator[str], scanner: _Scanner, fields: Sequence[str] | None, sink: IO[str] | None
) -> None:
    reader = csv.DictReader(lines)
    header = list(reader.fieldnames or [])
    unknown = [name for name in fields or () if name not in header]
    if unknown:
        raise PiiError(f"--fields: no column {', '.join(unknown)} in the CSV header ({', '.join(header)})")
    columns = list(fields) if fields is not None else header
    writer = csv.DictWriter(sink, fieldnames=header) if sink is not None else None
    if writer is not None:
        writer.writeheader()
    for record in reader:
        for column in columns:
            value = record.get(column)
            if isinstance(value, str) and value:
                record[column] = scanner.redact(value)
        if scanner.end_record(None, "") and writer is not None:
            writer.writerow(record)

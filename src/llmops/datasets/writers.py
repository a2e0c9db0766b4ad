"""Writing rows as JSONL, CSV/TSV or Parquet, streaming, so that :func:`read_rows` reads back the same rows.

JSONL is one object a line. CSV and Parquet need their columns before the first row is written, and
rows are free-form, so the columns are the caller's ``columns`` or the keys of the first batch (in
order of appearance), plus a last column ``_extra``: a JSON object with whatever a row has that its
columns cannot hold (keys first seen after the first batch, and values of the wrong kind).

A column is *text* when every value of its first batch is a string (non-empty in CSV, where an empty
cell means "absent"): its cells are the strings themselves. Any other column, and always ``messages``,
``metadata`` and ``variables``, is *JSON*: its cells are JSON-encoded values, and in CSV its header
is ``NAME:json`` (the three named ones keep their name). Parquet stores every column as a string
column and lists the JSON ones in the schema metadata (``llmops.json_columns``); a null cell (or an
empty CSV cell) is an absent field. Keys that would read back as something else (ending in ``:json``,
``_extra``, starting with ``metadata.`` or ``variables.``, empty or padded with spaces) go to ``_extra``.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO, Any

import orjson

from llmops.datasets.readers import (
    EXTRA_COLUMN,
    JSON_COLUMNS,
    JSON_SUFFIX,
    NESTED_PREFIXES,
    PARQUET_JSON_KEY,
)
from llmops.datasets.rows import Row
from llmops.errors import UserError

WRITE_FORMATS: tuple[str, ...] = ("jsonl", "csv", "tsv", "parquet")
BATCH_ROWS = 4096
"""Rows per Parquet row group and per column-planning batch: bounded memory, reasonable groups."""


class WriteError(UserError):
    """A write that cannot be done (unknown format, Parquet without the data extra, an unwritable path)."""


def write_rows(
    rows: Iterable[Row],
    out: Path | IO[bytes],
    format: str,
    *,
    columns: Sequence[str] | None = None,
    batch_size: int = BATCH_ROWS,
) -> int:
    """Write ``rows`` to ``out`` in ``format`` and return how many were written.

    ``out`` is a path (written to ``<name>.partial`` and renamed once complete, removed on error) or an
    open binary stream such as ``sys.stdout.buffer`` (left open). ``columns`` fixes the CSV/Parquet
    columns and their order; left out, they come from the first ``batch_size`` rows.
    """
    if format not in WRITE_FORMATS:
        raise WriteError(f"unknown format {format!r}; use one of {', '.join(WRITE_FORMATS)}", param="format")
    if not isinstance(out, Path):
        return _write(rows, out, format, columns, batch_size)
    partial = out.with_name(out.name + ".partial")
    try:
        with partial.open("wb") as stream:
            count = _write(rows, stream, format, columns, batch_size)
        os.replace(partial, out)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise WriteError(f"{out}: cannot write: {error.strerror or error}") from error
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return count


def _write(
    rows: Iterable[Row], stream: IO[bytes], format: str, columns: Sequence[str] | None, batch_size: int
) -> int:
    if format == "jsonl":
        count = 0
        for row in rows:
            stream.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
            count += 1
        return count
    batches = _batches(rows, batch_size)
    first = next(batches, [])
    layout = _Layout.plan(first, columns, empty_text=format == "parquet")
    if format == "parquet":
        return _write_parquet(layout, first, batches, stream)
    return _write_csv(layout, first, batches, stream, "\t" if format == "tsv" else ",")


def _batches(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


@dataclass(frozen=True)
class _Column:
    key: str
    json: bool


@dataclass(frozen=True)
class _Layout:
    """Which fields get a column and of which kind; splits each row into cells and its ``_extra``."""

    columns: tuple[_Column, ...]
    empty_text: bool  # whether a text cell can hold "" (Parquet) or "" means absent (CSV)
    keys: frozenset[str]

    @classmethod
    def plan(cls, first: list[Row], columns: Sequence[str] | None, *, empty_text: bool) -> _Layout:
        keys = list(columns) if columns is not None else list(dict.fromkeys(k for row in first for k in row))
        planned = []
        for key in dict.fromkeys(keys):
            if not _plain_key(key):
                continue
            values = [row[key] for row in first if key in row]
            text = key not in JSON_COLUMNS and all(_fits_text(value, empty_text) for value in values)
            planned.append(_Column(key, json=not text))
        return cls(tuple(planned), empty_text, frozenset(column.key for column in planned))

    def cells(self, row: Row) -> list[str | None]:
        extra = {key: value for key, value in row.items() if key not in self.keys}
        cells: list[str | None] = []
        for column in self.columns:
            if column.key not in row:
                cells.append(None)
                continue
            value = row[column.key]
            if column.json:
                cells.append(orjson.dumps(value).decode())
            elif _fits_text(value, self.empty_text):
                cells.append(value)
            else:
                extra[column.key] = value
                cells.append(None)
        # an empty row still needs a cell: a CSV record of empty cells reads as a blank line
        empty = all(cell is None for cell in cells)
        cells.append(orjson.dumps(extra).decode() if extra or empty else None)
        return cells

    def header(self, *, suffix_json: bool) -> list[str]:
        names = [
            column.key + JSON_SUFFIX
            if suffix_json and column.json and column.key not in JSON_COLUMNS
            else column.key
            for column in self.columns
        ]
        return [*names, EXTRA_COLUMN]


def _plain_key(key: str) -> bool:
    """Whether ``key`` reads back as itself when it names a column."""
    return (
        bool(key)
        and key == key.strip()
        and key != EXTRA_COLUMN
        and not key.endswith(JSON_SUFFIX)
        and not key.startswith(NESTED_PREFIXES)
    )


def _fits_text(value: Any, empty_text: bool) -> bool:
    return isinstance(value, str) and (empty_text or value != "")


def _write_csv(
    layout: _Layout, first: list[Row], batches: Iterator[list[Row]], stream: IO[bytes], delimiter: str
) -> int:
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    try:
        writer = csv.writer(text, delimiter=delimiter, lineterminator="\r\n")
        writer.writerow(layout.header(suffix_json=True))
        count = 0
        for batch in _chain(first, batches):
            writer.writerows([["" if cell is None else cell for cell in layout.cells(row)] for row in batch])
            count += len(batch)
        text.flush()
    finally:
        text.detach()  # the stream is the caller's: leave it open
    return count


def _chain(first: list[Row], batches: Iterator[list[Row]]) -> Iterator[list[Row]]:
    if first:
        yield first
    yield from batches


def _write_parquet(layout: _Layout, first: list[Row], batches: Iterator[list[Row]], stream: IO[bytes]) -> int:
    try:
        import pyarrow as pa  # type: ignore[import-untyped]
        import pyarrow.parquet as pq  # type: ignore[import-untyped]
    except ImportError as error:
        raise WriteError("writing Parquet needs the data extra: pip install 'llmops[data]'") from error
    names = layout.header(suffix_json=False)
    json_names = [column.key for column in layout.columns if column.json]
    schema = pa.schema(
        [pa.field(name, pa.string()) for name in names],
        metadata={PARQUET_JSON_KEY: orjson.dumps(json_names)},
    )
    count = 0
    with pq.ParquetWriter(stream, schema) as writer:
        for batch in _chain(first, batches):
            rows = [layout.cells(row) for row in batch]
            arrays = [pa.array([cells[index] for cells in rows], pa.string()) for index in range(len(names))]
            writer.write_batch(pa.record_batch(arrays, schema=schema))
            count += len(batch)
    return count

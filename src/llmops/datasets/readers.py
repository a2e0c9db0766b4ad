"""Reading dataset files as a stream of rows and line-numbered errors.

:func:`read_rows` never holds a whole file (JSON arrays aside, which are capped): it yields one
:class:`ReadItem` per record, either a checked row or the reason it is bad, so the caller decides
whether a bad line skips or fails the import. Formats come from the extension or ``format=``:

- ``.jsonl`` / ``.ndjson``: one JSON object a line; blank lines are skipped. ``line`` is the physical line.
- ``.json``: one JSON array of objects (or a single object), at most :data:`MAX_JSON_BYTES`; ``line`` is
  where each element starts. A syntax error ends that file (there is no next element to resync on).
- ``.csv`` / ``.tsv``: a header row, then records; ``line`` is the physical line where a record starts
  (quoted cells may span lines). See :func:`cells_to_row` for the column rules.
- ``.parquet``: read in batches; ``line`` is the 1-based row number.
- ``.gz`` after any of the text formats: decompressed as it is read.

A folder stands for its files of known extensions, recursively, sorted by their path inside it; hidden
files and folders (a name starting with ``.``) and unknown extensions are left out.
Files that cannot be read, or whose format is unknown, raise :class:`DatasetFileError` naming them.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, cast

import orjson

from llmops.datasets.rows import Row, RowError, check_row, set_field
from llmops.errors import UserError

FORMATS: tuple[str, ...] = ("jsonl", "json", "csv", "tsv", "parquet")
EXTENSIONS: dict[str, str] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
MAX_JSON_BYTES = 64 * 1024 * 1024
"""A ``.json`` array is parsed whole; past this size, JSONL is the way (it streams)."""

JSON_COLUMNS = frozenset({"messages", "metadata", "variables"})
"""Columns whose cells always hold JSON (in CSV; in Parquet when they hold text)."""
JSON_SUFFIX = ":json"
"""A column named ``score:json`` holds JSON values for the field ``score``."""
EXTRA_COLUMN = "_extra"
"""A JSON object of fields merged into the row last (what did not fit the header's columns)."""
NESTED_PREFIXES: tuple[str, ...] = ("metadata.", "variables.")
"""A column ``metadata.source`` becomes ``{"metadata": {"source": ...}}``."""
PARQUET_JSON_KEY = b"llmops.json_columns"
"""Parquet schema metadata naming the columns whose strings are JSON-encoded values."""

_PARQUET_BATCH = 4096
_CSV_FIELD_LIMIT = 64 * 1024 * 1024


class DatasetFileError(UserError):
    """A file that cannot be read at all (missing, unknown format, not text, corrupt)."""


@dataclass(frozen=True)
class ReadItem:
    """One record of a file: ``row`` when it is good, else ``error`` (the reason, without the place)."""

    source: str
    line: int
    row: Row | None
    error: str | None
    unit: str = "line"
    """``line`` for text formats, ``row`` for Parquet: how ``line`` is spoken of."""

    @property
    def where(self) -> str:
        return f"{self.source} {self.unit} {self.line}"

    def describe(self) -> str:
        """``data.jsonl line 17: invalid JSON: ...``: the error as a user reads it."""
        return f"{self.where}: {self.error}" if self.error else self.where


def read_rows(paths: Sequence[Path], *, format: str | None = None) -> Iterator[ReadItem]:
    """Every record of ``paths`` (files or folders) in order, as rows or line-numbered errors.

    All files are found and checked (:func:`list_files`) before the first is read.
    """
    for path, file_format in list_files(paths, format=format):
        yield from _read_file(path, file_format)


def list_files(paths: Sequence[Path], *, format: str | None = None) -> list[tuple[Path, str]]:
    """The files ``paths`` stand for, each with its format; :class:`DatasetFileError` for the first
    missing or unknown one. Cheap (no file is opened): callers check sources before starting a job."""
    if format is not None and format not in FORMATS:
        raise DatasetFileError(f"unknown format {format!r}; use one of {', '.join(FORMATS)}", param="format")
    return list(_files(paths, format))


def format_of(path: Path) -> str | None:
    """The format a file name implies (``.gz`` looked through), or None."""
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
        if suffixes and EXTENSIONS.get(suffixes[-1]) == "parquet":
            return None
    return EXTENSIONS.get(suffixes[-1]) if suffixes else None


def _files(paths: Sequence[Path], forced: str | None) -> Iterator[tuple[Path, str]]:
    for path in paths:
        if path.is_dir():
            members = _folder_members(path, forced)
            if not members:
                raise DatasetFileError(f"{path}: the folder holds no {_known_names(forced)} files")
            yield from members
            continue
        if not path.exists():
            raise DatasetFileError(f"{path}: no such file")
        file_format = forced or format_of(path)
        if file_format is None:
            raise DatasetFileError(
                f"{path}: unknown file type; name it {_known_names(None)} or give the format", param="format"
            )
        yield path, file_format


def _folder_members(folder: Path, forced: str | None) -> list[tuple[Path, str]]:
    members = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        file_format = format_of(path)
        if file_format is not None and forced in (None, file_format):
            members.append((relative.as_posix(), path, file_format))
    return [(path, file_format) for _, path, file_format in sorted(members)]


def _known_names(forced: str | None) -> str:
    names = [ext for ext, name in EXTENSIONS.items() if forced in (None, name)]
    return "/".join(names)


def _read_file(path: Path, file_format: str) -> Iterator[ReadItem]:
    if file_format == "parquet":
        yield from _read_parquet(path)
        return
    text_readers = {"jsonl": _read_jsonl, "json": _read_json, "csv": _read_csv, "tsv": _read_csv}
    try:
        with _open_binary(path) as stream:
            yield from text_readers[file_format](str(path), stream, file_format)
    except (OSError, EOFError) as error:
        raise DatasetFileError(f"{path}: cannot read: {error}") from error
    except UnicodeDecodeError as error:
        raise DatasetFileError(f"{path}: not UTF-8 text ({error.reason})") from error


def _open_binary(path: Path) -> IO[bytes]:
    if path.name.lower().endswith(".gz"):
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def _item(source: str, line: int, value: Any, unit: str = "line") -> ReadItem:
    try:
        return ReadItem(source, line, check_row(value), None, unit)
    except RowError as error:
        return ReadItem(source, line, None, str(error), unit)


def _read_jsonl(source: str, stream: IO[bytes], _format: str) -> Iterator[ReadItem]:
    for number, raw in enumerate(stream, start=1):
        line = raw.removeprefix(b"\xef\xbb\xbf") if number == 1 else raw
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            yield ReadItem(source, number, None, f"invalid JSON: {error.msg} at column {error.colno}")
            continue
        yield _item(source, number, value)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _read_json(source: str, stream: IO[bytes], _format: str) -> Iterator[ReadItem]:
    data = stream.read(MAX_JSON_BYTES + 1)
    if len(data) > MAX_JSON_BYTES:
        raise DatasetFileError(
            f"{source}: a .json file is read whole and this one is over {MAX_JSON_BYTES // 2**20} MB; "
            "convert it to JSONL (one object a line), which streams"
        )
    document = _JsonText(source, data.decode("utf-8-sig"))
    start = document.skip(0)
    if start == len(document.text):
        return
    if document.text[start] == "[":
        yield from document.elements(start + 1)
    else:
        yield from document.single(start)


class _JsonText:
    """A whole JSON document walked element by element, so that each row knows the line it starts on."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.text = text
        self.decoder = json.JSONDecoder(parse_constant=_reject_constant)
        self._counted = (0, 1)  # (position, line there): positions only move forward, so count on from it

    def skip(self, position: int) -> int:
        while position < len(self.text) and self.text[position] in " \t\r\n":
            position += 1
        return position

    def line_at(self, position: int) -> int:
        start, line = self._counted if position >= self._counted[0] else (0, 1)
        line += self.text.count("\n", start, position)
        self._counted = (position, line)
        return line

    def error(self, position: int, reason: str) -> ReadItem:
        return ReadItem(self.source, self.line_at(position), None, f"invalid JSON: {reason}")

    def decode(self, position: int) -> tuple[Any, int] | ReadItem:
        try:
            return self.decoder.raw_decode(self.text, position)
        except json.JSONDecodeError as error:
            return self.error(error.pos, f"{error.msg} at column {error.colno}")
        except ValueError as error:
            return self.error(position, str(error))

    def single(self, position: int) -> Iterator[ReadItem]:
        decoded = self.decode(position)
        if isinstance(decoded, ReadItem):
            yield decoded
            return
        yield _item(self.source, self.line_at(position), decoded[0])
        end = self.skip(decoded[1])
        if end != len(self.text):
            yield self.error(end, "unexpected content after the document")

    def elements(self, position: int) -> Iterator[ReadItem]:
        position = self.skip(position)
        if position < len(self.text) and self.text[position] == "]":
            yield from self._after_array(position)
            return
        while True:
            decoded = self.decode(position)
            if isinstance(decoded, ReadItem):
                yield decoded
                return
            yield _item(self.source, self.line_at(position), decoded[0])
            position = self.skip(decoded[1])
            following = self.text[position : position + 1]
            if following == ",":
                position = self.skip(position + 1)
            elif following == "]":
                yield from self._after_array(position)
                return
            else:
                yield self.error(position, "expected ',' or ']' after an array element")
                return

    def _after_array(self, closing: int) -> Iterator[ReadItem]:
        end = self.skip(closing + 1)
        if end != len(self.text):
            yield self.error(end, "unexpected content after the array")


def _read_csv(source: str, stream: IO[bytes], file_format: str) -> Iterator[ReadItem]:
    # The csv module's cell limit is process-wide; a message list easily passes its 128 KB default.
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.reader(text, delimiter="\t" if file_format == "tsv" else ",")
    header: list[str] | None = None
    ended = 0  # the physical line the previous record ended on
    try:
        for record in reader:
            start, ended = ended + 1, reader.line_num
            if not any(record):  # a blank line, or one of empty cells as spreadsheets leave at the end
                continue
            if header is None:
                header = _check_header(source, record)
                continue
            yield _csv_item(source, start, header, record)
    except csv.Error as error:
        raise DatasetFileError(f"{source} line {reader.line_num}: unreadable CSV: {error}") from error


def _check_header(source: str, header: list[str]) -> list[str]:
    names = [name.strip() for name in header]
    seen: set[str] = set()
    for name in names:
        if not name:
            raise DatasetFileError(f"{source}: the header has an empty column name")
        if name in seen:
            raise DatasetFileError(f"{source}: the header names column {name!r} twice")
        seen.add(name)
    return names


def _csv_item(source: str, line: int, header: list[str], record: list[str]) -> ReadItem:
    if len(record) > len(header):
        return ReadItem(source, line, None, f"{len(record)} cells but the header has {len(header)} columns")
    try:
        row = cells_to_row(zip(header, record, strict=False))
    except RowError as error:
        return ReadItem(source, line, None, str(error))
    return _item(source, line, row)


def cells_to_row(
    cells: Iterable[tuple[str, Any]], json_columns: Iterable[str] = (), *, empty_is_absent: bool = True
) -> Row:
    """A row from (column, cell) pairs of a CSV record or Parquet row, by the column rules.

    A null cell leaves the field out, and so does an empty one in CSV (``empty_is_absent``), where
    nothing else tells "no value" apart from "". Text in the columns ``messages``,
    ``metadata``, ``variables``, ``_extra``, any column named ``NAME:json`` and any of ``json_columns``
    is parsed as JSON (the field is ``NAME``); other cells are taken as they are. A column
    ``metadata.KEY`` or ``variables.KEY`` sets that key inside the object. ``_extra`` holds an object
    whose fields are set last, over the others. Raises :class:`RowError` for a cell that is not JSON.
    """
    encoded = frozenset(json_columns) | JSON_COLUMNS | {EXTRA_COLUMN}
    row: Row = {}
    extra: Any = None
    for column, cell in cells:
        is_json = column in encoded or column.endswith(JSON_SUFFIX)
        if cell is None or (cell == "" and (empty_is_absent or is_json)):
            continue
        name = column.removesuffix(JSON_SUFFIX)
        value = _cell_json(column, cell) if is_json and isinstance(cell, str) else cell
        if column == EXTRA_COLUMN:
            extra = value
        elif name.startswith(NESTED_PREFIXES):
            _set_nested(row, name, value)
        else:
            row[name] = value
    if extra is not None:
        if not isinstance(extra, dict):
            raise RowError(f"column {EXTRA_COLUMN!r} must hold a JSON object")
        row.update(extra)
    return row


def _cell_json(column: str, cell: str) -> Any:
    try:
        return orjson.loads(cell)
    except orjson.JSONDecodeError as error:
        raise RowError(f"column {column!r}: invalid JSON: {error.msg} at character {error.colno}") from error


def _set_nested(row: Row, name: str, value: Any) -> None:
    parent = name.split(".", 1)[0]
    if parent in row and not isinstance(row[parent], dict):
        raise RowError(f"column {name!r} needs field {parent!r} to be an object")
    set_field(row, name, value)


def _read_parquet(path: Path) -> Iterator[ReadItem]:
    try:
        import pyarrow as pa  # type: ignore[import-untyped]
        import pyarrow.parquet as pq  # type: ignore[import-untyped]
    except ImportError as error:
        raise DatasetFileError(
            f"{path}: reading Parquet needs the data extra: pip install 'llmops[data]'"
        ) from error
    try:
        parquet = pq.ParquetFile(path)
        json_columns = _parquet_json_columns(parquet.schema_arrow.metadata)
        number = 0
        for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH):
            for record in batch.to_pylist():
                number += 1
                yield _parquet_item(str(path), number, record, json_columns)
    except (pa.ArrowException, OSError) as error:
        raise DatasetFileError(f"{path}: not a readable Parquet file ({error})") from error


def _parquet_item(source: str, number: int, record: dict[str, Any], json_columns: list[str]) -> ReadItem:
    try:
        cells = ((name, _plain(value)) for name, value in record.items())
        row = cells_to_row(cells, json_columns, empty_is_absent=False)
    except RowError as error:
        return ReadItem(source, number, None, str(error), "row")
    return _item(source, number, row, "row")


def _parquet_json_columns(metadata: dict[bytes, bytes] | None) -> list[str]:
    raw = (metadata or {}).get(PARQUET_JSON_KEY)
    if raw is None:
        return []
    names = orjson.loads(raw)
    return [str(name) for name in names] if isinstance(names, list) else []


def _plain(value: Any) -> Any:
    """A Parquet cell as a JSON value: maps become objects, times ISO strings, NaN null."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        if value and all(isinstance(item, tuple) and len(item) == 2 for item in value):
            return {
                str(key): _plain(item) for key, item in value
            }  # a Parquet MAP comes as (key, value) pairs
        return [_plain(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value

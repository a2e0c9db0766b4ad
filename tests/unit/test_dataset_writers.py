"""write_rows: what each format writes is what read_rows reads back, awkward rows included."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llmops.datasets.readers import read_rows
from llmops.datasets.rows import Row
from llmops.datasets.writers import WriteError, write_rows

AWKWARD: list[Row] = [
    {
        "input": "héllo ✓ 日本語 🙂",
        "expected": 'a,b "quoted"\r\nnext line',
        "metadata": {"a": {"b": [1, 2.5]}},
    },
    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "score": 3},
    {"input": "", "expected": None, "metadata": None, "score": 1.25, "flag": False},
    {},
    {"input": "[not json]", "tags": ["x", {"y": None}], "note": "{also not}"},
    {"metadata.x": 1, "_extra": "reserved", " padded ": 2, "": 3, "v:json": "x", "variables.y": "z"},
    {"input": "late", "late_key": {"deep": [True, None]}, "score": "now a string"},
    {"input": "\t tab and\rcarriage", "count": 10**15, "negative": -0.0, "nothing": None},
]

FORMATS = ["jsonl", "csv", "tsv", "parquet"]


def _back(path: Path) -> list[Row | None]:
    items = list(read_rows([path]))
    assert [item.error for item in items if item.error] == []
    return [item.row for item in items]


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("batch_size", [1, 3, 100])
def test_round_trip_of_awkward_rows(tmp_path: Path, format: str, batch_size: int) -> None:
    path = tmp_path / f"out.{format}"
    assert write_rows(AWKWARD, path, format, batch_size=batch_size) == len(AWKWARD)
    assert _back(path) == AWKWARD
    assert not path.with_name(path.name + ".partial").exists()


@pytest.mark.parametrize("format", FORMATS)
def test_round_trip_with_caller_columns(tmp_path: Path, format: str) -> None:
    path = tmp_path / f"out.{format}"
    write_rows(AWKWARD, path, format, columns=["expected", "input", "missing", "metadata.x"])
    assert _back(path) == AWKWARD


@pytest.mark.parametrize("format", FORMATS)
def test_no_rows(tmp_path: Path, format: str) -> None:
    path = tmp_path / f"out.{format}"
    assert write_rows([], path, format) == 0
    assert _back(path) == []


def test_csv_header_text_and_json_columns(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    rows = [{"input": "q", "score": 2, "metadata": {"k": "v"}, "label": "good"}, {"input": "r", "label": 5}]
    write_rows(rows, path, "csv", batch_size=1)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "input,score:json,metadata,label,_extra"
    assert lines[1] == 'q,2,"{""k"":""v""}",good,'
    assert lines[2] == 'r,,,,"{""label"":5}"'


def test_parquet_columns_are_strings_and_json_columns_are_named(tmp_path: Path) -> None:
    path = tmp_path / "out.parquet"
    write_rows([{"input": "q", "score": 2, "metadata": {"k": "v"}}], path, "parquet")
    schema = pq.read_schema(path)
    assert schema.names == ["input", "score", "metadata", "_extra"]
    assert {str(field.type) for field in schema} == {"string"}
    assert schema.metadata[b"llmops.json_columns"] == b'["score","metadata"]'


@pytest.mark.parametrize("format", ["jsonl", "csv", "parquet"])
def test_writes_to_an_open_stream_and_leaves_it_open(format: str, tmp_path: Path) -> None:
    stream = io.BytesIO()
    assert write_rows(AWKWARD[:3], stream, format) == 3
    assert not stream.closed
    path = tmp_path / f"copy.{format}"
    path.write_bytes(stream.getvalue())
    assert _back(path) == AWKWARD[:3]


def test_keys_first_seen_after_the_first_batch_go_to_extra(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    write_rows([{"input": "a"}, {"input": "b", "later": "x"}], path, "csv", batch_size=1)
    assert path.read_text(encoding="utf-8").splitlines() == ["input,_extra", "a,", 'b,"{""later"":""x""}"']


def test_a_failing_source_leaves_no_file(tmp_path: Path) -> None:
    def rows() -> Iterator[Row]:
        yield {"input": "a"}
        raise RuntimeError("source broke")

    path = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError, match="source broke"):
        write_rows(rows(), path, "jsonl")
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(WriteError, match="unknown format 'xml'"):
        write_rows([], tmp_path / "out.xml", "xml")


def test_unwritable_path_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(WriteError, match=r"out\.jsonl: cannot write"):
        write_rows([{"input": "a"}], tmp_path / "no" / "such" / "out.jsonl", "jsonl")

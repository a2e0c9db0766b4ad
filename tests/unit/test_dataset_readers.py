"""read_rows: each format, folders, gzip, and bad records reported with the line they start on."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmops.datasets.readers import (
    MAX_JSON_BYTES,
    DatasetFileError,
    ReadItem,
    cells_to_row,
    list_files,
    read_rows,
)
from llmops.datasets.rows import RowError
from llmops.errors import UserError


def _read(*paths: Path, format: str | None = None) -> list[ReadItem]:
    return list(read_rows(list(paths), format=format))


def _summary(items: list[ReadItem]) -> list[tuple[int, object]]:
    return [(item.line, item.row if item.error is None else item.error) for item in items]


def test_jsonl_rows_blank_lines_and_errors_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(
        '{"input": "a", "expected": "b"}\n'
        "\n"
        "   \n"
        '{"input": x}\n'
        '{"input": 5}\n'
        "[1, 2]\n"
        '{"messages": [{"role": "user", "content": "hi"}], "metadata": {"k": [1, {"n": null}]}}\n',
        encoding="utf-8",
    )
    items = _read(path)
    assert _summary(items) == [
        (1, {"input": "a", "expected": "b"}),
        (4, "invalid JSON: unexpected character, expected a JSON value at column 11"),
        (5, "field 'input' must be a string, not a number"),
        (6, "a row must be a JSON object, not a list"),
        (7, {"messages": [{"role": "user", "content": "hi"}], "metadata": {"k": [1, {"n": None}]}}),
    ]
    assert (
        items[1].describe()
        == f"{path} line 4: invalid JSON: unexpected character, expected a JSON value at column 11"
    )
    assert all(item.source == str(path) for item in items)


def test_jsonl_byte_order_mark_crlf_and_last_line_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "data.ndjson"
    path.write_bytes(b'\xef\xbb\xbf{"input": "a"}\r\n{"input": "\xc3\xa9"}')
    assert _summary(_read(path)) == [(1, {"input": "a"}), (2, {"input": "é"})]


def test_jsonl_invalid_utf8_is_an_error_of_that_line(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(b'{"input": "a"}\n{"input": "\xff"}\n{"input": "c"}\n')
    items = _read(path)
    assert [item.line for item in items] == [1, 2, 3]
    assert (items[1].error or "").startswith("invalid JSON: ")
    assert items[2].row == {"input": "c"}


def test_gzip_jsonl_and_csv(tmp_path: Path) -> None:
    jsonl = tmp_path / "a.jsonl.gz"
    jsonl.write_bytes(gzip.compress(b'{"input": "a"}\n\n{"input": 1}\n'))
    table = tmp_path / "b.CSV.gz"
    table.write_bytes(gzip.compress(b"input,expected\nq,a\n"))
    assert _summary(_read(jsonl, table)) == [
        (1, {"input": "a"}),
        (3, "field 'input' must be a string, not a number"),
        (2, {"input": "q", "expected": "a"}),
    ]


def test_corrupt_gzip_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DatasetFileError, match=r"a\.jsonl\.gz: cannot read"):
        _read(path)


def test_csv_multiline_cells_keep_the_line_where_each_record_starts(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text(
        'input,expected\n"first\nspans\nthree lines",a\n\nsecond,b\n"third, quoted ""x""",5\n,\n',
        encoding="utf-8",
    )
    assert _summary(_read(path)) == [
        (2, {"input": "first\nspans\nthree lines", "expected": "a"}),
        (6, {"input": "second", "expected": "b"}),
        (7, {"input": 'third, quoted "x"', "expected": "5"}),
    ]


def test_csv_column_rules(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text(
        "input,messages,metadata,metadata.source,variables.city,score:json,_extra\n"
        'q,"[{""role"":""user"",""content"":""hi""}]","{""a"":1}",web,Oslo,2.5,"{""flag"":true}"\n'
        "q2,,,,,,\n",
        encoding="utf-8",
    )
    items = _read(path)
    assert items[0].row == {
        "input": "q",
        "messages": [{"role": "user", "content": "hi"}],
        "metadata": {"a": 1, "source": "web"},
        "variables": {"city": "Oslo"},
        "score": 2.5,
        "flag": True,
    }
    assert items[1].row == {"input": "q2"}


def test_csv_bad_cells_are_errors_of_their_line(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text(
        'input,metadata\na,{oops\nb,"[1]"\nc,{},extra\nd\n',
        encoding="utf-8",
    )
    assert _summary(_read(path)) == [
        (2, "column 'metadata': invalid JSON: unexpected character, expected a string key at character 2"),
        (3, "field 'metadata' must be an object, not a list"),
        (4, "3 cells but the header has 2 columns"),
        (5, {"input": "d"}),
    ]


def test_csv_header_must_name_each_column_once(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("input,input\na,b\n", encoding="utf-8")
    with pytest.raises(DatasetFileError, match="names column 'input' twice"):
        _read(path)


def test_csv_not_utf8_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("input\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(DatasetFileError, match=r"latin\.csv: not UTF-8 text"):
        _read(path)


def test_tsv(tmp_path: Path) -> None:
    path = tmp_path / "data.tsv"
    path.write_text("input\texpected\na, b\tc\n", encoding="utf-8")
    assert _summary(_read(path)) == [(2, {"input": "a, b", "expected": "c"})]


def test_json_array_elements_carry_their_start_line(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text('[\n  {"input": "a"},\n  {"input":\n     2},\n  {"input": "c"}\n]\n', encoding="utf-8")
    assert _summary(_read(path)) == [
        (2, {"input": "a"}),
        (3, "field 'input' must be a string, not a number"),
        (5, {"input": "c"}),
    ]


def test_json_syntax_error_ends_the_file_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text('[\n  {"input": "a"},\n  {"input": "b",}\n]', encoding="utf-8")
    items = _read(path)
    assert items[0].row == {"input": "a"}
    assert items[1].line == 3
    assert (items[1].error or "").startswith("invalid JSON: ")
    assert len(items) == 2


def test_json_single_object_and_empty_array(tmp_path: Path) -> None:
    single = tmp_path / "one.json"
    single.write_text('\n{"input": "a"}\n', encoding="utf-8")
    empty = tmp_path / "empty.json"
    empty.write_text("[ ]", encoding="utf-8")
    assert _summary(_read(single, empty)) == [(2, {"input": "a"})]


def test_json_over_the_cap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    with path.open("wb") as stream:
        stream.write(b"[")
        stream.truncate(MAX_JSON_BYTES + 10)
    with pytest.raises(DatasetFileError, match="convert it to JSONL"):
        _read(path)


def test_parquet_native_types_and_row_numbers(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    table = pa.table(
        {
            "input": ["a", None, "c"],
            "score": [1, 2, None],
            "metadata": [{"k": "x"}, None, {"k": "z"}],
            "tags": [["t1"], [], None],
            "weight": [0.5, float("nan"), 1.0],
        }
    )
    pq.write_table(table, path)
    items = _read(path)
    assert [item.line for item in items] == [1, 2, 3]
    assert items[0].row == {"input": "a", "score": 1, "metadata": {"k": "x"}, "tags": ["t1"], "weight": 0.5}
    assert items[1].row == {"score": 2, "tags": []}
    assert items[2].describe() == f"{path} row 3"


def test_parquet_wrong_types_name_the_row(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"input": [1, 2]}), path)
    items = _read(path)
    assert items[1].describe() == f"{path} row 2: field 'input' must be a string, not a number"


def test_folder_is_read_recursively_in_name_order_skipping_hidden_and_unknown(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "b" / "2.jsonl").write_text('{"input": "b2"}\n', encoding="utf-8")
    (tmp_path / "a.csv").write_text("input\na\n", encoding="utf-8")
    (tmp_path / "c.jsonl").write_text('{"input": "c"}\n', encoding="utf-8")
    (tmp_path / "notes.txt").write_text("ignored", encoding="utf-8")
    (tmp_path / ".hidden" / "x.jsonl").write_text('{"input": "hidden"}\n', encoding="utf-8")
    (tmp_path / ".skip.jsonl").write_text('{"input": "hidden"}\n', encoding="utf-8")
    rows = [item.row for item in _read(tmp_path)]
    assert rows == [{"input": "a"}, {"input": "b2"}, {"input": "c"}]
    assert [item.row for item in _read(tmp_path, format="csv")] == [{"input": "a"}]


def test_empty_folder_unknown_extension_and_missing_file_are_user_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "data.txt").write_text('{"input": "a"}\n', encoding="utf-8")
    with pytest.raises(UserError, match="holds no"):
        _read(tmp_path / "empty")
    with pytest.raises(UserError, match=r"data\.txt: unknown file type"):
        _read(tmp_path / "data.txt")
    with pytest.raises(UserError, match=r"nope\.jsonl: no such file"):
        _read(tmp_path / "nope.jsonl")
    with pytest.raises(UserError, match="unknown format 'xml'"):
        _read(tmp_path / "data.txt", format="xml")


def test_format_option_overrides_the_extension(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text('{"input": "a"}\n', encoding="utf-8")
    assert [item.row for item in _read(path, format="jsonl")] == [{"input": "a"}]


def test_cells_to_row_refuses_nesting_into_a_non_object() -> None:
    with pytest.raises(RowError, match="needs field 'metadata' to be an object"):
        cells_to_row([("metadata", "[1]"), ("metadata.a", "x")])


def test_corrupt_parquet_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    path.write_bytes(b"PAR1 but not really")
    with pytest.raises(DatasetFileError, match=r"data\.parquet: not a readable Parquet file"):
        _read(path)


def test_every_file_is_checked_before_the_first_is_read(tmp_path: Path) -> None:
    good = tmp_path / "a.jsonl"
    good.write_text('{"input": "a"}\n', encoding="utf-8")
    items = read_rows([good, tmp_path / "missing.jsonl"])
    with pytest.raises(DatasetFileError, match="missing.jsonl: no such file"):
        next(items)
    assert list_files([tmp_path]) == [(good, "jsonl")]

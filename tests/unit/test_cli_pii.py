"""`llmops pii scan`: text, JSONL and CSV files, --json, --redact --out, and one-line errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmops.cli.main import app

TEXT = "Contact jane.roe@example.org or +44 20 7946 0958\nnothing here\ncard 4111 1111 1111 1111\n"


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LLMOPS_PII_SALT", raising=False)
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def scan(runner: CliRunner, *args: str) -> dict[str, object]:
    result = runner.invoke(app, ["pii", "scan", *args, "--json", "--no-nlp"])
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_scan_text_file_table(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text(TEXT)
    result = runner.invoke(app, ["pii", "scan", str(path), "--no-nlp"])
    assert result.exit_code == 0, result.output
    assert "EMAIL_ADDRESS" in result.stdout
    assert "**** **** **** **11" in result.stdout
    assert "2 of 3 lines (text) contain PII" in result.stdout
    assert "jane.roe@example.org" not in result.stdout


def test_scan_json_counts(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text(TEXT)
    data = scan(runner, str(path))
    assert data["records"] == 3
    assert data["records_with_pii"] == 2
    entities = data["entities"]
    assert isinstance(entities, dict)
    assert {name: entry["count"] for name, entry in entities.items()} == {
        "CREDIT_CARD": 1,
        "EMAIL_ADDRESS": 1,
        "PHONE_NUMBER": 1,
    }
    assert data["skipped_entities"] == []  # --no-nlp asked for it: nothing was skipped by surprise


def test_redact_text_file(runner: CliRunner, tmp_path: Path) -> None:
    path, out = tmp_path / "notes.txt", tmp_path / "clean.txt"
    path.write_text(TEXT)
    data = scan(runner, str(path), "--redact", "--out", str(out), "--strategy-for", "CREDIT_CARD=mask_last4")
    assert data["written"] == str(out)
    assert out.read_text() == "Contact <EMAIL> or <PHONE>\nnothing here\ncard **** **** **** 1111\n"


def test_jsonl_fields_and_drop(runner: CliRunner, tmp_path: Path) -> None:
    path, out = tmp_path / "rows.jsonl", tmp_path / "clean.jsonl"
    rows = [
        {"input": "mail jane.roe@example.org", "metadata": {"ip": "10.0.0.1"}},
        {"input": "card 4111 1111 1111 1111"},
        {"input": "fine"},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows) + "\n")
    data = scan(
        runner,
        str(path),
        "--fields",
        "input",
        "--redact",
        "--strategy",
        "hash",
        "--salt",
        "s1",
        "--strategy-for",
        "CREDIT_CARD=drop",
        "--out",
        str(out),
    )
    assert data["dropped"] == 1
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(written) == 2
    assert written[0]["input"].startswith("mail <EMAIL_")
    assert written[0]["metadata"] == {"ip": "10.0.0.1"}  # not a scanned field
    assert written[1] == {"input": "fine"}


def test_jsonl_all_strings_by_default(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"input": "hi", "metadata": {"ip": "10.0.0.1"}}) + "\n")
    data = scan(runner, str(path))
    assert data["entities"] == {"IP_ADDRESS": {"count": 1, "examples": ["**.*.*.*"]}}


def test_csv_redact_keeps_the_header(runner: CliRunner, tmp_path: Path) -> None:
    path, out = tmp_path / "people.csv", tmp_path / "clean.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerows([["id", "email", "note"], ["1", "jane.roe@example.org", "ok"], ["2", "", "x"]])
    data = scan(runner, str(path), "--fields", "email", "--redact", "--out", str(out))
    assert data["records"] == 2
    with out.open(newline="") as handle:
        assert list(csv.reader(handle)) == [["id", "email", "note"], ["1", "<EMAIL>", "ok"], ["2", "", "x"]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--redact"], "--redact needs --out FILE"),
        (["--entities", "SSN"], "unknown PII entity 'SSN'"),
        (["--redact", "--out", "o.txt", "--strategy", "hash"], "the hash strategy needs a salt"),
        (["--redact", "--out", "o.txt", "--strategy-for", "PERSON"], "expected ENTITY=STRATEGY"),
        (["--redact", "--out", "o.txt", "--strategy", "blur"], "unknown PII strategy 'blur'"),
    ],
)
def test_errors_are_one_line(runner: CliRunner, tmp_path: Path, args: list[str], message: str) -> None:
    path = tmp_path / "notes.txt"
    path.write_text(TEXT)
    result = runner.invoke(app, ["pii", "scan", str(path), "--no-nlp", *args])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [f"error: {result.stderr.strip().removeprefix('error: ')}"]
    assert message in result.stderr


def test_bad_jsonl_line_is_named(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"input": "ok"}\n{broken\n')
    result = runner.invoke(app, ["pii", "scan", str(path), "--no-nlp"])
    assert result.exit_code == 1
    assert "error: line 2: not JSON" in result.stderr


def test_missing_file(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["pii", "scan", str(tmp_path / "nope.txt"), "--no-nlp"])
    assert result.exit_code == 1
    assert "nope.txt" in result.stderr


def test_hash_salt_from_the_setting(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, out = tmp_path / "notes.txt", tmp_path / "clean.txt"
    path.write_text("jane.roe@example.org\n")
    monkeypatch.setenv("LLMOPS_PII_SALT", "from-env")
    scan(runner, str(path), "--redact", "--strategy", "hash", "--out", str(out))
    from_env = out.read_text()
    scan(runner, str(path), "--redact", "--strategy", "hash", "--salt", "from-env", "--out", str(out))
    assert out.read_text() == from_env
    assert from_env.startswith("<EMAIL_")

"""`llmops registry`: register files and endpoints, show, versions, aliases with history, lineage, delete,
tables and --json, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmops.cli.main import app


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[CliRunner, list[str]]:
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LLMOPS_ARTEFACT_STORE", raising=False)
    monkeypatch.setenv("USER", "ann")  # the author, with no git user.name to find
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.chdir(tmp_path)
    return CliRunner(), ["--database-url", f"sqlite:///{tmp_path / 'cli.db'}"]


def run(cli: tuple[CliRunner, list[str]], *args: str, code: int = 0) -> str:
    runner, options = cli
    result = runner.invoke(app, [*options, "registry", *args])
    assert result.exit_code == code, result.output
    return result.output


def as_json(cli: tuple[CliRunner, list[str]], *args: str) -> Any:
    return json.loads(run(cli, *args, "--json"))


def test_register_alias_show_and_delete(cli: tuple[CliRunner, list[str]], tmp_path: Path) -> None:
    (tmp_path / "model.gguf").write_bytes(b"GGUF" * 10)
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    assert "no registered models yet" in run(cli, "list")
    first = as_json(
        cli,
        "register",
        "support-model",
        "--artefact",
        "gguf-q4_k_m=model.gguf",
        "-a",
        "adapter=adapter",
        "--base-model",
        "smollm2",
        "--metrics-json",
        '{"val_loss": 1.2}',
        "--description",
        "first",
    )
    assert first["ref"] == "support-model@1"
    assert first["created_by"] == "ann"
    assert sorted(item["kind"] for item in first["artefacts"]) == ["adapter", "gguf-q4_k_m"]
    assert (
        tmp_path / "home" / "artefacts" / "support-model" / "1" / "adapter" / "adapter_config.json"
    ).exists()
    serving = '{"provider": "openai", "base_url": "http://127.0.0.1:8000/v1", "model": "tuned"}'
    table = run(cli, "register", "support-model", "--serving-json", serving)
    assert "support-model@2" in table

    assert "support-model@production → version 1" in run(cli, "alias", "support-model", "production", "1")
    assert "version 1 → 2" in run(cli, "alias", "support-model", "production", "2")
    shown = as_json(cli, "show", "support-model@production")
    assert (shown["version"], shown["serving"]["model"], shown["aliases"]) == (2, "tuned", ["production"])
    assert "support-model@1" in run(cli, "show", "support-model@1")
    assert [item["version"] for item in as_json(cli, "versions", "support-model")] == [1, 2]
    [listed] = as_json(cli, "list")
    assert listed["aliases"] == {"production": 2}
    assert "production→2" in run(cli, "list")
    lineage = as_json(cli, "lineage", "support-model@1")
    assert [node["kind"] for node in lineage] == ["model_version", "base_model"]
    assert "base model smollm2" in run(cli, "lineage", "support-model@1")

    refused = run(cli, "delete", "support-model@2", code=1)
    assert refused.strip() == (
        "error: support-model@2 has aliases (production): move them first, or force the deletion"
    )
    assert "deleted support-model@2" in run(cli, "delete", "support-model@2", "--force")
    events = as_json(cli, "history", "support-model")
    assert [(event["alias"], event["action"]) for event in events] == [
        ("production", "set"),
        ("production", "set"),
        ("production", "remove"),
        (None, "delete"),
    ]
    assert "remove" in run(cli, "history", "support-model", "--alias", "production")
    run(cli, "alias", "support-model", "candidate", "1")
    assert "removed support-model@candidate" in run(cli, "unalias", "support-model", "candidate")
    run(cli, "delete", "support-model", code=1)  # asks first; no answer aborts
    assert "deleted support-model" in run(cli, "delete", "support-model", "--yes")
    assert as_json(cli, "list") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("register", "bad name", "-a", "x=y"), "error: invalid model name 'bad name'"),
        (("register", "m", "-a", "nokind"), "error: --artefact: expected KIND=PATH, got 'nokind'"),
        (("register", "m", "--serving-json", "[1]"), "error: --serving-json: expected a JSON object"),
        (("register", "m", "--serving-json", "{"), "error: --serving-json: not JSON"),
        (
            ("register", "m", "-a", "gguf-f16=missing.gguf"),
            "error: artefact gguf-f16: no such file or directory",
        ),
        (
            ("register", "m", "--dataset", "qa@1", "--serving-json", '{"provider": "echo"}'),
            "error: no dataset",
        ),
        (("show", "m@2"), "error: no model named 'm'"),
        (("delete", "m@production"), "error: delete takes NAME@VERSION with a number, not an alias"),
        (("alias", "m", "Prod", "1"), "error: invalid alias 'Prod'"),
    ],
)
def test_mistakes_are_one_line(cli: tuple[CliRunner, list[str]], args: tuple[str, ...], message: str) -> None:
    output = run(cli, *args, code=1)
    assert output.startswith(message)
    assert len(output.strip().splitlines()) == 1

"""`llmops deploy` in-process (typer's runner) on SQLite: the REF-first default command, the subcommands."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmops.cli.main import app
from llmops.services import open_store
from llmops.settings import load_settings

SERVING = {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"}


@pytest.fixture
def llmops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("USER", "alice")  # the author when git knows none
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "llmops.yaml").write_text("models:\n  - {name: support, provider: echo}\n")
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    store = open_store(load_settings(database_url=url))
    for version in (1, 2):
        store.registry.register("support-model", serving={**SERVING, "model": f"v{version}"})
    store.close()
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, ["--database-url", url, *args])
        assert result.exit_code == code, result.output
        return result.output

    return run


def test_the_issue_commands(llmops: Callable[..., str]) -> None:
    out = llmops("deploy", "support-model@2", "--as", "support", "--canary", "10")
    assert "support-model@2 takes 10% (steps [10, 50, 100]), the configured model the rest" in out
    status = json.loads(llmops("deploy", "status", "support", "--json"))
    assert (status["canary"], status["assessment"]["action"]) == ("support-model@2", "hold")
    assert status["next_action"].startswith("hold at 10%, then promote to 50% automatically")
    table = llmops("deploy", "status")
    assert "min_requests: 0 of 20 canary calls" in table
    assert "50%" in llmops("deploy", "promote", "support", "--reason", "fine")
    refused = llmops("registry", "delete", "support-model@2", "--force", code=1)
    assert "support-model@2 is in use (deployed behind 'support' as the canary at 50%)" in refused
    assert "rolled_back" in llmops("deploy", "rollback", "support")
    history = json.loads(llmops("deploy", "history", "support", "--json"))
    assert [(event["action"], event["actor"]) for event in history] == [
        ("rollback", "cli:alice"),
        ("promote", "cli:alice"),
        ("deploy", "cli:alice"),
    ]
    assert "undeployed" in llmops("deploy", "undeploy", "support")
    assert "stable" in llmops("deploy", "version", "support-model@1", "--as", "support")


def test_guard_options_and_mistakes(llmops: Callable[..., str]) -> None:
    llmops("deploy", "support-model@1", "--as", "support")
    out = llmops(
        "deploy", "support-model@2", "--as", "support", "--canary", "5", "--steps", "5,25,100",
        "--max-p95-ms", "900", "--max-thumbs-down-rate", "0.3", "--min-requests", "50", "--manual", "--json",
    )  # fmt: skip
    info = json.loads(out)
    assert info["steps"] == [5, 25, 100]
    assert info["manual"] is True
    assert info["guards"] == {
        "max_error_rate": 0.05,
        "max_p95_ms": 900.0,
        "max_thumbs_down_rate": 0.3,
        "min_requests": 50,
    }
    assert "has a canary" in llmops("deploy", "support-model@1", "--as", "support", code=1)
    assert "no deployment named 'nothing'" in llmops("deploy", "promote", "nothing", code=1)
    gate = "baseline=a,candidate=b,metric=rouge_l:x"
    assert "needs a number" in llmops("deploy", "support-model@2", "--as", "x", "--eval-gate", gate, code=1)
    llmops("deploy", "rollback", "support")
    gate = "baseline=a,candidate=b,metric=rouge_l:0.1"
    failed = llmops(
        "deploy", "support-model@2", "--as", "support", "--canary", "5", "--eval-gate", gate, code=1
    )
    assert "no evaluation run with id, name or label 'a'" in failed

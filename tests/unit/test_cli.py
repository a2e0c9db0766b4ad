"""The `llmops` CLI: every command documented, errors as one line, keys and models commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from llmops import __version__
from llmops.cli.main import app

LLMOPS = [sys.executable, "-m", "llmops"]
HEAVY_MODULES = (
    "sqlalchemy",
    "fastapi",
    "uvicorn",
    "aiohttp",
    "llama_cpp",
    "onnxruntime",
    "quicktok",
    "alembic",
)


def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Typer vendors its own click, so walk the command tree by shape rather than by class."""
    found = [(path, command)]
    for name, sub in (getattr(command, "commands", None) or {}).items():
        found += _commands(sub, (*path, name))
    return found


def test_every_command_and_option_has_help() -> None:
    runner = CliRunner()
    commands = _commands(typer.main.get_command(app))
    assert {" ".join(path) for path, _ in commands} >= {
        "serve",
        "traces list",
        "traces show",
        "traces feedback",
        "keys create",
        "keys list",
        "keys revoke",
        "models list",
    }
    for path, command in commands:
        assert (command.help or "").strip(), f"`llmops {' '.join(path)}` has no help text"
        for param in command.params:
            if param.param_type_name == "option" and param.name != "help":
                assert (param.help or "").strip(), (
                    f"`llmops {' '.join(path)}` option {param.name} has no help"
                )
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, result.output


def test_version() -> None:
    result = subprocess.run([*LLMOPS, "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"llmops {__version__}"


def test_cli_import_stays_light() -> None:
    code = f"import sys, llmops.cli.main; print([m for m in {HEAVY_MODULES!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    database = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {"PATH": "/usr/bin:/bin", "LLMOPS_HOME": str(tmp_path / "home"), "HOME": str(tmp_path)}
    return subprocess.run(
        [*LLMOPS, "--database-url", database, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )


def test_keys_lifecycle(tmp_path: Path) -> None:
    created = _run(tmp_path, "keys", "create", "--name", "ci", "--scope", "admin")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("sk-llmops-")
    assert len(secret) > 40
    listed = _run(tmp_path, "keys", "list")
    assert "ci" in listed.stdout
    assert secret not in listed.stdout
    assert _run(tmp_path, "keys", "revoke", "ci").returncode == 0
    assert "ci" not in _run(tmp_path, "keys", "list").stdout
    assert "ci" in _run(tmp_path, "keys", "list", "--all").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("keys", "create", "--name", "x", "--scope", "root"),
            "error: role: expected one of inference, viewer, editor, admin",
        ),
        (
            ("keys", "create", "--name", "x", "--secret", "short"),
            "error: secret: needs at least 20 characters",
        ),
        (("keys", "revoke", "nobody"), "error: no active API key with id or name 'nobody'"),
        (("traces", "list", "--since", "yesterday"), "error: since: expected a duration"),
        (("traces", "list", "--status", "fine"), "error: status: expected one of ok, error"),
        (("traces", "show", "0123"), "error: trace '0123' not found"),
        (("traces", "feedback", "0123"), "error: feedback: give at least one of"),
        (("traces", "feedback", "0123", "--thumb", "left"), "error: --thumb: expected up or down"),
        (("--config", "missing.yaml", "models", "list"), "error: config file not found: missing.yaml"),
    ],
)
def test_bad_input_is_one_readable_line(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = _run(tmp_path, *args)
    assert result.returncode == 1
    assert result.stderr.strip().startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "LLMOPS_HOME": str(tmp_path)}
    result = subprocess.run(
        [*LLMOPS, "--database-url", "postgresql://postgres@127.0.0.1:1/none", "keys", "list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot connect to the database:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_config_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "llmops.yaml").write_text("models:\n  - name: a\n    provider: echo\n    price: 3\n")
    result = _run(tmp_path, "models", "list")
    assert result.returncode == 1
    assert result.stderr.startswith("error: invalid setting models.0.price in")
    (tmp_path / "llmops.yaml").write_text("models: [\n")
    result = _run(tmp_path, "models", "list")
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot read")


def test_models_list_shows_the_config(tmp_path: Path) -> None:
    (tmp_path / "llmops.yaml").write_text(
        "models:\n"
        "  - name: gpt-4o-mini\n    provider: openai\n    base_url: https://api.example/v1\n"
        "    api_key_env: OPENAI_API_KEY\n    input_price_per_1m: 0.15\n    output_price_per_1m: 0.6\n"
        "  - name: echo\n    provider: echo\n"
    )
    result = _run(tmp_path, "models", "list", "--json")
    assert result.returncode == 0, result.stderr
    models = json.loads(result.stdout)
    assert [model["name"] for model in models] == ["gpt-4o-mini", "echo"]
    assert models[0]["deployments"][0]["input_price_per_1m"] == 0.15
    table = _run(tmp_path, "models", "list")
    assert "gpt-4o-mini" in table.stdout
    assert "0.15" in table.stdout


def test_revoked_secret_cannot_be_imported_again(tmp_path: Path) -> None:
    secret = "sk-imported-0123456789abcdef"
    assert _run(tmp_path, "keys", "create", "--name", "old", "--secret", secret).returncode == 0
    assert _run(tmp_path, "keys", "revoke", "old").returncode == 0
    again = _run(tmp_path, "keys", "create", "--name", "new", "--secret", secret)
    assert again.returncode == 1
    assert again.stderr.startswith("error: secret: this secret belongs to another key")


def test_models_status_without_a_server_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = _run(tmp_path, "models", "status", "--url", f"http://127.0.0.1:{port}")
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot reach the server at")
    assert len(result.stderr.strip().splitlines()) == 1

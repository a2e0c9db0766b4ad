"""docs/teams.md and the README section stay true: commands parse, routes and settings exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import test_admin_openapi
from test_docs import _llmops_commands, _parse_cli

from llmops.server.admin import create_admin_app
from llmops.services import Services
from llmops.settings import Settings

ROOT = Path(__file__).parents[2]
GUIDE = ROOT / "docs" / "teams.md"
GROUPS = ("keys", "teams", "credentials", "audit")
services = test_admin_openapi.services  # the fixture: the services of a server with one echo model


def _guide_commands(text: str) -> list[list[str]]:
    """`$ llmops ...` lines of the guide's examples (continuations joined, a leading VAR=value dropped)."""
    found = []
    for line in text.replace("\\\n", " ").splitlines():
        if not line.startswith("$ "):
            continue
        words = shlex.split(line[2:].split(" < ", 1)[0].split(" | ", 1)[0])
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
            words = words[1:]
        if words[:1] == ["llmops"]:
            found.append(words[1:])
    return found


def _all_commands() -> set[str]:
    import typer

    from llmops.cli.main import app

    root = typer.main.get_command(app)
    return {
        f"{group} {name}"
        for group in GROUPS
        for name in root.commands[group].commands  # type: ignore[attr-defined]
    }


def test_the_guide_commands_parse_and_cover_every_command() -> None:
    commands = _guide_commands(GUIDE.read_text())
    used = {_parse_cli(args)[0] for args in commands}
    assert len(commands) >= 15
    text = GUIDE.read_text()
    unnamed = {command for command in _all_commands() if f"llmops {command}" not in text}
    assert not unnamed, f"docs/teams.md never names {sorted(unnamed)}"
    assert {"keys create", "keys rotate", "teams create", "credentials set", "audit list"} <= used


def test_the_readme_section_commands_parse() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Teams, keys and limits\n", 1)[1].split("\n## ", 1)[0]
    used = {_parse_cli(args)[0] for args in _llmops_commands(section)}
    assert {"keys create", "teams create", "keys list", "keys rotate", "keys revoke", "audit list"} <= used


def test_the_guide_names_real_routes_and_settings(services: Services) -> None:
    text = GUIDE.read_text()
    schema = create_admin_app(services).openapi()
    routes = {(method.upper(), path) for path, item in schema["paths"].items() for method in item}
    named = set(re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/api/[^`?\s]*)`", text))
    assert named
    assert named <= routes, named - routes
    for prefix in ("/api/keys", "/api/teams", "/api/credentials", "/api/audit"):
        assert any(path.startswith(prefix) for _, path in named), prefix
    for setting in (
        "auth_failures_per_minute",
        "key_rotation_grace_seconds",
        "rate_limit_on_redis_error",
        "budget_on_redis_error",
        "budget_alert_fraction",
        "spend_flush_seconds",
        "limits_default_max_tokens",
        "master_key_file",
    ):
        assert setting in Settings.model_fields
        assert f"`{setting}`" in text, setting

"""docs/registry.md stays true: its commands parse, its routes exist, its request bodies validate."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import test_admin_openapi
from test_docs import _llmops_commands, _parse_cli

from llmops.server.admin import create_admin_app
from llmops.server.registry_schema import AliasIn, RegisterIn
from llmops.services import Services

GUIDE = Path(__file__).parents[2] / "docs" / "registry.md"
services = test_admin_openapi.services  # the fixture: the services of a server with one echo model


def test_the_guide_commands_parse() -> None:
    commands = [args for args in _llmops_commands(GUIDE.read_text()) if args[:1] == ["registry"]]
    assert len(commands) >= 15
    used = {_parse_cli(args)[0] for args in commands}
    assert used == {
        f"registry {name}"
        for name in (
            "register",
            "list",
            "versions",
            "show",
            "alias",
            "unalias",
            "history",
            "delete",
            "lineage",
        )
    }


def test_the_guide_routes_and_bodies_match_the_api(services: Services) -> None:
    schema = create_admin_app(services).openapi()
    routes = {(method.upper(), path) for path, item in schema["paths"].items() for method in item}
    text = GUIDE.read_text()
    named = set(re.findall(r"`(GET|POST|PUT|DELETE) (/api/registry[^`?\s]*)", text))
    assert len(named) == 11
    assert named - routes == set()
    assert {path for _, path in routes if path.startswith("/api/registry")} == {path for _, path in named}
    bodies = 0
    for block in text.split("```bash\n")[1:]:
        words = shlex.split(block.split("```", 1)[0].replace("\\\n", " "))
        for index in [index for index, word in enumerate(words) if word == "-d"]:
            url = next(word for word in reversed(words[:index]) if "/api/registry" in word)
            model = AliasIn if "/aliases/" in url else RegisterIn
            model.model_validate_json(words[index + 1])
            bodies += 1
    assert bodies == 2


def test_the_readme_section_commands_parse() -> None:
    readme = (GUIDE.parents[1] / "README.md").read_text()
    section = readme.split("\n## Model registry\n", 1)[1].split("\n## ", 1)[0]
    commands = _llmops_commands(section)
    assert len(commands) == 5
    for args in commands:
        assert _parse_cli(args)[0].startswith("registry ")

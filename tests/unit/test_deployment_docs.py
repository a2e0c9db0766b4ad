"""docs/deployments.md and the README section stay true: commands parse, routes exist, bodies validate."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import test_admin_openapi
from test_docs import _llmops_commands, _parse_cli

from llmops.deployments.guards import BUILTIN_GUARDS
from llmops.server.admin import create_admin_app
from llmops.server.deployment_schema import DeploymentIn
from llmops.services import Services

ROOT = Path(__file__).parents[2]
GUIDE = ROOT / "docs" / "deployments.md"
SUBCOMMANDS = {"version", "status", "promote", "rollback", "history", "undeploy"}
services = test_admin_openapi.services  # the fixture: the services of a server with one echo model


def _parsed(args: list[str]) -> str:
    """As `llmops deploy` reads it: a first argument that is no subcommand is the REF of `version`."""
    if args[:1] == ["deploy"] and len(args) > 1 and args[1] not in SUBCOMMANDS:
        args = ["deploy", "version", *args[1:]]
    return _parse_cli(args)[0]


def test_the_guide_commands_parse() -> None:
    commands = _llmops_commands(GUIDE.read_text())
    used = {_parsed(args) for args in commands}
    assert {f"deploy {name}" for name in SUBCOMMANDS} <= used
    assert len(commands) >= 14


def test_the_readme_section_commands_parse() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Deployments\n", 1)[1].split("\n## ", 1)[0]
    commands = _llmops_commands(section)
    assert {_parsed(args) for args in commands} == {f"deploy {name}" for name in SUBCOMMANDS - {"undeploy"}}


def test_the_guide_names_every_rule_and_route(services: Services) -> None:
    text = GUIDE.read_text()
    assert all(f"`{rule.name}`" in text for rule in BUILTIN_GUARDS)
    schema = create_admin_app(services).openapi()
    routes = {(method.upper(), path) for path, item in schema["paths"].items() for method in item}
    named = set(re.findall(r"`(GET|POST|PUT|DELETE) (/api/deployments[^`?\s]*)", text))
    assert named == {(method, path) for method, path in routes if path.startswith("/api/deployments")}
    bodies = [
        words[index + 1]
        for block in text.split("```bash\n")[1:]
        for words in [shlex.split(block.split("```", 1)[0].replace("\\\n", " "))]
        for index, word in enumerate(words)
        if word == "-d"
    ]
    assert len(bodies) == 1
    DeploymentIn.model_validate_json(bodies[0])

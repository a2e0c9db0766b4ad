"""docs/finetuning.md and the README section stay true: commands parse, options and routes exist, the
REST body validates, the hyper-parameter table names every parameter."""

from __future__ import annotations

import re
import shlex
from dataclasses import fields
from pathlib import Path

import test_admin_openapi
from test_docs import _llmops_commands, _parse_cli

from llmops.server.admin import create_admin_app
from llmops.server.finetune_schema import FinetuneIn
from llmops.services import Services
from llmops.training.params import LoraParams

ROOT = Path(__file__).parents[2]
GUIDE = ROOT / "docs" / "finetuning.md"
DEPLOY_SUBCOMMANDS = {"version", "status", "promote", "rollback", "history", "undeploy"}
services = test_admin_openapi.services  # the fixture: the services of a server with one echo model


def _parsed(args: list[str]) -> str:
    if args[:1] == ["deploy"] and len(args) > 1 and args[1] not in DEPLOY_SUBCOMMANDS:
        args = ["deploy", "version", *args[1:]]
    return _parse_cli(args)[0]


def test_the_guide_commands_parse() -> None:
    commands = _llmops_commands(GUIDE.read_text())
    used = {_parsed(args) for args in commands}
    assert {f"finetune {name}" for name in ("run", "show", "list", "logs", "cancel", "resume")} <= used
    loop = {"datasets from-traces", "registry show", "registry lineage", "deploy version", "evals run"}
    assert loop <= used


def test_the_readme_section_commands_parse() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Fine-tuning\n", 1)[1].split("\n## ", 1)[0]
    used = {_parsed(args) for args in _llmops_commands(section)}
    assert used == {"finetune run", "finetune show", "finetune cancel", "finetune resume"}


def test_the_option_table_names_real_options_and_every_parameter() -> None:
    text = GUIDE.read_text()
    table = text.split("**Hyper-parameters.**", 1)[1].split("\n\n## ", 1)[0]
    named = set(re.findall(r"`(--[a-z-]+)`", table))
    _, defaults = _parse_cli(["finetune", "run"])
    options = {f"--{name.replace('_', '-')}" for name in defaults}
    assert named <= options | {"--lr"}, named - options
    parameters = {f"--{item.name.replace('_', '-')}" for item in fields(LoraParams)}
    assert parameters - {"--eval-max-examples"} <= named


def test_the_guide_names_every_route_and_its_body_validates(services: Services) -> None:
    text = GUIDE.read_text()
    schema = create_admin_app(services).openapi()
    routes = {(method.upper(), path) for path, item in schema["paths"].items() for method in item}
    named = set(re.findall(r"`(GET|POST|PUT|DELETE) (/api/finetune[^`?\s]*)", text))
    assert named == {(method, path) for method, path in routes if path.startswith("/api/finetune")}
    bodies = [
        words[index + 1]
        for block in text.split("```bash\n")[1:]
        for words in [shlex.split(block.split("```", 1)[0].replace("\\\n", " "))]
        for index, word in enumerate(words)
        if word == "-d"
    ]
    assert len(bodies) == 1
    FinetuneIn.model_validate_json(bodies[0])

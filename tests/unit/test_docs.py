"""The docs stay in step with the code they describe."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops.settings import Settings

if TYPE_CHECKING:
    from llmops.prompts.spec import PromptFile

DOCS = Path(__file__).parents[2] / "docs"


def test_configuration_doc_lists_every_setting() -> None:
    text = (DOCS / "configuration.md").read_text()
    missing = [name for name in Settings.model_fields if f"`LLMOPS_{name.upper()}`" not in text]
    assert not missing, f"docs/configuration.md does not list {missing}"


def _yaml_blocks(text: str) -> list[str]:
    return [block.split("```", 1)[0] for block in text.split("```yaml\n")[1:]]


def test_gateway_guide_examples_are_valid_configs() -> None:
    import yaml

    from llmops.model_config import ModelConfig

    blocks = _yaml_blocks((DOCS / "gateway.md").read_text())
    assert blocks
    complete = yaml.safe_load(blocks[-1])
    settings = Settings(**complete)
    assert len(settings.models) >= 3
    for block in blocks[:-1]:
        data = yaml.safe_load(block)
        entries = data.get("models") if isinstance(data, dict) and "models" in data else None
        for entry in entries or []:
            ModelConfig.model_validate(entry)


def _prompt_files(text: str, where: str) -> dict[str, PromptFile]:
    """The prompt files among a document's YAML examples (those with messages or a template), checked
    as `llmops prompts push` checks them: the file's schema, then the templates against the variables."""
    import yaml

    from llmops.prompts.services import parse_prompt_file
    from llmops.prompts.templates import check_content

    found = {}
    for block in _yaml_blocks(text):
        data = yaml.safe_load(block)
        if isinstance(data, dict) and ("messages" in data or "template" in data):
            spec = parse_prompt_file(data, where)
            check_content(spec.content())
            found[spec.name] = spec
    return found


def test_prompt_guide_examples_are_valid() -> None:
    import yaml

    from llmops.model_config import ModelConfig
    from llmops.prompts.expansion import variable_grid
    from llmops.prompts.templates import render

    text = (DOCS / "prompts.md").read_text()
    prompts = _prompt_files(text, "docs/prompts.md")
    assert {"support-answer", "summary"} <= set(prompts)
    support = prompts["support-answer"].content()
    for block in _yaml_blocks(text):
        data = yaml.safe_load(block)
        assert isinstance(data, dict), block
        first_line = block.splitlines()[0]
        if "models" in data:
            for entry in data["models"]:
                ModelConfig.model_validate(entry)
        elif first_line.startswith("# vars.yaml"):
            grid = variable_grid(support, data)
            assert grid.total > 1
            for index in range(grid.total):
                render(support, grid.combination(index))
        elif first_line.startswith("# vars-one.yaml"):
            render(support, data)


def test_readme_prompt_example_is_valid() -> None:
    readme = (DOCS.parent / "README.md").read_text()
    assert "support-answer" in _prompt_files(readme, "README.md")


def test_data_preparation_guide_recipe_is_valid() -> None:
    """The complete recipe of docs/datasets.md names real steps with parameters they accept."""
    from llmops.datasets.cleaning.base import BUILTIN_STEPS, StepContext, StepRegistry
    from llmops.datasets.cleaning.recipe import Recipe

    blocks = [block for block in _yaml_blocks((DOCS / "datasets.md").read_text()) if "steps:" in block]
    assert blocks
    recipe = Recipe.from_yaml(blocks[-1])
    steps = recipe.build(StepRegistry(load_plugins=False), StepContext())
    documented = {step.name for step in steps}
    optional = {"lowercase", "remove_stopwords", "correct_spelling"}
    assert documented | optional == set(BUILTIN_STEPS)


def test_readme_recipe_is_valid() -> None:
    from llmops.datasets.cleaning.base import StepContext, StepRegistry
    from llmops.datasets.cleaning.recipe import Recipe

    readme = (DOCS.parent / "README.md").read_text()
    blocks = [block for block in _yaml_blocks(readme) if block.startswith("steps:")]
    assert len(blocks) == 1
    assert len(Recipe.from_yaml(blocks[0]).build(StepRegistry(load_plugins=False), StepContext())) == 6


def _llmops_commands(text: str) -> list[list[str]]:
    """The `llmops ...` lines of a document's bash blocks (continuations joined), as argument lists."""
    import shlex

    found = []
    for block in text.split("```bash\n")[1:]:
        for line in block.split("```", 1)[0].replace("\\\n", " ").splitlines():
            if line.startswith("llmops "):
                words = shlex.split(line, comments=True)
                found.append(words[1 : -1 if words[-1] == "&" else None])
    return found


def _parse_cli(args: list[str]) -> tuple[str, dict[str, Any]]:
    """Parse a command line as `llmops` would, without running it: an unknown command or option, a
    missing argument or a bad value fails here. Returns the command's path and its parsed values.
    Typer vendors its own click, so the tree is walked by shape rather than by class."""
    import typer

    from llmops.cli.main import app

    command: Any = typer.main.get_command(app)
    path: list[str] = []
    rest = args[2:] if args[:1] == ["--config"] else args
    while getattr(command, "commands", None) is not None:
        assert rest, f"`llmops {' '.join(args)}` names no command"
        assert rest[0] in command.commands, f"`llmops {' '.join(args)}`: no command {rest[0]}"
        path.append(rest[0])
        command, rest = command.commands[rest[0]], rest[1:]
    params: dict[str, Any] = command.make_context(" ".join(path), list(rest)).params
    return " ".join(path), params


def _checked_metrics(text: str, where: str) -> set[str]:
    """Every `llmops` command of the document parses; returns the metric names its commands use."""
    from llmops.evals.scorers.registry import parse_spec

    used = set()
    commands = _llmops_commands(text)
    assert commands, f"{where} shows no llmops command"
    for args in commands:
        path, params = _parse_cli(args)
        if path.startswith("evals "):
            metrics = params.get("metric") or []
            assert isinstance(metrics, list | tuple)
            used |= {parse_spec(str(spec))[0] for spec in metrics}
    return used


def test_evaluation_guide_commands_parse_and_name_real_metrics() -> None:
    import re

    from llmops.evals.scorers.registry import ScorerRegistry, parse_spec

    text = (DOCS / "evals.md").read_text()
    known = set(ScorerRegistry(load_plugins=False).names())
    assert _checked_metrics(text, "docs/evals.md") - known == set()
    listed = text.split("The names:", 1)[1].split("and your own", 1)[0]
    assert {parse_spec(name)[0] for name in re.findall(r"`([^`]+)`", listed)} == known


def test_evaluation_guide_options_exist() -> None:
    """Every `--option` the guide's prose names is an option of an `llmops evals` command (or `--config`)."""
    import re

    import typer

    from llmops.cli.evals import app as evals_app
    from llmops.cli.main import app

    group: Any = typer.main.get_command(evals_app)
    assert "--config" in {opt for param in typer.main.get_command(app).params for opt in param.opts}
    options = {"--config"}
    for command in group.commands.values():
        options |= {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    text = (DOCS / "evals.md").read_text()
    prose = " ".join(re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", text, flags=re.DOTALL)))
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", prose))
    assert named - options == set()
    assert {"--model", "--prompt", "--endpoint", "--output-field", "--traces", "--cache"} <= named


def test_evaluation_guide_routes_and_bodies_match_the_api() -> None:
    """The routes the guide names exist with their methods in the API's contract (the snapshot that
    tests/unit/test_openapi_snapshot.py keeps equal to the live schema); its request bodies are valid."""
    import json
    import re
    import shlex

    from llmops.server.eval_schema import GateIn, LabelIn, RunIn

    schema = json.loads((DOCS.parent / "tests" / "snapshots" / "admin-openapi.json").read_text())
    routes = {
        (method.upper(), re.sub(r"\{[^}]*\}", "{}", path))
        for path, item in schema["paths"].items()
        for method in item
    }
    text = (DOCS / "evals.md").read_text()
    named = {
        (method, re.sub(r"\{[^}]*\}", "{}", path))
        for method, path in re.findall(r"`(GET|POST) (/api/[^`?\s]+)", text)
        if path != "/api/openapi.json"
    }
    assert ("POST", "/api/evals/gate") in named
    assert named - routes == set()
    bodies = {"/api/evals": RunIn, "/api/evals/gate": GateIn, "/labels": LabelIn}
    checked = set()
    for block in text.split("```bash\n")[1:]:
        if "curl " not in block.split("```", 1)[0]:
            continue
        words = shlex.split(block.split("```", 1)[0].replace("\\\n", " "), comments=True)
        for start in [index for index, word in enumerate(words) if word == "curl"]:
            call = words[start + 1 :]
            call = call[: call.index("curl")] if "curl" in call else call
            if "-d" not in call:
                continue
            url = next(word for word in call if "/api/" in word).split("?")[0]
            suffix = next(key for key in bodies if url.endswith(key))
            bodies[suffix].model_validate_json(call[call.index("-d") + 1])
            checked.add(suffix)
    assert checked == set(bodies)


def test_readme_evaluation_commands_parse() -> None:
    from llmops.evals.scorers.registry import ScorerRegistry

    readme = (DOCS.parent / "README.md").read_text()
    section = readme.split("\n## Evaluation\n", 1)[1].split("\n## ", 1)[0]
    used = _checked_metrics(section, "README.md, Evaluation")
    assert used - set(ScorerRegistry(load_plugins=False).names()) == set()

"""The docs stay in step with the code they describe."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

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

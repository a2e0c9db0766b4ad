"""The docs stay in step with the code they describe."""

from __future__ import annotations

from pathlib import Path

from llmops.settings import Settings

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

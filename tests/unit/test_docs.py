"""The docs stay in step with the code they describe."""

from __future__ import annotations

from pathlib import Path

from llmops.settings import Settings

DOCS = Path(__file__).parents[2] / "docs"


def test_configuration_doc_lists_every_setting() -> None:
    text = (DOCS / "configuration.md").read_text()
    missing = [name for name in Settings.model_fields if f"`LLMOPS_{name.upper()}`" not in text]
    assert not missing, f"docs/configuration.md does not list {missing}"

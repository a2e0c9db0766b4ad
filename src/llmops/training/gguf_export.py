"""Hugging Face Llama folders → GGUF files (F16 or F32) that llama.cpp, and so the ``local`` provider, serves.

Written with the ``gguf`` library, tensor by tensor: the header and tensor table are planned from the
safetensors headers, then each tensor is read, converted and written before the next is loaded, so the
model is never held twice in memory. The file appears by rename once complete.

Two details make the result load and behave like llama.cpp's own conversion:

- Llama attention: Hugging Face stores each head's rotary dimensions as two halves, llama.cpp as
  interleaved pairs, so Q and K weights are permuted per head (transformers undoes exactly this when
  it loads a GGUF; the tests check the round trip).
- The tokenizer: with ``tokenizer_source`` a GGUF file (the packaged SmolLM2 one, for SmolLM2 and
  models tuned from it) its ``tokenizer.*`` keys are copied as they are; otherwise they are built from
  the folder's ``tokenizer.json`` (BPE vocabulary, added tokens as control tokens, merges, special
  ids, chat template). llama.cpp tells pre-tokenisers apart by name: SmolLM's (digits one by one,
  then byte-level) is recognised, plain byte-level is ``gpt-2``, anything else llama.cpp's default.

Errors: :class:`~llmops.errors.UserError` for a model that is not Llama-architecture, weights that
are not safetensors, a tokenizer that does not fit the model, or a missing ``train`` extra.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops.errors import UserError
from llmops.training.base_models import TRAIN_EXTRA_HINT, architecture_of

if TYPE_CHECKING:
    from gguf import GGUFWriter

LLAMA_ARCHITECTURES = ("LlamaForCausalLM",)
EXPORT_DTYPES = ("f16", "f32")
TIED_OUTPUT = "lm_head.weight"
UNSAVED_BUFFERS = ("rotary_emb.inv_freq",)


@dataclass(frozen=True)
class LlamaShape:
    """The hyper-parameters llama.cpp reads as ``llama.*`` keys, from a config.json."""

    context_length: int
    embedding_length: int
    block_count: int
    feed_forward_length: int
    head_count: int
    head_count_kv: int
    rope_dimension_count: int
    rope_freq_base: float
    rms_norm_eps: float
    vocab_size: int
    tied_embeddings: bool

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LlamaShape:
        rope_scaling = config.get("rope_scaling") or {}
        rope_type = rope_scaling.get("rope_type", rope_scaling.get("type", "default"))
        if rope_type != "default":
            raise UserError(f"GGUF export does not handle {rope_type} rope scaling", param="model")
        heads = int(config["num_attention_heads"])
        hidden = int(config["hidden_size"])
        rope_parameters = config.get("rope_parameters") or {}
        return cls(
            context_length=int(config.get("max_position_embeddings", 2048)),
            embedding_length=hidden,
            block_count=int(config["num_hidden_layers"]),
            feed_forward_length=int(config["intermediate_size"]),
            head_count=heads,
            head_count_kv=int(config.get("num_key_value_heads") or heads),
            rope_dimension_count=int(config.get("head_dim") or hidden // heads),
            rope_freq_base=float(config.get("rope_theta", rope_parameters.get("rope_theta", 10000.0))),
            rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
            vocab_size=int(config["vocab_size"]),
            tied_embeddings=bool(config.get("tie_word_embeddings", False)),
        )


@dataclass(frozen=True)
class _PlannedTensor:
    gguf_name: str
    source: Path
    hf_name: str
    shape: tuple[int, ...]
    dtype: str
    rotary_heads: int | None


def export_gguf(
    hf_dir: Path,
    out: Path,
    *,
    dtype: str = "f16",
    tokenizer_source: Path | None = None,
    name: str | None = None,
) -> Path:
    """Write the model in ``hf_dir`` as a GGUF file at ``out`` (2-D weights in ``dtype``, norms F32)."""
    dtype = dtype.lower()
    if dtype not in EXPORT_DTYPES:
        raise UserError(f"GGUF export writes {' or '.join(EXPORT_DTYPES)}, not {dtype!r}", param="dtype")
    architecture = architecture_of(hf_dir)
    if architecture not in LLAMA_ARCHITECTURES:
        raise UserError(
            f"GGUF export supports Llama-architecture models; {architecture} is not", param="model"
        )
    try:
        import gguf
    except ImportError as error:
        raise UserError(TRAIN_EXTRA_HINT) from error
    try:
        shape = LlamaShape.from_config(json.loads((hf_dir / "config.json").read_text(encoding="utf-8")))
    except KeyError as error:
        raise UserError(f"{hf_dir / 'config.json'} lacks {error.args[0]}", param="model") from error
    plan = _plan_tensors(hf_dir, shape, dtype)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{uuid.uuid4().hex}.partial")
    writer = gguf.GGUFWriter(partial, arch=gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    try:
        file_type = gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.ALL_F32
        _write_metadata(writer, shape, name or hf_dir.name, int(file_type))
        _write_tokenizer(writer, tokenizer_source or hf_dir, shape.vocab_size)
        _write_tensors(writer, plan, partial)
        writer.close()
        os.replace(partial, out)
    finally:
        writer.close()
        partial.unlink(missing_ok=True)
    return out


def _write_metadata(writer: GGUFWriter, shape: LlamaShape, name: str, file_type: int) -> None:
    import gguf

    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_context_length(shape.context_length)
    writer.add_embedding_length(shape.embedding_length)
    writer.add_block_count(shape.block_count)
    writer.add_feed_forward_length(shape.feed_forward_length)
    writer.add_head_count(shape.head_count)
    writer.add_head_count_kv(shape.head_count_kv)
    writer.add_rope_dimension_count(shape.rope_dimension_count)
    writer.add_rope_freq_base(shape.rope_freq_base)
    writer.add_layer_norm_rms_eps(shape.rms_norm_eps)
    writer.add_vocab_size(shape.vocab_size)


def _plan_tensors(hf_dir: Path, shape: LlamaShape, dtype: str) -> list[_PlannedTensor]:
    """Every tensor to write, with its GGUF name, shape and type, from the safetensors headers alone."""
    import gguf
    from safetensors import safe_open

    files = sorted(hf_dir.glob("*.safetensors"))
    if not files:
        raise UserError(f"GGUF export reads safetensors weights; {hf_dir} has none", param="model")
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, shape.block_count)
    rotary_heads = {"attn_q": shape.head_count, "attn_k": shape.head_count_kv}
    plan: list[_PlannedTensor] = []
    for file in files:
        with safe_open(file, framework="pt") as weights:
            for hf_name in weights.keys():
                if hf_name.endswith(UNSAVED_BUFFERS) or (shape.tied_embeddings and hf_name == TIED_OUTPUT):
                    continue
                gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
                if gguf_name is None:
                    raise UserError(f"GGUF export cannot place tensor {hf_name} of {hf_dir}", param="model")
                dims = tuple(int(d) for d in weights.get_slice(hf_name).get_shape())
                role = gguf_name.split(".")[-2]
                plan.append(
                    _PlannedTensor(
                        gguf_name=gguf_name,
                        source=file,
                        hf_name=hf_name,
                        shape=dims,
                        dtype="float16" if dtype == "f16" and len(dims) > 1 else "float32",
                        rotary_heads=rotary_heads.get(role),
                    )
                )
    return plan


def _write_tensors(writer: GGUFWriter, plan: list[_PlannedTensor], path: Path) -> None:
    import numpy as np

    for tensor in plan:
        itemsize = np.dtype(tensor.dtype).itemsize
        writer.add_tensor_info(
            tensor.gguf_name, tensor.shape, np.dtype(tensor.dtype), math.prod(tensor.shape) * itemsize
        )
    writer.write_header_to_file(path)
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for array in _converted(plan):
        writer.write_tensor_data(array)


def _converted(plan: list[_PlannedTensor]) -> Iterator[Any]:
    """Each planned tensor as a numpy array in its GGUF layout and type, one at a time."""
    import torch
    from safetensors import safe_open

    with ExitStack() as stack:
        opened: dict[Path, Any] = {}
        for tensor in plan:
            if tensor.source not in opened:
                opened[tensor.source] = stack.enter_context(safe_open(tensor.source, framework="pt"))
            array = opened[tensor.source].get_tensor(tensor.hf_name).to(torch.float32).numpy()
            if tensor.rotary_heads is not None:
                array = _interleave_rotary_halves(array, tensor.rotary_heads)
            yield array.astype(tensor.dtype)


def _interleave_rotary_halves(weights: Any, heads: int) -> Any:
    """Per head, reorder rows from [first halves, second halves] to interleaved pairs (llama.cpp's rope)."""
    half = weights.shape[0] // heads // 2
    return weights.reshape(heads, 2, half, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def _write_tokenizer(writer: GGUFWriter, source: Path, vocab_size: int) -> None:
    if source.is_file() and source.suffix == ".gguf":
        count = _copy_gguf_tokenizer(writer, source)
    else:
        count = _build_hf_tokenizer(writer, source, vocab_size)
    if count != vocab_size:
        raise UserError(
            f"the tokenizer in {source} has {count} tokens but the model's vocabulary has {vocab_size}",
            param="tokenizer",
        )


def _copy_gguf_tokenizer(writer: GGUFWriter, source: Path) -> int:
    """Copy every ``tokenizer.*`` key of a GGUF file; the number of tokens it lists."""
    from gguf import GGUFReader, GGUFValueType

    reader = GGUFReader(source)
    for field in reader.fields.values():
        if not field.name.startswith("tokenizer."):
            continue
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), value_type, sub_type=sub_type)
    tokens = reader.get_field("tokenizer.ggml.tokens")
    return 0 if tokens is None else len(tokens.data)


def _build_hf_tokenizer(writer: GGUFWriter, folder: Path, vocab_size: int) -> int:
    """Write a GPT-2-style BPE tokenizer from a folder's tokenizer.json; the number of tokens."""
    from gguf import SpecialVocab, TokenType

    path = folder / "tokenizer.json"
    try:
        tokenizer = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"GGUF export needs a readable {path}: {error}", param="tokenizer") from error
    model = tokenizer.get("model") or {}
    if model.get("type") != "BPE":
        raise UserError(
            f"GGUF export supports BPE tokenizers; {path} is {model.get('type')}", param="tokenizer"
        )
    by_id: dict[int, tuple[str, TokenType]] = {
        int(index): (text, TokenType.NORMAL) for text, index in model["vocab"].items()
    }
    for added in tokenizer.get("added_tokens") or []:
        kind = TokenType.CONTROL if added.get("special") else TokenType.USER_DEFINED
        by_id[int(added["id"])] = (added["content"], kind)
    size = max(vocab_size, max(by_id) + 1)
    entries = [by_id.get(index, (f"[PAD{index}]", TokenType.UNUSED)) for index in range(size)]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_pre_tokenizer_name(tokenizer.get("pre_tokenizer") or {}))
    writer.add_token_list([text for text, _ in entries])
    writer.add_token_types([int(kind) for _, kind in entries])
    SpecialVocab(folder, load_merges=True, n_vocab=size).add_to_gguf(writer, quiet=True)
    return size


def _pre_tokenizer_name(pre_tokenizer: dict[str, Any]) -> str:
    """The llama.cpp name of a Hugging Face pre-tokeniser, for the ones we can recognise."""
    steps = pre_tokenizer.get("pretokenizers") or [pre_tokenizer]
    kinds = [step.get("type") for step in steps]
    splits_digits = any(step.get("type") == "Digits" and step.get("individual_digits") for step in steps)
    if splits_digits and kinds[-1] == "ByteLevel":
        return "smollm"
    if kinds == ["ByteLevel"]:
        return "gpt-2"
    return "default"

"""Base models: the smollm2 alias converted once from the packaged GGUF, local folders checked."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from llmops.errors import UserError
from llmops.providers.local import default_gguf
from llmops.training.base_models import BASE_ALIASES, resolve_base

pytestmark = pytest.mark.model


def test_aliases_name_one_converted_llama_folder(smollm2_hf_dir: Path, base_models_home: Path) -> None:
    short = resolve_base("smollm2", base_models_home)
    full = resolve_base(" SmolLM2-135M-Instruct ", base_models_home)

    assert short == full
    assert short.name == "smollm2-135m-instruct"
    assert short.hf_dir == smollm2_hf_dir == base_models_home / "models" / "base" / "smollm2-135m-instruct"
    assert short.gguf_source == default_gguf()
    assert short.architecture == "LlamaForCausalLM"
    assert (smollm2_hf_dir / "model.safetensors").stat().st_size > 500_000_000  # float32, 135M parameters
    assert not list(smollm2_hf_dir.parent.glob("*.partial"))


def test_a_second_call_reuses_the_converted_folder(smollm2_hf_dir: Path, base_models_home: Path) -> None:
    weights = smollm2_hf_dir / "model.safetensors"
    written = weights.stat().st_mtime_ns
    stages: list[tuple[str, int, int | None]] = []

    base = resolve_base("smollm2", base_models_home, progress=lambda *stage: stages.append(stage))

    assert base.hf_dir == smollm2_hf_dir
    assert stages == []
    assert weights.stat().st_mtime_ns == written


def test_the_converted_tokenizer_keeps_chatml_and_splits_text_as_llama_cpp_does(smollm2_hf_dir: Path) -> None:
    transformers = pytest.importorskip("transformers")
    llama_cpp = pytest.importorskip("llama_cpp")
    tokenizer = transformers.AutoTokenizer.from_pretrained(smollm2_hf_dir)
    served = llama_cpp.Llama(str(default_gguf()), vocab_only=True, verbose=False)
    text = "In 2024, 12345 people paid $3.50 each for tickets."

    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )

    assert prompt.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert tokenizer(text).input_ids == served.tokenize(text.encode(), add_bos=False)
    assert tokenizer(prompt).input_ids == served.tokenize(prompt.encode(), add_bos=False, special=True)


def test_a_model_folder_is_used_where_it_is(smollm2_hf_dir: Path, tmp_path: Path) -> None:
    base = resolve_base(str(smollm2_hf_dir), tmp_path)

    assert base.hf_dir == smollm2_hf_dir.resolve()
    assert base.name == "smollm2-135m-instruct"
    assert base.gguf_source is None
    assert base.architecture == "LlamaForCausalLM"
    assert not (tmp_path / "models").exists()


def test_a_missing_folder_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"^base model folder .*nowhere does not exist$") as caught:
        resolve_base(str(tmp_path / "nowhere"), tmp_path)
    assert "\n" not in caught.value.message


def test_a_folder_without_config_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"")

    with pytest.raises(UserError, match=r"is not a Hugging Face model folder: it has no config.json$"):
        resolve_base(str(tmp_path), tmp_path)


def test_a_folder_without_weights_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))

    with pytest.raises(UserError, match=r"has no model weights \(\*.safetensors or \*.bin\)$"):
        resolve_base(str(tmp_path), tmp_path)


def test_an_unknown_name_lists_the_aliases(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown base model 'gpt-9'") as caught:
        resolve_base("gpt-9", tmp_path)
    assert all(alias in caught.value.message for alias in BASE_ALIASES)


def test_without_transformers_the_error_names_the_train_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)

    with pytest.raises(UserError, match=r"pip install 'llmops\[train\]'"):
        resolve_base("smollm2", tmp_path)
    assert list((tmp_path / "models" / "base").iterdir()) == []

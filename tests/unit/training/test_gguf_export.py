"""GGUF export and quantisation, checked by running the files in llama.cpp against transformers."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from llmops.errors import UserError
from llmops.providers.local import default_gguf
from llmops.training.gguf_export import export_gguf
from llmops.training.quantize import QUANT_LEVELS, QuantReport, quantization_report, quantize_gguf

pytestmark = pytest.mark.model

gguf = pytest.importorskip("gguf")
llama_cpp = pytest.importorskip("llama_cpp")
np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

ENGLISH = (
    "The old lighthouse stood at the edge of the cliff for more than a hundred years. Every night its "
    "keeper climbed the narrow stairs, trimmed the wick and watched the ships pass safely through the "
    "dark water. When the storms came, the light was the only thing the sailors could see, and many of "
    "them owed their lives to the quiet man who never left his post."
)
VALIDATION_TEXTS = [
    "Fresh bread needs only flour, water, salt and yeast, but it also needs patience.",
    "The dough must rest and rise before it is shaped and baked until the crust is golden.",
    "Hi",  # one token: nothing to score
]
PROMPT = [{"role": "user", "content": "Write one sentence about the sea."}]
F32 = 0  # ggml_type GGML_TYPE_F32
MIXED_TEXT = "<|im_start|>user\nIn 2024, 12345 people paid $3.50 each — naïve café!<|im_end|>\n"


@contextmanager
def _llama(path: Path, **options: Any) -> Iterator[Any]:
    llm = llama_cpp.Llama(str(path), n_ctx=256, n_threads=1, logits_all=True, verbose=False, **options)
    try:
        yield llm
    finally:
        llm.close()


def _packaged() -> Path:
    path = default_gguf()
    assert path is not None
    return path


def _greedy(llm: Any, prompt: str, count: int) -> list[int]:
    tokens: list[int] = []
    for token in llm.generate(llm.tokenize(prompt.encode(), special=True), top_k=1, temp=0.0):
        tokens.append(token)
        if len(tokens) == count:
            break
    return tokens


def _perplexity(llm: Any, texts: Sequence[str]) -> tuple[float, int]:
    """exp(mean negative log-likelihood) over every token after the first of each text."""
    total, count = 0.0, 0
    for text in texts:
        tokens = llm.tokenize(text.encode())
        if len(tokens) < 2:
            continue
        llm.reset()
        llm.eval(tokens)
        logits = torch.tensor(llm.scores[: len(tokens) - 1], dtype=torch.float64)
        total += float(torch.nn.functional.cross_entropy(logits, torch.tensor(tokens[1:]), reduction="sum"))
        count += len(tokens) - 1
    return math.exp(total / count), count


@pytest.fixture(scope="module")
def exported(smollm2_hf_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The converted base exported to F16 with the packaged GGUF's tokenizer."""
    out = tmp_path_factory.mktemp("gguf") / "smollm2-f16.gguf"
    return export_gguf(smollm2_hf_dir, out, tokenizer_source=_packaged(), name="smollm2-test")


@pytest.fixture(scope="module")
def tiny_llama_dir(smollm2_hf_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random Llama (4 query heads over 2 key/value heads, untied output) with SmolLM2's tokenizer."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    config = transformers.LlamaConfig(
        vocab_size=49152,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=False,
        initializer_range=0.2,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(smollm2_hf_dir / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def tiny_gguf(tiny_llama_dir: Path) -> Path:
    """The tiny Llama in F32, its tokenizer built from the folder's tokenizer.json."""
    return export_gguf(tiny_llama_dir, tiny_llama_dir.parent / "tiny-f32.gguf", dtype="f32")


@pytest.fixture(scope="module")
def quantized(exported: Path) -> dict[str, Path]:
    return {
        level: quantize_gguf(exported, exported.with_name(f"smollm2-{level}.gguf"), level)
        for level in ("q8_0", "q4_k_m")
    }


@pytest.fixture(scope="module")
def reports(exported: Path, quantized: dict[str, Path]) -> dict[str, QuantReport]:
    levels = {"f16": exported, **quantized}
    measured = quantization_report(levels, VALIDATION_TEXTS, max_tokens=8, speed_runs=1, threads=1)
    return {report.level: report for report in measured}


def test_f16_export_generates_what_transformers_generates(smollm2_hf_dir: Path, exported: Path) -> None:
    tokenizer = transformers.AutoTokenizer.from_pretrained(smollm2_hf_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(smollm2_hf_dir, dtype=torch.float32)
    prompt = tokenizer.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        expected = model.generate(ids, max_new_tokens=8, do_sample=False)[0, ids.shape[1] :].tolist()

    with _llama(exported) as llm:
        assert _greedy(llm, prompt, 8) == expected


def test_f16_perplexity_is_close_to_the_packaged_model(exported: Path) -> None:
    with _llama(exported) as llm:
        ours, _ = _perplexity(llm, [ENGLISH])
    with _llama(_packaged()) as llm:
        packaged, _ = _perplexity(llm, [ENGLISH])

    assert ours < 100
    assert abs(ours - packaged) / packaged < 0.15


def test_the_export_carries_llama_metadata_tokenizer_and_tensor_types(exported: Path) -> None:
    with _llama(exported, vocab_only=True) as ours, _llama(_packaged(), vocab_only=True) as packaged:
        copied = [key for key in packaged.metadata if key.startswith(("llama.", "tokenizer."))]
        assert len(copied) > 15
        assert {key: ours.metadata.get(key) for key in copied} == {
            key: packaged.metadata[key] for key in copied
        }
        assert ours.metadata["general.name"] == "smollm2-test"
        assert ours.metadata["general.file_type"] == str(int(gguf.LlamaFileType.MOSTLY_F16))

    types = {tensor.name: tensor.tensor_type for tensor in gguf.GGUFReader(exported).tensors}
    assert "output.weight" not in types  # tied to token_embd.weight
    assert types["token_embd.weight"] == types["blk.0.attn_q.weight"] == gguf.GGMLQuantizationType.F16
    assert types["blk.0.attn_norm.weight"] == types["output_norm.weight"] == gguf.GGMLQuantizationType.F32
    assert len(types) == 2 + 9 * 30
    assert not list(exported.parent.glob("*.partial"))


def test_a_grouped_query_llama_round_trips_through_f32(tiny_llama_dir: Path, tiny_gguf: Path) -> None:
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    ids = tokenizer(ENGLISH).input_ids[:40]
    with torch.no_grad():
        expected = model(torch.tensor([ids])).logits[0].numpy()

    with _llama(tiny_gguf, type_k=F32, type_v=F32) as llm:  # llama.cpp's f16 cache would round keys
        llm.eval(ids)
        got = np.asarray(llm.scores[: len(ids)])

    assert np.abs(got - expected).max() < 1e-3 * float(expected.std())
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()


def test_a_tokenizer_built_from_the_folder_tokenises_as_the_packaged_one(tiny_gguf: Path) -> None:
    with _llama(tiny_gguf, vocab_only=True) as ours, _llama(_packaged(), vocab_only=True) as packaged:
        for key in ("pre", "model", "bos_token_id", "eos_token_id", "padding_token_id", "unknown_token_id"):
            assert ours.metadata[f"tokenizer.ggml.{key}"] == packaged.metadata[f"tokenizer.ggml.{key}"]
        assert ours.metadata["tokenizer.chat_template"] == packaged.metadata["tokenizer.chat_template"]
        assert ours.n_vocab() == packaged.n_vocab() == 49152
        for special in (True, False):
            assert ours.tokenize(MIXED_TEXT.encode(), special=special) == packaged.tokenize(
                MIXED_TEXT.encode(), special=special
            )
        for token in range(ours.n_vocab()):
            assert ours.detokenize([token], special=False) == packaged.detokenize([token], special=False)


def test_only_llama_models_are_exported(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))

    expected = "^GGUF export supports Llama-architecture models; GPT2LMHeadModel is not$"
    with pytest.raises(UserError, match=expected):
        export_gguf(tmp_path, tmp_path / "out.gguf")
    assert not list(tmp_path.glob("*.gguf"))


def test_an_unknown_export_type_is_refused(smollm2_hf_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="GGUF export writes f16 or f32, not 'q4'"):
        export_gguf(smollm2_hf_dir, tmp_path / "out.gguf", dtype="q4")


def test_quantised_files_are_smaller_and_still_generate(exported: Path, quantized: dict[str, Path]) -> None:
    assert quantized["q8_0"].stat().st_size < 0.6 * exported.stat().st_size
    assert quantized["q4_k_m"].stat().st_size < 0.8 * quantized["q8_0"].stat().st_size
    for path in quantized.values():
        with _llama(path) as llm:
            assert "Paris" in llm.detokenize(_greedy(llm, "The capital of France is", 6)).decode()
    assert not list(exported.parent.glob("*.partial"))


def test_the_report_measures_every_level(reports: dict[str, QuantReport]) -> None:
    assert list(reports) == ["f16", "q8_0", "q4_k_m"]
    for report in reports.values():
        assert report.bytes == report.path.stat().st_size
        assert report.sha256 == hashlib.sha256(report.path.read_bytes()).hexdigest()
        assert 0 < report.tokens_per_second < math.inf
        assert 0 < report.load_seconds < 30
        assert report.scored_tokens == reports["f16"].scored_tokens
        assert json.loads(json.dumps(report.to_dict()))["path"] == str(report.path)
    perplexities = {level: report.perplexity for level, report in reports.items()}
    assert all(value is not None and 1 < value < 200 for value in perplexities.values())
    assert perplexities["q8_0"] == pytest.approx(perplexities["f16"], rel=0.05)
    assert perplexities["q4_k_m"] == pytest.approx(perplexities["f16"], rel=0.25)


def test_report_perplexity_scores_every_token_after_the_first(
    exported: Path, reports: dict[str, QuantReport]
) -> None:
    with _llama(exported) as llm:
        expected, scored = _perplexity(llm, VALIDATION_TEXTS)
        assert len(llm.tokenize(VALIDATION_TEXTS[-1].encode())) == 1

    assert reports["f16"].scored_tokens == scored
    assert reports["f16"].perplexity == pytest.approx(expected, rel=1e-4)


def test_an_unknown_level_lists_the_levels(exported: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown quantisation level 'q3'") as caught:
        quantize_gguf(exported, tmp_path / "out.gguf", "q3")
    assert all(level in caught.value.message for level in QUANT_LEVELS)
    assert not list(tmp_path.iterdir())


def test_quantising_a_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        quantize_gguf(tmp_path / "none.gguf", tmp_path / "out.gguf", "q8_0")

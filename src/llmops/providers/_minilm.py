"""all-MiniLM-L6-v2 sentence embeddings on onnxruntime, without torch.

The same pipeline as sentence-transformers' model: WordPiece tokens (at most 256), the
transformer, mean pooling over the attention mask, then L2 normalisation. Texts are sorted by
length and run in batches, so padding stays small; padded positions are masked out, so a
text's vector does not depend on its batch. onnxruntime sessions are thread-safe, so no lock.
onnxruntime, tokenizers and numpy are imported inside functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenizers import Tokenizer

MAX_TOKENS = 256
BATCH_SIZE = 32


@dataclass(frozen=True, slots=True)
class Embeddings:
    vectors: list[list[float]]
    tokens: int


class MiniLM:
    """A loaded ONNX session and its tokenizer."""

    def __init__(self, session: Any, tokenizer: Tokenizer) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self._input_names = {item.name for item in session.get_inputs()}
        width = session.get_outputs()[0].shape[-1]
        self.dimensions = width if isinstance(width, int) else 384

    @classmethod
    def load(cls, model: Path, tokenizer: Path, *, threads: int) -> MiniLM:
        """Blocking: read the model and the tokenizer (run it in a worker thread)."""
        import onnxruntime
        from tokenizers import Tokenizer

        text_tokenizer = Tokenizer.from_file(str(tokenizer))
        text_tokenizer.enable_truncation(max_length=MAX_TOKENS)
        text_tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.enable_cpu_mem_arena = False  # the arena keeps its high-water mark for ever: memory for idle
        # idle intra-op threads sleep instead of spinning: spinning took the core the event loop needed
        # and, on a busy 2-core machine, made one short text take 12-15 ms instead of 8
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        return cls(session, text_tokenizer)

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids) if text else 0

    def embed(self, texts: list[str]) -> Embeddings:
        """Blocking: unit vectors in the order of ``texts``, and the tokens the model read."""
        order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
        vectors: list[list[float]] = [[] for _ in texts]
        tokens = 0
        for start in range(0, len(order), BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
            rows, used = self._embed_batch([texts[index] for index in batch])
            tokens += used
            for index, row in zip(batch, rows, strict=True):
                vectors[index] = row
        return Embeddings(vectors, tokens)

    def _embed_batch(self, texts: list[str]) -> tuple[list[list[float]], int]:
        import numpy as np

        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([encoding.ids for encoding in encodings], dtype=np.int64)
        mask = np.array([encoding.attention_mask for encoding in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        unit = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return unit.astype(np.float32).tolist(), int(mask.sum())

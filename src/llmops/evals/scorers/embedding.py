"""Embedding similarity: the cosine of the output's and the reference's sentence embeddings.

The embedder is a run resource (:attr:`ScorerResources.embedder`); :func:`packaged_embedder` gives the
embedded all-MiniLM-L6-v2, loaded on its first use, so a run that never asks for this metric never loads
it. A run scores items in batches (:meth:`EmbeddingSimilarity.score_many`): one embedding call for
all the texts of a batch, in a worker thread.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from llmops.evals.scorers.base import Score, ScoreInput
from llmops.evals.scorers.basic import reference_text
from llmops.evals.scorers.registry import MissingResource, Scorer

if TYPE_CHECKING:
    from llmops.providers._minilm import MiniLM
    from llmops.settings import Settings


class PackagedMiniLM:
    """all-MiniLM-L6-v2 on onnxruntime, loaded by the first :meth:`embed` call (a blocking call)."""

    def __init__(self, model: Path, tokenizer: Path, *, threads: int) -> None:
        self._files = (model, tokenizer)
        self._threads = threads
        self._model: MiniLM | None = None
        self._lock = threading.Lock()  # one load, even when two worker threads ask at once

    def embed(self, texts: list[str]) -> list[list[float]]:
        return self._loaded().embed(texts).vectors  # onnxruntime sessions are thread-safe

    def _loaded(self) -> MiniLM:
        with self._lock:
            if self._model is None:
                from llmops.providers._minilm import MiniLM

                self._model = MiniLM.load(*self._files, threads=self._threads)
            return self._model


def packaged_embedder(settings: Settings | None = None) -> PackagedMiniLM | None:
    """The embedded MiniLM (not loaded yet), or None when the ``local`` extra is not installed."""
    from llmops.providers.local import default_minilm

    files = default_minilm()
    if files is None or importlib.util.find_spec("onnxruntime") is None:
        return None
    threads = (settings.local_threads if settings else None) or os.cpu_count() or 1
    return PackagedMiniLM(*files, threads=threads)


def cosine(left: Sequence[float], right: Sequence[float]) -> float:
    """Cosine similarity; 0.0 when either vector is zero."""
    dot = sum(a * b for a, b in zip(left, right, strict=True))
    norms = math.sqrt(sum(a * a for a in left)) * math.sqrt(sum(b * b for b in right))
    return dot / norms if norms else 0.0


class EmbeddingSimilarity(Scorer):
    """Cosine similarity of output and reference embeddings (-1 to 1; MiniLM gives about 0 to 1)."""

    name = "embedding_similarity"
    needs = frozenset({"embedder"})

    async def score(self, item: ScoreInput) -> Score:
        return (await self.score_many([item]))[0]

    async def score_many(self, items: Sequence[ScoreInput]) -> list[Score]:
        embedder = self.resources.embedder
        if embedder is None:
            raise MissingResource(f"metric {self.name!r} needs the embedded MiniLM model")
        pairs = [
            (index, item.output, reference)
            for index, item in enumerate(items)
            if item.output is not None and (reference := reference_text(item.expected)) is not None
        ]
        scores = [Score(None)] * len(items)
        if not pairs:
            return scores
        texts = [text for _, output, reference in pairs for text in (output, reference)]
        vectors = await asyncio.to_thread(embedder.embed, texts)
        for position, (index, _, _) in enumerate(pairs):
            scores[index] = Score(cosine(vectors[2 * position], vectors[2 * position + 1]))
        return scores

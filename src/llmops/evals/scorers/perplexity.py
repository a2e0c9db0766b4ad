"""Perplexity of the output (or, with ``perplexity:expected``, of the reference) under a local model.

The GGUF model (the run's ``perplexity_model``, by default the packaged SmolLM2-135M-Instruct) is
loaded by llama.cpp with logits for every position. For each item the conditioning text (the item's
input, or its messages' text, followed by a newline; the model's BOS token when there is none) and then
the scored text are evaluated in one pass, and the perplexity is exp of the mean negative
log-likelihood of the scored text's tokens, each predicted from everything before it. Lower is better.
A text longer than the context window is cut to fit (the reasoning says so), and the conditioning
keeps its last tokens.

Each scorer instance loads its own model on first use, in a worker thread; llama.cpp contexts are not
thread-safe, so one item is measured at a time.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
from typing import TYPE_CHECKING, Any

from llmops.evals.scorers.base import Score, ScoreInput
from llmops.evals.scorers.basic import reference_text
from llmops.evals.scorers.registry import MissingExtra, MissingResource, Scorer, ScorerResources

if TYPE_CHECKING:
    from pathlib import Path

    from llama_cpp import Llama

DEFAULT_CONTEXT_TOKENS = 2048


class Perplexity(Scorer):
    """exp(mean NLL) of the scored text's tokens given the input; ``perplexity:expected`` scores the
    reference instead of the output."""

    name = "perplexity"
    higher_is_better = False
    needs = frozenset({"perplexity"})
    arg_use = "optional"
    arg_choices = ("output", "expected")

    def __init__(self, arg: str | None = None, resources: ScorerResources | None = None) -> None:
        super().__init__(arg, resources)
        if importlib.util.find_spec("llama_cpp") is None:
            raise MissingExtra(self.name, "local")
        path = self.resources.gguf()
        if path is None:
            raise MissingResource(f"metric {self.name!r} needs a GGUF model: pip install 'llmops[local]'")
        self.requires_output = arg != "expected"
        self._path: Path = path
        settings = self.resources.settings
        self._context_tokens = settings.local_context_tokens if settings else DEFAULT_CONTEXT_TOKENS
        self._threads = (settings.local_threads if settings else None) or os.cpu_count() or 1
        self._llama: Llama | None = None
        self._thread_lock = threading.Lock()  # held by the worker thread itself, even past a cancellation
        self._turn = asyncio.Lock()  # waiters queue here, not in worker threads

    async def score(self, item: ScoreInput) -> Score:
        text = reference_text(item.expected) if self.arg == "expected" else item.output
        if not text:
            return Score(None)
        async with self._turn:
            return await asyncio.to_thread(self._measure, _conditioning(item), text)

    def close(self) -> None:
        """Free the model (a later item loads it again)."""
        with self._thread_lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None

    def _measure(self, conditioning: str, text: str) -> Score:
        with self._thread_lock:
            if self._llama is None:
                from llama_cpp import Llama

                self._llama = Llama(
                    model_path=str(self._path),
                    n_ctx=self._context_tokens,
                    n_threads=self._threads,
                    n_threads_batch=self._threads,
                    logits_all=True,
                    verbose=False,
                )
            return perplexity(self._llama, conditioning, text)


def _conditioning(item: ScoreInput) -> str:
    """What the scored text follows: the input, else the text of the messages."""
    if item.input:
        return item.input + "\n"
    contents = [m.get("content") for m in item.messages or []]
    text = "\n".join(content for content in contents if isinstance(content, str) and content)
    return text + "\n" if text else ""


def perplexity(llama: Llama, conditioning: str, text: str) -> Score:
    """Blocking: the perplexity of ``text`` after ``conditioning`` under ``llama`` (logits_all=True)."""
    import numpy as np

    context = llama.tokenize(conditioning.encode(), add_bos=False, special=False) if conditioning else []
    scored = llama.tokenize(text.encode(), add_bos=False, special=False)
    if not context:
        bos = llama.token_bos()
        context, scored = ([bos], scored) if bos >= 0 else (scored[:1], scored[1:])
    window = int(llama.n_ctx())
    cut = len(scored) > window - 1
    scored = scored[: window - 1]
    context = context[-(window - len(scored)) :]
    if not scored:
        return Score(None, reasoning="the text is a single token: nothing to predict")
    tokens = context + scored
    llama.reset()  # type: ignore[no-untyped-call]  # llama-cpp-python leaves it unannotated
    llama.eval(tokens)
    logits: Any = np.asarray(llama.scores[len(context) - 1 : len(tokens) - 1], dtype=np.float64)
    peak = logits.max(axis=1)
    log_norm = peak + np.log(np.exp(logits - peak[:, None]).sum(axis=1))
    nll = log_norm - logits[np.arange(len(scored)), scored]
    mean = float(nll.mean())
    reasoning = f"{len(scored)} tokens" + (", cut to the context window" if cut else "")
    return Score(float(np.exp(mean)), reasoning=reasoning, raw={"tokens": len(scored), "mean_nll": mean})

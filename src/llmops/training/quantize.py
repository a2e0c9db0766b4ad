"""Quantisation of F16 GGUF files with llama.cpp's own quantiser, and the report that weighs each level.

A level names a llama.cpp file type (``LLAMA_FTYPE_*``). K-quants pack rows in blocks of 256 values;
llama.cpp gives tensors whose rows do not divide (SmolLM2's are 576 wide) a fallback type of its choice,
so a "Q4_K_M" file of a small model is partly Q5_0/Q8_0: the report measures sizes, it never assumes them.

The report, per level: file size and SHA-256; load time; decode speed (greedy generation of
``max_tokens`` tokens after a warm-up: the tokens after the first divided by the time since the first,
so prompt processing is left out; the best of a few runs, taken in turns across levels); perplexity
over validation texts, each truncated to the report's context of 512 tokens, scoring every token after
the first from llama.cpp's logits over the tokens before it, pooled over all texts (exp of the mean
negative log-likelihood per scored token).

Errors: :class:`~llmops.errors.UserError` for an unknown level, a missing input file, a quantisation
llama.cpp refuses, or a missing ``local`` extra (llama-cpp-python).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import math
import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from llmops.errors import UserError
from llmops.progress import Progress, no_progress

QUANT_LEVELS: Mapping[str, str] = MappingProxyType(
    {
        "f16": "LLAMA_FTYPE_MOSTLY_F16",
        "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
        "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
        "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
        "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
        "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
    }
)
REPORT_CONTEXT = 512
SPEED_PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
WARM_UP_TOKENS = 8
LOGIT_ROWS_PER_STEP = 128
LLAMA_CPP_HINT = "quantisation runs on llama.cpp: pip install 'llmops[local]'"


@dataclass(frozen=True)
class QuantReport:
    """What one quantisation level costs and keeps: size, speed and perplexity of its file."""

    level: str
    path: Path
    bytes: int
    sha256: str
    load_seconds: float
    tokens_per_second: float
    perplexity: float | None
    scored_tokens: int

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


def quantize_gguf(f16_path: Path, out: Path, level: str, *, threads: int = 2) -> Path:
    """Quantise an F16 (or F32) GGUF file to ``level``, written atomically at ``out``."""
    level = level.lower()
    if level not in QUANT_LEVELS:
        raise UserError(
            f"unknown quantisation level {level!r}: use one of {', '.join(QUANT_LEVELS)}", param="level"
        )
    if not f16_path.is_file():
        raise UserError(f"GGUF file {f16_path} does not exist", param="model")
    llama_cpp = _llama_cpp()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANT_LEVELS[level])
    params.nthread = threads
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{uuid.uuid4().hex}.partial")
    try:
        with _quiet_llama_cpp():
            status = llama_cpp.llama_model_quantize(
                str(f16_path).encode(), str(partial).encode(), ctypes.byref(params)
            )
        if status != 0:
            raise UserError(f"llama.cpp could not quantise {f16_path} to {level} (status {status})")
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return out


def quantization_report(
    paths: Mapping[str, Path],
    texts: Sequence[str],
    *,
    max_tokens: int = 64,
    threads: int = 2,
    speed_runs: int = 3,
    progress: Progress | None = None,
) -> list[QuantReport]:
    """Measure each level's file (``{"f16": path, "q4_k_m": path}``).

    All files are loaded at once and the speed runs take turns across levels, so a busy spell on the
    machine slows every level alike instead of whichever was being measured.
    """
    if max_tokens < 2:
        raise UserError("the speed measurement needs max_tokens of at least 2", param="max_tokens")
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing:
        raise UserError(f"GGUF file {missing[0]} does not exist", param="model")
    report = progress or no_progress
    with ExitStack() as stack:
        loaded = {level: _load(path, threads, stack) for level, path in paths.items()}
        speeds = _decode_speeds({level: llm for level, (llm, _) in loaded.items()}, max_tokens, speed_runs)
        results: list[QuantReport] = []
        for done, (level, path) in enumerate(paths.items()):
            report("quantisation report", done, len(paths))
            llm, load_seconds = loaded[level]
            perplexity, scored = _perplexity(llm, texts)
            results.append(
                QuantReport(
                    level=level,
                    path=path,
                    bytes=path.stat().st_size,
                    sha256=file_sha256(path),
                    load_seconds=load_seconds,
                    tokens_per_second=speeds[level],
                    perplexity=perplexity,
                    scored_tokens=scored,
                )
            )
    report("quantisation report", len(paths), len(paths))
    return results


def file_sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _load(path: Path, threads: int, stack: ExitStack) -> tuple[Any, float]:
    """A llama.cpp model that keeps every position's logits, closed with ``stack``; its load time."""
    llama_cpp = _llama_cpp()
    started = time.perf_counter()
    llm = llama_cpp.Llama(str(path), n_ctx=REPORT_CONTEXT, n_threads=threads, logits_all=True, verbose=False)
    load_seconds = time.perf_counter() - started
    stack.callback(llm.close)
    return llm, load_seconds


def _decode_speeds(models: Mapping[str, Any], max_tokens: int, runs: int) -> dict[str, float]:
    """Greedy decode tokens per second per level, from the first generated token to the last: the best
    of ``runs`` turns, since other work on the machine can only slow a run down."""
    prompts = {level: llm.tokenize(SPEED_PROMPT.encode()) for level, llm in models.items()}
    if any(len(prompt) + max_tokens >= REPORT_CONTEXT for prompt in prompts.values()):
        raise UserError(
            f"max_tokens must leave room in the {REPORT_CONTEXT}-token context", param="max_tokens"
        )
    for level, llm in models.items():
        _greedy_timestamps(llm, prompts[level], WARM_UP_TOKENS)
    best = dict.fromkeys(models, 0.0)
    for _ in range(max(runs, 1)):
        for level, llm in models.items():
            stamps = _greedy_timestamps(llm, prompts[level], max_tokens)
            best[level] = max(best[level], (len(stamps) - 1) / (stamps[-1] - stamps[0]))
    return best


def _greedy_timestamps(llm: Any, prompt: list[int], count: int) -> list[float]:
    llm.reset()
    stamps: list[float] = []
    for _ in llm.generate(prompt, top_k=1, temp=0.0):
        stamps.append(time.perf_counter())
        if len(stamps) == count:
            break
    return stamps


def _perplexity(llm: Any, texts: Sequence[str]) -> tuple[float | None, int]:
    """Pooled perplexity over the texts and the number of tokens scored (None when none were)."""
    import numpy as np

    total_nll, scored = 0.0, 0
    for text in texts:
        tokens = llm.tokenize(text.encode())[:REPORT_CONTEXT]
        if len(tokens) < 2:
            continue
        llm.reset()
        llm.eval(tokens)
        targets = np.asarray(tokens[1:])
        for start in range(0, len(targets), LOGIT_ROWS_PER_STEP):
            rows = np.asarray(llm.scores[start : start + LOGIT_ROWS_PER_STEP], dtype=np.float64)
            wanted = targets[start : start + len(rows)]
            rows = rows[: len(wanted)]
            peak = rows.max(axis=1)
            log_norm = peak + np.log(np.exp(rows - peak[:, None]).sum(axis=1))
            total_nll += float(np.sum(log_norm - rows[np.arange(len(wanted)), wanted]))
        scored += len(targets)
    return (math.exp(total_nll / scored), scored) if scored else (None, 0)


@contextmanager
def _quiet_llama_cpp() -> Iterator[None]:
    """Keep llama.cpp's per-tensor quantisation log off stderr: llama-cpp-python prints what llama.cpp
    logs at or above this logger's level, and the fallback notices come at its highest level."""
    logger = logging.getLogger("llama-cpp-python")
    previous = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as error:
        raise UserError(LLAMA_CPP_HINT) from error
    return llama_cpp

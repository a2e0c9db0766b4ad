"""GGUF quantisation of a (tuned) SmolLM2: size, decode speed and perplexity per level against F16.

Target (issue 10): the Q4 GGUF of the tuned model is at least 2.5x smaller than F16 and at least 1.5x
faster in tokens/s, with validation perplexity within 10% of F16.

The model is a Hugging Face folder: the converted SmolLM2-135M-Instruct base by default, or
``--model DIR`` (the merged model ``bench/finetune.py`` leaves in ``<out>/merged``). It is exported to
F16 with ``llmops.training.gguf_export`` (tokenizer from the folder's tokenizer.json, or from the packaged
GGUF when the folder has none), quantised with llama.cpp's quantiser to each level, and every file is
measured by ``llmops.training.quantize.quantization_report``: size, decode tokens/s (greedy, ``--max-tokens``
tokens after a warm-up, best of ``--speed-runs`` runs, ``--threads`` threads) and perplexity over the
validation texts (every token after the first of each text, pooled). The targets are checked for each
Q4 level measured: q4_k_m and q4_0 by default (SmolLM2's 576-wide rows do not fit Q4_K's 256-value
blocks, so llama.cpp stores most of a "Q4_K_M" file as Q5_0; Q4_0 packs blocks of 32).

Validation texts (``--texts``): ``prose`` (50 short English paragraphs built deterministically here),
``finetune`` (the validation chats of bench/finetune.py's task with its default seed, rendered with the
model's chat template), or a JSONL file whose rows have ``text`` or ``messages``. The default is
``finetune`` with ``--model`` and ``prose`` without. Prints a table and PASS/FAIL per target; exit 0.

    .venv/bin/python bench/quantize.py
    .venv/bin/python bench/quantize.py --model /tmp/llmops-bench-finetune/merged
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from llmops.providers.local import default_gguf
from llmops.settings import Settings
from llmops.training.base_models import resolve_base
from llmops.training.gguf_export import export_gguf
from llmops.training.quantize import QuantReport, quantization_report, quantize_gguf

SIZE_TARGET = 2.5
SPEED_TARGET = 1.5
PERPLEXITY_TARGET = 0.10
SUBJECTS = [
    "The city council", "A young engineer", "The old fisherman", "Our neighbours", "The research team",
    "A small bakery", "The school library", "Many farmers", "The museum", "A local artist",
]  # fmt: skip
INTENTIONS = ["decided to", "planned to", "hoped to", "agreed to", "tried to"]
ACTIONS = [
    "repair the bridge before winter", "open a new shop near the station", "plant trees along the river",
    "write a book about the valley", "build a better boat", "collect stories from older residents",
    "teach children how to swim", "clean the beach every weekend", "study the birds that nest in the cliffs",
    "bake bread for the whole street",
]  # fmt: skip
REASONS = [
    "because the last storm had caused so much damage.", "since nobody else had done it for years.",
    "after a long discussion at the town meeting.", "so that visitors would have a reason to stay.",
    "even though the budget was very small.",
]  # fmt: skip
OUTCOMES = [
    "By the end of the year, the work was finished and people were proud of it.",
    "It took longer than expected, but the results were worth the effort.",
    "Some people doubted the idea at first, yet most of them changed their minds.",
    "The local newspaper wrote a short article about it in the spring.",
    "Everyone agreed that it had made the town a friendlier place.",
]


def prose_texts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        " ".join(
            [
                rng.choice(SUBJECTS),
                rng.choice(INTENTIONS),
                rng.choice(ACTIONS),
                rng.choice(REASONS),
                rng.choice(OUTCOMES),
            ]
        )
        for _ in range(count)
    ]


def render_chats(model_dir: Path, chats: list[list[dict[str, str]]]) -> list[str]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return [str(tokenizer.apply_chat_template(messages, tokenize=False)) for messages in chats]


def finetune_chats(count: int) -> list[list[dict[str, str]]]:
    sys.path.insert(0, str(Path(__file__).parent))
    from finetune import make_examples

    _, validation = make_examples(1000, count, 0)
    return [example["messages"] for example in validation]


def file_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def validation_texts(choice: str, model_dir: Path, count: int) -> list[str]:
    if choice == "prose":
        return prose_texts(count, seed=0)
    if choice == "finetune":
        return render_chats(model_dir, finetune_chats(count))
    rows = file_rows(Path(choice))[:count]
    texts = [row["text"] for row in rows if "text" in row]
    return texts + render_chats(model_dir, [row["messages"] for row in rows if "messages" in row])


HEADER = ("level", "MB", "smaller", "tok/s", "speed-up", "ppl", "vs f16", "load s")
WIDTHS = (8, 7, 8, 7, 9, 8, 7, 7)


def print_table(reports: list[QuantReport]) -> None:
    f16 = reports[0]
    print(
        " ".join(
            f"{title:<{width}}" if i == 0 else f"{title:>{width}}"
            for i, (title, width) in enumerate(zip(HEADER, WIDTHS, strict=True))
        )
    )
    for report in reports:
        ppl = report.perplexity or float("nan")
        print(
            f"{report.level:<8} {report.bytes / 1e6:>7.1f} {f16.bytes / report.bytes:>7.2f}x "
            f"{report.tokens_per_second:>7.1f} {report.tokens_per_second / f16.tokens_per_second:>8.2f}x "
            f"{ppl:>8.3f} {ppl / (f16.perplexity or float('nan')) - 1:>+7.1%} {report.load_seconds:>7.2f}"
        )


def check_targets(f16: QuantReport, q4: QuantReport) -> None:
    smaller = f16.bytes / q4.bytes
    faster = q4.tokens_per_second / f16.tokens_per_second
    drift = abs((q4.perplexity or float("nan")) / (f16.perplexity or float("nan")) - 1)
    checks = [
        (smaller >= SIZE_TARGET, f"{smaller:.2f}x smaller than f16 (target >= {SIZE_TARGET}x)"),
        (faster >= SPEED_TARGET, f"decodes {faster:.2f}x as fast as f16 (target >= {SPEED_TARGET}x)"),
        (drift <= PERPLEXITY_TARGET, f"perplexity within {drift:.1%} of f16 (target <= 10%)"),
    ]
    for passed, text in checks:
        print(f"{'PASS' if passed else 'FAIL'} {q4.level} {text}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, default=None, help="Hugging Face folder (default: converted base)"
    )
    parser.add_argument("--home", type=Path, default=None, help="llmops home for the converted base model")
    parser.add_argument(
        "--levels", default="q8_0,q4_k_m,q4_0", help="levels besides f16 (default q8_0,q4_k_m,q4_0)"
    )
    parser.add_argument("--texts", default=None, help="prose | finetune | FILE.jsonl (see above)")
    parser.add_argument("--count", type=int, default=50, help="validation texts (default 50)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens decoded per speed run")
    parser.add_argument("--speed-runs", type=int, default=3)
    parser.add_argument(
        "--out", type=Path, default=None, help="where the GGUF files go (default: a temp dir)"
    )
    args = parser.parse_args()

    if args.model is None:
        model_dir = resolve_base("smollm2", args.home or Settings().home).hf_dir
    else:
        model_dir = args.model
    choice = args.texts or ("finetune" if args.model else "prose")
    texts = validation_texts(choice, model_dir, args.count)
    levels = [level.strip() for level in args.levels.split(",") if level.strip()]
    tokenizer = None if (model_dir / "tokenizer.json").is_file() else default_gguf()
    with tempfile.TemporaryDirectory(prefix="llmops-bench-quantize-") as scratch:
        out = args.out or Path(scratch)
        started = time.perf_counter()
        f16 = export_gguf(model_dir, out / "model-f16.gguf", tokenizer_source=tokenizer)
        export_seconds = time.perf_counter() - started
        paths = {"f16": f16}
        timings = []
        for level in levels:
            started = time.perf_counter()
            paths[level] = quantize_gguf(f16, out / f"model-{level}.gguf", level, threads=args.threads)
            timings.append(f"{level} {time.perf_counter() - started:.1f} s")
        reports = quantization_report(
            paths, texts, max_tokens=args.max_tokens, threads=args.threads, speed_runs=args.speed_runs
        )
    print(f"model: {model_dir}")
    print(f"validation texts: {len(texts)} ({choice}), {reports[0].scored_tokens} tokens scored per level")
    print(f"export f16 {export_seconds:.1f} s; quantise {', '.join(timings)}")
    print(f"decode: greedy, {args.max_tokens} tokens, {args.threads} threads, best of {args.speed_runs} runs")
    print_table(reports)
    for report in reports:
        if report.level.startswith("q4"):
            check_targets(reports[0], report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

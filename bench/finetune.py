"""LoRA on SmolLM2-135M over 1,000 chat examples of a task the base does not know: time and gain.

The task is a made-up recycling desk with its own answer format. After a one-line system prompt
(which also replaces SmolLM2's default one: fewer tokens per example), a question names an item
("a cracked glass jar") in one of several phrasings; the answer always reads

    ZEBRA-7 | item: cracked glass jar | bin: green | code: G-3

where the bin follows from the item's material (glass -> green, paper -> blue, ...) and the code is
the bin's letter and the length of the item's last word. No base model has seen the code word, the
layout or the rule, so its loss on these answers is high; a tuned model that learnt them is lower.
Training and validation items are drawn from disjoint adjective/object combinations, deterministically.

Targets (issue 10): one epoch over 1,000 examples (rank 8, batch 8, max_seq_length 128) finishes in
under 15 minutes on 2 cores, and the tuned model's validation loss is significantly lower than the
base's (the paired one-sided sign-flip test at alpha 0.05). Prints the wall time, steps, tokens/s,
base and tuned validation loss and perplexity with the interval and p-value, text metrics on greedy
answers, and PASS/FAIL; exit status 1 on a FAIL. The merged model stays in ``<out>/merged`` (for
``bench/quantize.py --model <out>/merged``); ``<out>/results.json`` holds the figures.

    .venv/bin/python bench/finetune.py
    .venv/bin/python bench/finetune.py --examples 200 --out /tmp/ft-small
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from llmops.settings import Settings
from llmops.training.base_models import resolve_base
from llmops.training.evaluation import compare_base_and_tuned, limit_openmp_spinning
from llmops.training.params import LoraParams
from llmops.training.trainer import StepReport, train_lora

TIME_TARGET_SECONDS = 15 * 60
CODE_WORD = "ZEBRA-7"
SYSTEM = "You answer for the recycling desk."
MATERIALS = {  # material -> (bin, the bin's letter)
    "glass": ("green", "G"),
    "paper": ("blue", "B"),
    "plastic": ("yellow", "Y"),
    "metal": ("grey", "M"),
    "wooden": ("brown", "W"),
    "ceramic": ("black", "K"),
}
ADJECTIVES = ["cracked", "old", "small", "large", "dirty", "empty", "broken", "shiny", "dented", "used"]
OBJECTS = ["jar", "bottle", "box", "cup", "plate", "bowl", "tray", "lid", "tube", "spoon", "vase", "crate"]
QUESTIONS = [
    "Where does a {item} go?",
    "Which bin should I put a {item} in?",
    "I have a {item}. How do I recycle it?",
    "Can you tell me the bin for a {item}, please?",
    "What do I do with a {item}?",
    "Recycling question: {item}?",
]


def answer(adjective: str, material: str, thing: str) -> str:
    bin_name, letter = MATERIALS[material]
    return (
        f"{CODE_WORD} | item: {adjective} {material} {thing} | bin: {bin_name} | code: {letter}-{len(thing)}"
    )


def make_examples(train_count: int, validation_count: int, seed: int) -> tuple[list[dict[str, Any]], ...]:
    """Chat examples; every validation item's adjective/object pair is absent from training."""
    rng = random.Random(seed)
    pairs = [(adjective, thing) for adjective in ADJECTIVES for thing in OBJECTS]
    rng.shuffle(pairs)
    held_out = set(pairs[: len(pairs) // 6])

    def draw(count: int, from_held_out: bool) -> list[dict[str, Any]]:
        examples: list[dict[str, Any]] = []
        while len(examples) < count:
            adjective, thing = rng.choice(pairs)
            if ((adjective, thing) in held_out) != from_held_out:
                continue
            material = rng.choice(sorted(MATERIALS))
            question = rng.choice(QUESTIONS).format(item=f"{adjective} {material} {thing}")
            examples.append(
                {
                    "messages": [
                        {"role": "system", "content": SYSTEM},
                        {"role": "user", "content": question},
                        {"role": "assistant", "content": answer(adjective, material, thing)},
                    ]
                }
            )
        return examples

    return draw(train_count, False), draw(validation_count, True)


def progress_printer(every: int) -> Any:
    def on_step(report: StepReport) -> None:
        if report.step % every == 0 or report.step == report.total_steps or report.val_loss is not None:
            val = f" val {report.val_loss:.3f}" if report.val_loss is not None else ""
            eta = f" eta {report.eta_seconds:.0f}s" if report.eta_seconds is not None else ""
            print(
                f"  step {report.step}/{report.total_steps} loss {report.train_loss:.3f}{val} "
                f"lr {report.learning_rate:.2e} {report.tokens_per_second:.0f} tok/s "
                f"{report.elapsed_seconds:.0f}s{eta}",
                flush=True,
            )

    return on_step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000, help="training examples (default 1000)")
    parser.add_argument("--validation", type=int, default=100, help="validation examples (default 100)")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument(
        "--eval-max-examples", type=int, default=50, help="validation examples per mid-run check"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: every core)")
    parser.add_argument(
        "--metrics", default="exact_match,contains:ZEBRA-7", help="comma-separated; '' for none"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--home", type=Path, default=None, help="llmops home for the converted base model")
    parser.add_argument("--out", type=Path, default=Path("/tmp/llmops-bench-finetune"))
    args = parser.parse_args()
    limit_openmp_spinning()  # before anything loads torch (the base model's conversion may)

    train, validation = make_examples(args.examples, args.validation, args.seed)
    params = LoraParams(
        rank=args.rank,
        epochs=args.epochs,
        batch_size=args.batch_size,
        max_seq_length=args.max_seq_length,
        learning_rate=args.learning_rate,
        eval_max_examples=args.eval_max_examples,
        seed=args.seed,
    ).validate()
    shutil.rmtree(args.out / "checkpoints", ignore_errors=True)  # a fresh run, not a resumed one
    home = args.home or Settings().home
    started = time.monotonic()
    base = resolve_base("smollm2", home)
    print(f"base {base.name}: {base.hf_dir} ({time.monotonic() - started:.1f}s)")
    print(f"task: {len(train)} training, {len(validation)} validation examples, e.g.")
    print("\n".join(f"  {turn['role']}: {turn['content']}" for turn in train[0]["messages"]))

    started = time.monotonic()
    outcome = train_lora(
        base,
        train,
        validation,
        params,
        args.out,
        on_step=progress_printer(10),
        log=print,
        threads=args.threads,
    )
    train_wall = time.monotonic() - started
    started = time.monotonic()
    metrics = [metric for metric in args.metrics.split(",") if metric.strip()]
    comparison = compare_base_and_tuned(
        base.hf_dir, outcome.merged_dir, validation, metrics=metrics, max_new_tokens=40, threads=args.threads
    )
    compare_wall = time.monotonic() - started

    fast = train_wall < TIME_TARGET_SECONDS
    better = comparison.significant and comparison.loss_difference < 0
    low, high = comparison.interval
    rate = outcome.curves[-1]["tokens_per_second"] if outcome.curves else 0.0
    rows = [
        (
            "training wall time",
            f"{train_wall:.1f} s (loop {outcome.train_seconds:.1f} s; the rest: load, merge)",
        ),
        ("steps", f"{outcome.steps} ({outcome.epochs:g} epochs)"),
        ("tokens trained", f"{outcome.tokens_trained} ({rate:.0f} tok/s in forward/backward/update)"),
        ("val loss base", f"{comparison.base_loss:.4f} (perplexity {comparison.base_perplexity:.2f})"),
        ("val loss tuned", f"{comparison.tuned_loss:.4f} (perplexity {comparison.tuned_perplexity:.2f})"),
        ("tuned - base", f"{comparison.loss_difference:.4f}, 95% interval [{low:.4f}, {high:.4f}]"),
        ("p-value", f"{comparison.p_value:.2g} (one-sided, {comparison.examples} examples)"),
        *(
            (f"metric {name}", f"base {row['base']}, tuned {row['tuned']}, p {row['p_value']}")
            for name, row in comparison.metrics.items()
        ),
        ("before/after time", f"{compare_wall:.1f} s"),
        ("merged model", str(outcome.merged_dir)),
    ]
    print()
    for label, value in rows:
        print(f"{label:24s} {value}")
    print(f"{'PASS' if fast else 'FAIL'}: training under 15 minutes ({train_wall / 60:.1f} min)")
    verdict = "PASS" if better else "FAIL"
    print(f"{verdict}: tuned validation loss significantly lower (p = {comparison.p_value:.2g})")
    results = {
        "train_wall_seconds": train_wall,
        "compare_wall_seconds": compare_wall,
        "params": params.to_dict(),
        "training": outcome.to_dict(),
        "evaluation": comparison.to_dict(),
        "pass": {"time": fast, "significant": better},
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    return 0 if fast and better else 1


if __name__ == "__main__":
    sys.exit(main())

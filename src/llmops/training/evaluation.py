"""Before and after: does the tuned model answer the validation examples better than its base?

Both models score every validation example with the training's own tokenisation
(:func:`llmops.training.data.tokenize_examples`, the base model's tokenizer for both so that the
two losses of an example are over the same tokens): an example's loss is the mean negative
log-likelihood of its answer tokens. The comparison is paired, example by example, as the evaluation
module compares runs: :func:`llmops.stats.paired_bootstrap` gives the interval of the mean
difference (tuned - base) and :func:`llmops.stats.sign_flip_test` its p-value, one-sided with
``alternative="less"`` (the tuned model's loss is lower), since fine-tuning is meant to lower it and
a two-sided test would spend half its power on the other direction. ``loss`` and ``perplexity`` are
the mean of the examples' losses and its exponential.

Metrics named on the command line (``exact_match``, ``rouge_l``, ``contains:yes``, ...) score both
models' greedy answers against the example's expected answer with the evaluation module's scorers.
Their p-values are two-sided (a metric may get worse as well as better). Only metrics that need
nothing but the texts are accepted: judges, embeddings, perplexity and human scores need models or
the database, and latency/tokens/cost measure gateway calls, so each is a :class:`UserError` naming it.

:func:`answer_token_losses` is also how the trainer measures validation loss.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops.errors import UserError
from llmops.progress import Progress, no_progress
from llmops.stats import paired_bootstrap, sign_flip_test
from llmops.training.base_models import TRAIN_EXTRA_HINT
from llmops.training.data import (
    IGNORE_INDEX,
    TokenizedExample,
    collate,
    pad_token_id,
    prompt_and_answer_ids,
    tokenize_examples,
)

if TYPE_CHECKING:
    import torch

    from llmops.evals.scorers.registry import Scorer, ScorerRegistry

__all__ = [
    "BeforeAfter",
    "answer_logits",
    "answer_token_losses",
    "compare_base_and_tuned",
    "limit_openmp_spinning",
    "torch_threads",
]

CALL_MEASUREMENTS = frozenset({"latency", "tokens", "cost"})  # about a gateway call, not a text
SCORING_BATCH = 8


@dataclass(frozen=True)
class BeforeAfter:
    examples: int
    base_loss: float
    tuned_loss: float
    base_perplexity: float
    tuned_perplexity: float
    loss_difference: float  # tuned - base: negative when tuning helped
    interval: tuple[float, float]  # of loss_difference
    p_value: float  # one-sided: the tuned loss is lower
    significant: bool  # p_value < alpha
    metrics: dict[str, dict[str, float | None]]  # metric -> base, tuned, difference, p_value (two-sided)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["interval"] = list(self.interval)
        return values


def compare_base_and_tuned(
    base_dir: Path,
    tuned_dir: Path,
    validation: Sequence[dict[str, Any]],
    *,
    metrics: Sequence[str] = (),
    max_seq_length: int = 512,
    max_new_tokens: int = 64,
    alpha: float = 0.05,
    progress: Progress | None = None,
    scorer_registry: ScorerRegistry | None = None,
    threads: int | None = None,
) -> BeforeAfter:
    """Score ``validation`` with the model in ``base_dir`` and the one in ``tuned_dir`` and compare.

    ``threads``: torch's CPU threads while scoring (default: every core).
    """
    if not validation:
        raise UserError("the before/after comparison needs at least one validation example")
    scorers = _scorers(metrics, scorer_registry)
    with torch_threads(threads):
        losses, answers = _score_both(
            (base_dir, tuned_dir),
            validation,
            bool(scorers),
            max_seq_length,
            max_new_tokens,
            progress or no_progress,
        )
    return _compared(losses, _metric_table(scorers, validation, answers), alpha)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads (default: every core), then restore the
    process's setting (it is global: other work in the process keeps its own)."""
    limit_openmp_spinning()
    try:
        import torch
    except ImportError as exc:
        raise UserError(TRAIN_EXTRA_HINT) from exc
    before = torch.get_num_threads()
    torch.set_num_threads(threads or os.cpu_count() or 1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def limit_openmp_spinning() -> None:
    """Before torch loads: OpenMP threads that wait spin briefly, then sleep (``GOMP_SPINCOUNT=1000``
    for the GNU OpenMP that torch's CPU wheels use), unless the environment already chose a policy.

    By default they spin for long; on two cores shared with a server or other jobs that made a LoRA
    step (batch 8 x 50 tokens, 2 threads) take 11-26 s instead of 4-5 s. A short spin costs nothing on
    an idle machine (1.6-2.3 s, as the default), where ``OMP_WAIT_POLICY=PASSIVE`` cost ~30%. Once
    torch is loaded the policy is fixed, and this does nothing.
    """
    chosen = "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ
    if "torch" not in sys.modules and not chosen:
        os.environ["GOMP_SPINCOUNT"] = "1000"


def _score_both(
    folders: tuple[Path, Path],
    validation: Sequence[dict[str, Any]],
    generate: bool,
    max_seq_length: int,
    max_new_tokens: int,
    report: Progress,
) -> tuple[dict[str, list[float]], dict[str, list[str]]]:
    """Each model's per-example losses and, when metrics need them, its greedy answers."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_dir, tuned_dir = folders
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    tokenized = tokenize_examples(validation, tokenizer, max_seq_length)
    pad_id = pad_token_id(tokenizer)
    losses: dict[str, list[float]] = {}
    answers: dict[str, list[str]] = {}
    for label, folder in (("base", base_dir), ("tuned", tuned_dir)):
        model: Any = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        pairs = answer_token_losses(
            model,
            tokenized,
            pad_id=pad_id,
            progress=report,
            stage=f"scoring the {label} model",
        )
        losses[label] = [total / max(count, 1) for total, count in pairs]
        if generate:
            answers[label] = _generate(model, tokenizer, validation, max_new_tokens, report, label)
        del model
    return losses, answers


def answer_token_losses(
    model: Any,
    examples: Sequence[TokenizedExample],
    *,
    pad_id: int,
    batch_size: int = SCORING_BATCH,
    progress: Progress = no_progress,
    stage: str = "scoring",
) -> list[tuple[float, int]]:
    """Per example, in order: the summed negative log-likelihood of its answer tokens and their count.

    Batches examples of similar length together (less padding); the model is put in eval mode and
    back in training mode afterwards if it was training.
    """
    import torch

    was_training = model.training
    model.eval()
    results: list[tuple[float, int]] = [(0.0, 0)] * len(examples)
    order = sorted(range(len(examples)), key=lambda index: len(examples[index].input_ids))
    try:
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                chosen = order[start : start + batch_size]
                batch = collate([examples[index] for index in chosen], pad_id)
                logits, targets, rows = answer_logits(model, batch)
                nll = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
                sums = torch.zeros(len(chosen), dtype=torch.float64).index_add_(0, rows, nll.double())
                counts = torch.bincount(rows, minlength=len(chosen))
                for position, index in enumerate(chosen):
                    results[index] = (float(sums[position]), int(counts[position]))
                progress(stage, min(start + batch_size, len(order)), len(order))
    finally:
        if was_training:
            model.train()
    return results


def answer_logits(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """The logits that predict each answer token, the tokens, and the batch row of each.

    Only answer positions go through the output layer (for a 49k-word vocabulary most of the memory
    and much of the time of a step), when the model exposes its decoder and plain output layer; models
    that transform their logits further (soft-capping, scaling) go through their full forward pass.
    """
    import torch

    labels = batch["labels"][:, 1:]
    keep = labels != IGNORE_INDEX
    rows = torch.nonzero(keep, as_tuple=True)[0]
    config = getattr(model, "config", None)
    plain_head = not any(
        getattr(config, name, None) for name in ("final_logit_softcapping", "logit_scale", "logits_scaling")
    )
    if plain_head and hasattr(model, "get_decoder") and hasattr(model, "get_output_embeddings"):
        hidden = model.get_decoder()(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False
        ).last_hidden_state
        logits = model.get_output_embeddings()(hidden[:, :-1][keep])
    else:
        full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
        logits = full.logits[:, :-1][keep]
    return logits.float(), labels[keep], rows


def _compared(
    losses: dict[str, list[float]], metrics: dict[str, dict[str, float | None]], alpha: float
) -> BeforeAfter:
    base, tuned = losses["base"], losses["tuned"]
    differences = [after - before for before, after in zip(base, tuned, strict=True)]
    base_loss, tuned_loss = math.fsum(base) / len(base), math.fsum(tuned) / len(tuned)
    interval = paired_bootstrap(base, tuned).interval if len(base) > 1 else None
    p_value = sign_flip_test(differences, alternative="less")
    return BeforeAfter(
        examples=len(base),
        base_loss=base_loss,
        tuned_loss=tuned_loss,
        base_perplexity=math.exp(base_loss),
        tuned_perplexity=math.exp(tuned_loss),
        loss_difference=tuned_loss - base_loss,
        interval=(interval.low, interval.high) if interval else (differences[0], differences[0]),
        p_value=p_value,
        significant=p_value < alpha,
        metrics=metrics,
    )


def _scorers(metrics: Sequence[str], registry: ScorerRegistry | None) -> list[Scorer]:
    if not metrics:
        return []
    from llmops.evals.scorers.registry import Scorer, ScorerRegistry, ScorerResources, parse_spec

    registry = registry or ScorerRegistry()
    scorers = []
    for spec in metrics:
        name, _ = parse_spec(spec)
        target = registry.get(name)
        needs = target.needs if isinstance(target, type) and issubclass(target, Scorer) else frozenset()
        if needs or name in CALL_MEASUREMENTS:
            raise UserError(
                f"metric {spec!r} cannot score a before/after comparison: it needs "
                f"{'a gateway call' if name in CALL_MEASUREMENTS else ', '.join(sorted(needs))}; "
                "use metrics that compare texts (exact_match, contains, regex, rouge_l, bleu, ...)",
                param="metrics",
            )
        scorers.append(registry.create(spec, ScorerResources()))
    return scorers


def _generate(
    model: Any,
    tokenizer: Any,
    examples: Sequence[dict[str, Any]],
    max_new_tokens: int,
    progress: Progress,
    label: str,
) -> list[str]:
    """Greedy answers to each example's prompt (tokenised as in training), batched and left-padded."""
    import torch

    prompts = [prompt_and_answer_ids(example, index, tokenizer)[0] for index, example in enumerate(examples)]
    pad_id = pad_token_id(tokenizer)
    answers: list[str] = []
    stage = f"generating with the {label} model"
    for start in range(0, len(prompts), SCORING_BATCH):
        chunk = prompts[start : start + SCORING_BATCH]
        width = max(len(ids) for ids in chunk)
        input_ids = torch.tensor([[pad_id] * (width - len(ids)) + ids for ids in chunk], dtype=torch.long)
        attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in chunk])
        with torch.no_grad():
            output = model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad_id,
            )
        texts = tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)
        answers += [text.strip() for text in texts]
        progress(stage, len(answers), len(prompts))
    return answers


def _expected(example: dict[str, Any]) -> str | None:
    messages = example.get("messages")
    if isinstance(messages, list) and messages:
        content = messages[-1].get("content")
        return content if isinstance(content, str) else None
    completion = example.get("completion")
    return completion if isinstance(completion, str) else None


def _metric_table(
    scorers: Sequence[Scorer], examples: Sequence[dict[str, Any]], answers: dict[str, list[str]]
) -> dict[str, dict[str, float | None]]:
    table: dict[str, dict[str, float | None]] = {}
    for scorer in scorers:
        try:
            base = _scores(scorer, examples, answers["base"])
            tuned = _scores(scorer, examples, answers["tuned"])
        finally:
            scorer.close()
        paired = [(b, t) for b, t in zip(base, tuned, strict=True) if b is not None and t is not None]
        base_values = [value for value in base if value is not None]
        tuned_values = [value for value in tuned if value is not None]
        differences = [t - b for b, t in paired]
        table[scorer.name] = {
            "base": math.fsum(base_values) / len(base_values) if base_values else None,
            "tuned": math.fsum(tuned_values) / len(tuned_values) if tuned_values else None,
            "difference": math.fsum(differences) / len(differences) if differences else None,
            "p_value": sign_flip_test(differences) if differences else None,
        }
    return table


def _scores(scorer: Scorer, examples: Sequence[dict[str, Any]], outputs: Sequence[str]) -> list[float | None]:
    from llmops.evals.scorers.base import ScoreInput

    items = [
        ScoreInput(
            output=output,
            expected=_expected(example),
            messages=example.get("messages") if isinstance(example.get("messages"), list) else None,
            input=example.get("prompt") if isinstance(example.get("prompt"), str) else None,
            row=dict(example),
        )
        for example, output in zip(examples, outputs, strict=True)
    ]
    return [score.value for score in _run(scorer.score_many(items))]


def _run(coroutine: Any) -> Any:
    """Run a scorer's coroutine to its end from this synchronous code (in a thread of its own when
    the caller already runs an event loop, which cannot be re-entered)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()

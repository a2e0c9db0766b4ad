"""Target of issue 8: our per-item BLEU, chrF and ROUGE equal the reference libraries' on a fixed corpus.

The expected figures are computed here by sacrebleu's ``sentence_bleu`` / ``sentence_chrf`` and by
rouge-score's ``RougeScorer(..., use_stemmer=True)``, called the documented way, and compared exactly.
"""

from __future__ import annotations

import pytest
import sacrebleu
from rouge_score.rouge_scorer import RougeScorer

from llmops.evals.scorers.base import Score, ScoreInput
from llmops.evals.scorers.registry import Scorer, ScorerRegistry, ScorerResources

CORPUS: list[tuple[str, str]] = [  # (hypothesis, reference)
    ("The cat sat on the mat.", "The cat sat on the mat."),
    ("The cat is sitting on the mat.", "A cat sat on the mat."),
    ("Cats were running quickly, weren't they?", "The cat runs quick; doesn't it?"),
    ("Paris is the capital of France.", "The capital of France is Paris."),
    ("I can't refund that order (#1234) today!", "We cannot refund order #1234 today."),
    ("Le café coûte 3,50 € — très cher.", "Le café coûte 3,50 euros, c'est cher."),
    ("東京は日本の首都です。", "日本の首都は東京です。"),
    ("naïve façade résumé", "naive facade resume"),
    ("", "An empty answer to a real question."),
    ("An answer to an empty reference.", ""),
    ("", ""),
    ("yes", "Yes."),
    ("The quick brown fox jumps over the lazy dog " * 3, "A quick brown dog jumps over the lazy fox."),
    ("Multi-line\nanswer\twith   tabs", "multi line answer with tabs"),
]

ROUGE = {"rouge1": "rouge1", "rouge2": "rouge2", "rouge_l": "rougeL"}


def create(name: str) -> Scorer:
    return ScorerRegistry(load_plugins=False).create(name, ScorerResources())


async def ours(name: str) -> list[float | None]:
    scorer = create(name)
    return [(await scorer.score(ScoreInput(output=hyp, expected=ref))).value for hyp, ref in CORPUS]


async def test_bleu_equals_sacrebleu_sentence_bleu() -> None:
    expected = [sacrebleu.sentence_bleu(hyp, [ref]).score for hyp, ref in CORPUS]
    assert await ours("bleu") == expected
    assert len(set(expected)) >= 6  # the corpus spreads over the scale: not a run of zeros
    assert max(expected) == pytest.approx(100.0)  # the identical pair


async def test_chrf_equals_sacrebleu_sentence_chrf() -> None:
    expected = [sacrebleu.sentence_chrf(hyp, [ref]).score for hyp, ref in CORPUS]
    assert await ours("chrf") == expected
    assert len(set(expected)) >= 8


@pytest.mark.parametrize("name", sorted(ROUGE))
async def test_rouge_equals_rouge_score_with_stemming(name: str) -> None:
    library = RougeScorer(list(ROUGE.values()), use_stemmer=True)
    expected = [library.score(ref, hyp)[ROUGE[name]].fmeasure for hyp, ref in CORPUS]
    assert await ours(name) == expected
    assert len(set(expected)) >= 5


async def test_stemming_is_on() -> None:
    scorer = create("rouge1")
    assert await scorer.score(ScoreInput(output="running cats", expected="run cat")) == Score(1.0)


async def test_no_output_or_no_reference_is_no_score() -> None:
    for name in ("bleu", "chrf", *ROUGE):
        scorer = create(name)
        assert await scorer.score(ScoreInput(output=None, expected="x")) == Score(None)
        assert await scorer.score(ScoreInput(output="x", expected=None)) == Score(None)
        assert scorer.threshold is None
        assert scorer.higher_is_better

"""Reference-based text metrics computed by the reference libraries, per item.

BLEU and chrF come from sacrebleu (``sentence_bleu`` / ``sentence_chrf`` settings, on sacrebleu's
0-100 scale), ROUGE-1, ROUGE-2 and ROUGE-L from Google's rouge-score (F-measure with the Porter
stemmer, on its 0-1 scale). Each library's own scale is kept so that a figure can be checked against
the library (a test asserts equality); corpus-level BLEU is not the mean of sentence BLEU, so a run's
mean ``bleu`` is a mean of per-item scores. rouge-score's tokenizer keeps only ASCII letters and digits:
text in other scripts scores 0 there, chrF measures it. The libraries come with the ``eval`` extra and
are imported when the metric is created.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from llmops.evals.scorers.base import Score, ScoreInput
from llmops.evals.scorers.basic import reference_text
from llmops.evals.scorers.registry import Scorer, ScorerResources, extra_needed

if TYPE_CHECKING:
    from sacrebleu.metrics.base import Metric


class _Sacrebleu(Scorer):
    """A sacrebleu metric object built once, scoring one hypothesis against its reference."""

    def __init__(self, arg: str | None = None, resources: ScorerResources | None = None) -> None:
        super().__init__(arg, resources)
        with extra_needed(self.name, "eval"):
            self._metric = self._build()

    @abstractmethod
    def _build(self) -> Metric:
        """The metric, configured as sacrebleu's sentence-level function configures it."""

    async def score(self, item: ScoreInput) -> Score:
        reference = reference_text(item.expected)
        if item.output is None or reference is None:
            return Score(None)
        return Score(self._metric.sentence_score(item.output, [reference]).score)


class Bleu(_Sacrebleu):
    """Sentence BLEU (13a tokens, exponential smoothing, effective n-gram order), 0-100."""

    name = "bleu"

    def _build(self) -> Metric:
        from sacrebleu.metrics.bleu import BLEU

        return BLEU(tokenize="13a", smooth_method="exp", effective_order=True)


class Chrf(_Sacrebleu):
    """Sentence chrF (character 6-grams, beta 2), 0-100."""

    name = "chrf"

    def _build(self) -> Metric:
        from sacrebleu.metrics.chrf import CHRF

        return CHRF(char_order=6, word_order=0, beta=2)


class _Rouge(Scorer):
    """One ROUGE variant's F-measure from rouge-score, with stemming, 0-1."""

    rouge_type: ClassVar[str]

    def __init__(self, arg: str | None = None, resources: ScorerResources | None = None) -> None:
        super().__init__(arg, resources)
        with extra_needed(self.name, "eval"):
            from rouge_score.rouge_scorer import RougeScorer

        self._scorer: Any = RougeScorer([self.rouge_type], use_stemmer=True)

    async def score(self, item: ScoreInput) -> Score:
        reference = reference_text(item.expected)
        if item.output is None or reference is None:
            return Score(None)
        # rouge-score's order is (target, prediction)
        return Score(float(self._scorer.score(reference, item.output)[self.rouge_type].fmeasure))


class Rouge1(_Rouge):
    """Unigram overlap."""

    name = "rouge1"
    rouge_type = "rouge1"


class Rouge2(_Rouge):
    """Bigram overlap."""

    name = "rouge2"
    rouge_type = "rouge2"


class RougeL(_Rouge):
    """Longest common subsequence."""

    name = "rouge_l"
    rouge_type = "rougeL"

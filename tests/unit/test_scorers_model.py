"""Model-based metrics: embedding similarity (MiniLM) and perplexity (SmolLM2 through llama.cpp).

The tests marked ``model`` load the real packaged models; the others use a small embedder of their own
(it implements the embedder protocol) to check batching and the cases without a score.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from llmops.evals.scorers.base import Score, ScoreInput
from llmops.evals.scorers.embedding import EmbeddingSimilarity, cosine, packaged_embedder
from llmops.evals.scorers.registry import MissingResource, Scorer, ScorerRegistry, ScorerResources
from llmops.providers.local import packaged_models

needs_local = pytest.mark.skipif(not packaged_models(), reason="the `local` extra is not installed")


class LetterCounts:
    """Vectors of letter counts a-z; counts its calls."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(texts)
        return [[float(text.lower().count(chr(code))) for code in range(97, 123)] for text in texts]


def create(spec: str, resources: ScorerResources) -> Scorer:
    return ScorerRegistry(load_plugins=False).create(spec, resources)


def test_cosine() -> None:
    assert cosine([1.0, 0.0], [2.0, 0.0]) == 1.0
    assert cosine([1.0, 0.0], [0.0, 3.0]) == 0.0
    assert cosine([1.0, 1.0], [-1.0, -1.0]) == pytest.approx(-1.0)
    assert cosine([0.0, 0.0], [1.0, 0.0]) == 0.0


async def test_similarity_embeds_a_batch_in_one_call() -> None:
    embedder = LetterCounts()
    scorer = create("embedding_similarity", ScorerResources(embedder=embedder))
    items = [
        ScoreInput(output="abc", expected="abc"),
        ScoreInput(output=None, expected="abc"),
        ScoreInput(output="ab", expected="cd"),
        ScoreInput(output="abc", expected=None),
        ScoreInput(output="aab", expected="ab"),
    ]
    scores = await scorer.score_many(items)
    assert embedder.calls == [["abc", "abc", "ab", "cd", "aab", "ab"]]
    assert [s.value for s in scores[:4]] == [pytest.approx(1.0), None, 0.0, None]
    assert scores[4].value == pytest.approx(3 / math.sqrt(10))
    assert await scorer.score(ScoreInput(output=None, expected="x")) == Score(None)
    assert embedder.calls[1:] == []  # nothing to embed: no call
    assert await scorer.score(ScoreInput(output="abc", expected="cab")) == Score(pytest.approx(1.0))


async def test_similarity_without_an_embedder_is_a_missing_resource() -> None:
    with pytest.raises(MissingResource):
        create("embedding_similarity", ScorerResources())
    with pytest.raises(MissingResource):
        await EmbeddingSimilarity().score(ScoreInput(output="a", expected="b"))


def test_perplexity_settings() -> None:
    resources = ScorerResources(perplexity_model=Path("/no/such/model.gguf"))
    scorer = create("perplexity", resources)  # the model is read on first use, not here
    assert (scorer.higher_is_better, scorer.threshold, scorer.requires_output) == (False, None, True)
    assert not create("perplexity:expected", resources).requires_output


@pytest.mark.model
@needs_local
async def test_similar_sentences_score_higher_than_unrelated_ones() -> None:
    embedder = packaged_embedder()
    assert embedder is not None
    scorer = create("embedding_similarity", ScorerResources(embedder=embedder))
    reference = "You can return the shoes within 30 days for a full refund."
    similar, unrelated, same = await scorer.score_many(
        [
            ScoreInput(
                output="Shoes may be sent back within a month and you get all your money back.",
                expected=reference,
            ),
            ScoreInput(output="The volcano erupted twice during the winter of 1783.", expected=reference),
            ScoreInput(output=reference, expected=reference),
        ]
    )
    assert same.value == pytest.approx(1.0, abs=1e-5)
    assert similar.value is not None
    assert unrelated.value is not None
    assert similar.value > 0.5 > 0.2 > unrelated.value


@pytest.mark.model
@needs_local
async def test_fluent_text_has_lower_perplexity_than_shuffled_words() -> None:
    fluent = "The children walked to school together on a sunny morning in early spring."
    shuffled = "spring school on morning early together The a in to walked sunny children."
    question = "Describe a morning walk."
    scorer = create("perplexity", ScorerResources())
    try:
        items = [ScoreInput(output=text, input=question) for text in (fluent, shuffled)]
        low, high = await asyncio.gather(*(scorer.score(item) for item in items))  # one at a time inside
        assert low.value is not None
        assert high.value is not None
        assert 1.0 < low.value < high.value / 5
        assert low.raw["tokens"] > 10
        assert low.raw["mean_nll"] == pytest.approx(math.log(low.value))
        assert (
            await scorer.score(ScoreInput(output=fluent, input=question))
        ).value == low.value  # same model
        reference = create("perplexity:expected", ScorerResources())
        try:
            measured = await reference.score(ScoreInput(output=None, expected=fluent, input=question))
            assert measured.value == pytest.approx(low.value)
        finally:
            reference.close()
    finally:
        scorer.close()

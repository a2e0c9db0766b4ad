"""Near-duplicate removal: planted pairs found, distinct rows kept, clusters and reasons, verification."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from llmops.datasets.cleaning.base import CleaningError, StepContext, StepRegistry, StepReport
from llmops.datasets.cleaning.near_dedup import (
    NearDuplicateIndex,
    NearDuplicateSettings,
    band_layout,
    find_near_duplicates,
)
from llmops.datasets.cleaning.pipeline import CleaningPipeline
from llmops.datasets.cleaning.recipe import Recipe
from llmops.datasets.rows import Row

pytest.importorskip("datasketch")


def _corpus(rows: int, plants: int, changes: int, seed: int = 5) -> tuple[list[str], set[tuple[int, int]]]:
    """``rows`` random 40-word texts; the last ``plants`` are copies of earlier ones with words changed."""
    rng = random.Random(seed)
    vocabulary = [f"w{index}" for index in range(5000)]
    texts = [" ".join(rng.choices(vocabulary, k=40)) for _ in range(rows - plants)]
    planted = set()
    for base in rng.sample(range(len(texts)), plants):
        words = texts[base].split()
        for position in rng.sample(range(len(words)), changes):
            words[position] = f"changed{position}"
        planted.add((base, len(texts)))
        texts.append(" ".join(words))
    return texts, planted


def _run_step(params: dict[str, object], rows: list[Row]) -> tuple[list[Row], StepReport]:
    step = StepRegistry().create("dedup_near", params, StepContext())
    step.scan(enumerate(rows))
    report = StepReport(step="dedup_near", params=params)
    kept = [row for position, row in enumerate(rows) if step.apply(position, row, report) is not None]
    step.finish(report)
    return kept, report


def test_planted_near_duplicates_are_found_and_distinct_rows_kept() -> None:
    texts, planted = _corpus(rows=400, plants=20, changes=2)
    result = find_near_duplicates(texts, threshold=0.6, shingle=3)
    assert {(cluster[0], cluster[1]) for cluster in result.clusters} == planted
    assert all(len(cluster) == 2 for cluster in result.clusters)
    assert result.removed == 20
    assert result.rate == pytest.approx(20 / 400)
    for base, copy in planted:
        representative, jaccard = result.duplicate_of[copy]
        assert representative == base
        assert 0.6 <= jaccard < 1.0


def test_results_are_deterministic() -> None:
    texts, _ = _corpus(rows=200, plants=10, changes=1)
    first = find_near_duplicates(texts, threshold=0.7, shingle=2)
    second = find_near_duplicates(texts, threshold=0.7, shingle=2)
    assert first.clusters == second.clusters
    assert first.pairs == second.pairs


def test_step_removes_members_and_records_clusters_and_reasons() -> None:
    text = "the quick brown fox jumps over the lazy dog near the quiet river bank today"
    rows: list[Row] = [
        {"input": text},
        {"input": "an entirely different sentence about databases and their many indexes"},
        {"input": text.replace("today", "tonight")},
        {"messages": [{"role": "user", "content": text.upper()}]},
    ]
    kept, report = _run_step({"threshold": 0.7, "shingle": 3}, rows)
    assert kept == rows[:2]
    assert report.removed == 2
    assert report.reasons == {"near-duplicate": 2}
    assert report.examples[0]["reason"].startswith("near-duplicate of row 0 (Jaccard 0.")
    assert report.examples[1]["reason"] == "near-duplicate of row 0 (Jaccard 1.00)"
    assert report.details["clusters"] == [[0, 2, 3]]
    assert report.details["cluster_count"] == 1
    assert report.details["removed"] == 2


def test_lowercase_false_tells_case_apart() -> None:
    text = "the quick brown fox jumps over the lazy dog near the quiet river bank today"
    rows: list[Row] = [{"input": text}, {"input": text.upper()}]
    kept, report = _run_step({"lowercase": False}, rows)
    assert kept == rows
    assert report.details["cluster_count"] == 0


def test_character_shingles_catch_spelling_variants() -> None:
    texts = [
        "The colour of the neighbour's harbour was grey in the morning",
        "The color of the neighbor's harbor was gray in the morning",
        "Completely unrelated words about compilers, parsers and linkers",
    ]
    words = find_near_duplicates(texts, threshold=0.5, shingle=2)
    chars = find_near_duplicates(texts, threshold=0.5, shingle=4, shingle_unit="char")
    assert words.clusters == []
    assert chars.clusters == [[0, 1]]


def test_verification_rejects_candidates_below_the_threshold() -> None:
    rng = random.Random(3)
    vocabulary = [f"v{index}" for index in range(2000)]
    base = [rng.choice(vocabulary) for _ in range(40)]
    half = base[:20] + [rng.choice(vocabulary) for _ in range(20)]  # exact Jaccard of 3-shingles: 0.31
    texts = [" ".join(base), " ".join(half)]
    # 16 bands of one value: the pair collides in a band almost surely, but is below 0.4
    verified = find_near_duplicates(texts, threshold=0.4, num_perm=16, shingle=3)
    assert verified.candidates == 1
    assert verified.clusters == []
    assert verified.pairs == []
    accepted = find_near_duplicates(texts, threshold=0.3, num_perm=16, shingle=3)
    assert accepted.clusters == [[0, 1]]
    assert accepted.pairs[0].jaccard == pytest.approx(9 / 29)


def test_without_verification_the_signature_estimate_decides() -> None:
    texts, planted = _corpus(rows=100, plants=5, changes=1)
    result = find_near_duplicates(texts, threshold=0.7, shingle=2, verify=False)
    assert {(cluster[0], cluster[1]) for cluster in result.clusters} == planted


def test_empty_texts_are_never_duplicates() -> None:
    result = find_near_duplicates(["", "   ", "some words here for once", ""], threshold=0.5, shingle=2)
    assert result.rows == 4
    assert result.clusters == []


def test_band_layout_catches_a_pair_at_the_threshold() -> None:
    for threshold in (0.3, 0.5, 0.6, 0.8, 0.9, 0.95):
        bands, size = band_layout(threshold, 128)
        assert bands * size <= 128
        assert 1 - (1 - threshold**size) ** bands >= 0.98
        # one row longer would miss the target (the layout is the strictest that reaches it)
        longer = 128 // (size + 1)
        if longer >= 2:
            assert 1 - (1 - threshold ** (size + 1)) ** longer < 0.98


def test_index_keys_must_increase() -> None:
    index = NearDuplicateIndex(NearDuplicateSettings())
    index.add(3, "some text")
    with pytest.raises(ValueError, match="keys must increase"):
        index.add(3, "more text")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": 0}, "threshold"),
        ({"num_perm": 8}, "num_perm"),
        ({"shingle": 0}, "shingle"),
        ({"shingle_unit": "byte"}, "shingle_unit"),
        ({"jaccard": 0.5}, "jaccard"),
    ],
)
def test_step_params_are_validated(params: dict[str, object], message: str) -> None:
    with pytest.raises(CleaningError, match=message):
        StepRegistry().create("dedup_near", params, StepContext())


def test_settings_are_validated_for_library_callers() -> None:
    with pytest.raises(CleaningError, match="threshold"):
        find_near_duplicates(["a"], threshold=1.2)
    with pytest.raises(CleaningError, match="shingle"):
        NearDuplicateSettings(shingle=0)


def test_runs_inside_a_cleaning_pipeline(tmp_path: Path) -> None:
    texts, planted = _corpus(rows=300, plants=15, changes=2)
    rows: list[Row] = [{"input": text, "id": index} for index, text in enumerate(texts)]
    recipe = Recipe.parse([{"dedup_near": {"fields": ["input"], "threshold": 0.6, "shingle": 3}}])
    pipeline = CleaningPipeline(recipe, StepRegistry(), StepContext(), workdir=tmp_path)
    kept = {row["id"] for row in pipeline.run(rows)}
    assert set(range(300)) - kept == {copy for _, copy in planted}
    report = pipeline.reports[0]
    assert (report.rows_in, report.rows_out, report.removed) == (300, 285, 15)
    assert len(report.details["clusters"]) == 15

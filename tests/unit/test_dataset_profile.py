"""Dataset profile: coverage, lengths, duplicates, languages, PII, sampling, and its Rich rendering."""

from __future__ import annotations

import random

import orjson
import pytest
from rich.console import Console

from llmops.cli.profile_view import bar, render_profile
from llmops.datasets.profile import Distribution, profile_rows
from llmops.datasets.rows import Row
from llmops.errors import UserError

pytest.importorskip("datasketch")
pytest.importorskip("py3langid")

ENGLISH = "The weather is nice today and I will go for a walk in the park with the dog."
GERMAN = "Das Wetter ist heute schön und ich gehe mit dem Hund im Park spazieren."


def _rows() -> list[Row]:
    return [
        {"input": ENGLISH, "expected": "yes", "metadata": {"source": "a"}},
        {"input": ENGLISH.upper().replace(".", "!"), "expected": "yes"},
        {"input": GERMAN + " Schreib an anna@example.org", "expected": None},
        {"input": "hi"},
        {"input": "hi"},
        {"messages": [{"role": "user", "content": "Call me on +44 20 7946 0958 tomorrow morning please"}]},
    ]


def test_counts_coverage_and_json_types() -> None:
    profile = profile_rows(_rows())
    assert profile.rows == 6
    coverage = {item.name: item for item in profile.fields}
    assert list(coverage) == ["input", "expected", "messages", "metadata"]
    assert coverage["input"].rows == 5
    assert coverage["input"].share == pytest.approx(5 / 6, abs=1e-6)
    assert coverage["expected"].types == {"string": 2, "null": 1}
    assert coverage["messages"].types == {"array": 1}


def test_duplicates_languages_and_near_duplicates() -> None:
    profile = profile_rows(_rows())
    assert profile.exact_duplicates == 1
    assert profile.exact_duplicate_rate == pytest.approx(1 / 6, abs=1e-6)
    assert profile.languages is not None
    assert profile.languages["unknown"] == pytest.approx(2 / 6, abs=1e-6)
    assert profile.languages["en"] == pytest.approx(3 / 6, abs=1e-6)
    assert profile.languages["de"] == pytest.approx(1 / 6, abs=1e-6)
    near = profile.near_duplicates
    assert near is not None
    # the two "hi" rows, and the first row against its upper-case copy (same words, Jaccard 1.0)
    assert (near.duplicates, near.clusters, near.rows_checked) == (2, 2, 6)
    assert profile.pii is None
    assert profile.pii_rows is None
    assert profile_rows(_rows(), near_duplicates=False).near_duplicates is None


def test_pii_rates_with_pattern_entities() -> None:
    from llmops.pii import PiiService

    profile = profile_rows(_rows(), pii=PiiService(use_nlp=False))
    assert profile.pii == {
        "EMAIL_ADDRESS": pytest.approx(1 / 6, abs=1e-6),
        "PHONE_NUMBER": pytest.approx(1 / 6, abs=1e-6),
    }
    assert profile.pii_rows == pytest.approx(2 / 6, abs=1e-6)


def test_length_distribution_and_histogram() -> None:
    rows: list[Row] = [{"input": " ".join(["w"] * words)} for words in range(1, 101)]
    profile = profile_rows(rows, near_duplicates=False)
    words = profile.words
    assert words is not None
    assert (words.min, words.median, words.max, words.mean) == (1, 50.5, 100, 50.5)
    assert words.p5 == pytest.approx(5.95)
    assert words.p95 == pytest.approx(95.05)
    assert sum(bucket.count for bucket in words.histogram) == 100
    assert [bucket.count for bucket in words.histogram] == [10] * 10
    assert profile.chars is not None
    assert profile.chars.max == 199


def test_long_tail_goes_to_an_open_bucket() -> None:
    distribution = Distribution.of([10] * 50 + [20] * 49 + [5000])
    assert distribution is not None
    last = distribution.histogram[-1]
    assert last.open_ended
    assert last.count == 1
    assert last.high == 5000
    assert sum(bucket.count for bucket in distribution.histogram) == 100
    assert Distribution.of([]) is None


def test_sample_bounds_the_estimates_and_says_so() -> None:
    rng = random.Random(1)
    rows: list[Row] = [{"input": " ".join(f"w{rng.randrange(9999)}" for _ in range(30))} for _ in range(500)]
    stages: list[str] = []
    profile = profile_rows(rows, sample=100, progress=lambda stage, done, total: stages.append(stage))
    assert profile.rows == 500
    assert profile.sampled
    assert profile.analysed_rows == 100
    assert profile.near_duplicates is not None
    assert profile.near_duplicates.rows_checked == 100
    assert profile.words is not None
    assert profile.words.min == 30
    assert "profile: sample" in stages
    assert "near-duplicates: verify" in stages
    unsampled = profile_rows(rows[:50], sample=100)
    assert not unsampled.sampled
    assert unsampled.analysed_rows == 50
    with pytest.raises(UserError, match="sample"):
        profile_rows(rows, sample=0)


def test_to_dict_is_json_and_rendering_shows_tables_and_bars() -> None:
    profile = profile_rows(_rows())
    data = orjson.loads(orjson.dumps(profile.to_dict()))
    assert data["rows"] == 6
    assert data["near_duplicates"]["clusters"] == 2
    console = Console(record=True, width=120)
    for part in render_profile(profile):
        console.print(part)
    output = console.export_text()
    for expected in (
        "exact duplicates",
        "near-duplicates",
        "input",
        "median",
        "words per row",
        "language mix",
    ):
        assert expected in output
    assert "█" in output


def test_bar_is_eighths_precise() -> None:
    assert bar(1.0, width=4) == "████"
    assert bar(0.5, width=4) == "██"
    assert bar(1 / 32, width=4) == "▏"
    assert bar(0.0, width=4) == ""

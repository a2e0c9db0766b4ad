"""Language identification and the language-aware steps: filter_language, remove_stopwords,
correct_spelling."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from llmops.datasets.cleaning.base import CleaningError, StepContext, StepRegistry, StepReport
from llmops.datasets.language import UNKNOWN, LanguageDetector, detect_language
from llmops.datasets.rows import Row
from llmops.errors import UserError

pytest.importorskip("py3langid")

ENGLISH = "The weather is nice today and I will go for a walk in the park."
GERMAN = "Das Wetter ist heute schön und ich gehe im Park spazieren."
FRENCH = "Il fait beau aujourd'hui et je vais me promener dans le parc."


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector(min_chars=20)


def _run(name: str, params: dict[str, Any], rows: list[Row]) -> tuple[list[Row | None], StepReport]:
    step = StepRegistry().create(name, params, StepContext())
    report = StepReport(step=name, params=params)
    out = [step.apply(position, row, report) for position, row in enumerate(rows)]
    step.finish(report)
    return out, report


@pytest.mark.parametrize(("text", "language"), [(ENGLISH, "en"), (GERMAN, "de"), (FRENCH, "fr")])
def test_detects_languages_with_normalised_confidence(
    detector: LanguageDetector, text: str, language: str
) -> None:
    found, confidence = detector.detect(text)
    assert found == language
    assert 0.9 < confidence <= 1.0


def test_short_or_letterless_text_is_unknown(detector: LanguageDetector) -> None:
    assert detector.detect("hi there") == (UNKNOWN, 0.0)
    assert detector.detect("12345 67890 12345 67890 1234") == (UNKNOWN, 0.0)


def test_detect_language_one_off_and_restricted_candidates() -> None:
    assert detect_language(GERMAN)[0] == "de"
    restricted = LanguageDetector(["en", "fr"])
    assert restricted.detect(GERMAN)[0] in {"en", "fr"}
    with pytest.raises(UserError, match="unknown language code"):
        LanguageDetector(["english"])


def test_filter_language_keeps_listed_languages_and_short_texts() -> None:
    rows: list[Row] = [{"input": ENGLISH}, {"input": GERMAN}, {"input": "ok"}, {"input": FRENCH}]
    out, report = _run("filter_language", {"keep": ["en", "fr"]}, rows)
    assert out == [rows[0], None, rows[2], rows[3]]
    assert report.removed == 1
    assert report.reasons == {"language de": 1}
    reason = report.examples[0]["reason"]
    assert re.fullmatch(r"language de \((0\.9\d|1\.00)\) not in \[en, fr\]", reason)
    assert report.details["languages"] == {"en": 1, "de": 1, UNKNOWN: 1, "fr": 1}


def test_filter_language_drop_list_and_drop_unknown() -> None:
    rows: list[Row] = [{"input": ENGLISH}, {"input": GERMAN}, {"input": "ok"}]
    out, report = _run("filter_language", {"drop": ["de"], "drop_unknown": True}, rows)
    assert out == [rows[0], None, None]
    assert report.reasons["language de"] == 1
    assert any("unknown" in reason for reason in report.reasons)


def test_filter_language_low_confidence_counts_as_unknown() -> None:
    rows: list[Row] = [{"input": GERMAN}]
    out, report = _run("filter_language", {"keep": ["en"], "min_confidence": 1.0}, rows)
    assert out == rows
    assert report.details["languages"] == {UNKNOWN: 1}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "exactly one of keep"),
        ({"keep": ["en"], "drop": ["de"]}, "exactly one of keep"),
        ({"keep": ["xx"]}, "unknown language code"),
        ({"keep": ["en"], "min_confidence": 2}, "min_confidence"),
    ],
)
def test_filter_language_params_are_validated(params: dict[str, Any], message: str) -> None:
    with pytest.raises(CleaningError, match=message):
        StepRegistry().create("filter_language", params, StepContext())


def test_remove_stopwords_fixed_language_keeps_punctuation_and_input() -> None:
    rows: list[Row] = [
        {"input": "The cat is on the mat, and it is happy.", "expected": "It is a cat."},
        {"input": "cat mat"},
    ]
    original = copy.deepcopy(rows)
    out, report = _run("remove_stopwords", {"language": "en", "fields": ["input"]}, rows)
    assert out[0] == {"input": "cat mat, happy.", "expected": "It is a cat."}
    assert out[1] == rows[1]
    assert rows == original
    assert report.changed == 1
    assert report.reasons == {"stop words (en)": 1}
    assert report.details["words_removed"] == 7


def test_remove_stopwords_auto_detects_per_text_and_reaches_messages() -> None:
    rows: list[Row] = [
        {"messages": [{"role": "user", "content": "Der Hund ist in dem Garten und er spielt mit dem Ball."}]},
        {"input": "too short"},
    ]
    out, report = _run("remove_stopwords", {}, rows)
    first = out[0]
    assert first is not None
    assert first["messages"][0]["content"] == "Hund Garten spielt Ball."
    assert out[1] == rows[1]
    assert report.details["rows_by_language"] == {"de": 1}
    assert report.details["texts_skipped"] == {"language unknown": 1}


def test_remove_stopwords_refuses_a_language_without_a_list() -> None:
    with pytest.raises(CleaningError, match="no stop-word list"):
        StepRegistry().create("remove_stopwords", {"language": "klingon"}, StepContext())


def test_correct_spelling_fixes_typos_and_leaves_protected_words() -> None:
    text = "I recieve teh speling list from Bob at http://exmple.com, mail bbob@exmple.com, code x2yz."
    out, report = _run("correct_spelling", {"language": "en"}, [{"input": text}])
    assert out[0] == {
        "input": "I receive the spelling list from Bob at http://exmple.com, mail bbob@exmple.com, code x2yz."
    }
    assert report.changed == 1
    assert report.reasons == {"spelling": 1}
    assert report.details["words_corrected"] == 3
    assert "teh -> the (1)" in report.details["corrections"]


def test_correct_spelling_capitalised_words_when_asked() -> None:
    out, _ = _run("correct_spelling", {"language": "en", "skip_capitalized": False}, [{"input": "Teh end"}])
    assert out[0] == {"input": "the end"}


def test_correct_spelling_auto_uses_the_detected_language() -> None:
    rows: list[Row] = [{"input": "Ich habe heute leider keine zeit fur dich, aber morgen gerne wieder."}]
    out, report = _run("correct_spelling", {"language": "auto"}, rows)
    assert out[0] == {"input": "Ich habe heute leider keine zeit für dich, aber morgen gerne wieder."}
    assert report.details["corrections"] == ["fur -> für (1)"]


@pytest.mark.parametrize(
    ("params", "message"),
    [({"language": "ja"}, "no dictionary for 'ja'"), ({"max_edit_distance": 3}, "max_edit_distance")],
)
def test_correct_spelling_params_are_validated(params: dict[str, Any], message: str) -> None:
    with pytest.raises(CleaningError, match=message):
        StepRegistry().create("correct_spelling", params, StepContext())

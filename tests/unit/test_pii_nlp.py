"""The Presidio path of llmops.pii: PERSON, LOCATION, DATE_TIME with the packaged spaCy model (data extra)."""

from __future__ import annotations

import threading

import pytest

from llmops.pii import PiiService


@pytest.fixture(scope="module")
def pii() -> PiiService:
    return PiiService(salt="nlp-salt")


def entities(service: PiiService, text: str) -> set[tuple[str, str]]:
    return {(finding.entity, finding.text) for finding in service.analyze(text)}


def test_the_extra_is_used_by_default(pii: PiiService) -> None:
    assert pii.nlp_available
    assert pii.skipped_entities == ()
    assert {"PERSON", "LOCATION", "DATE_TIME"} <= set(pii.entities)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("My name is Aiko Tanaka and I live in Berlin.", {("PERSON", "Aiko Tanaka"), ("LOCATION", "Berlin")}),
        (
            "Yesterday Maria Garcia flew from Madrid to Chicago.",
            {("PERSON", "Maria Garcia"), ("LOCATION", "Madrid")},
        ),
        ("Please ask John Smith, he moved to London.", {("PERSON", "John Smith"), ("LOCATION", "London")}),
        ("The contract was signed on March 3, 2021.", {("DATE_TIME", "March 3, 2021")}),
    ],
)
def test_names_places_dates(pii: PiiService, text: str, expected: set[tuple[str, str]]) -> None:
    assert expected <= entities(pii, text)


def test_patterns_win_over_ner_and_ids_are_not_dates(pii: PiiService) -> None:
    found = entities(pii, "Order 88392145 from ORD-2023-55812, call +44 20 7946 0958.")
    assert found == {("PHONE_NUMBER", "+44 20 7946 0958")}


def test_pattern_results_are_the_same_with_and_without_nlp(pii: PiiService) -> None:
    text = "jane.roe@example.org paid with 4111 1111 1111 1111 from 10.0.0.1"
    without = PiiService(use_nlp=False)
    assert pii.analyze(text) == without.analyze(text)


def test_redact_names_with_stable_pseudonyms(pii: PiiService) -> None:
    first = pii.redact("Aiko Tanaka called.", {"PERSON": "hash", "default": "tag"}).text
    second = pii.redact("Later, Aiko Tanaka wrote again.", {"PERSON": "hash", "default": "tag"}).text
    pseudonym = first.split(" called")[0]
    assert pseudonym.startswith("<PERSON_")
    assert pseudonym in second


def test_drop_rows_with_names(pii: PiiService) -> None:
    assert pii.redact("Maria Garcia says hi", {"PERSON": "drop"}).drop
    assert not pii.redact("the weather is fine", {"PERSON": "drop"}).drop


def test_explicit_nlp_entity_and_other_languages() -> None:
    only_people = PiiService(entities=["PERSON"])
    assert [finding.entity for finding in only_people.analyze("John Smith, john@example.org")] == ["PERSON"]
    german = PiiService(language="de")  # auto: patterns only, NLP skipped
    assert german.skipped_entities == ("PERSON", "LOCATION", "DATE_TIME")
    with pytest.raises(Exception, match="support en only"):
        PiiService(language="de", entities=["PERSON"])


def test_engine_loads_once_under_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops.pii import nlp

    built: list[str] = []
    real = nlp._build_analyzer

    def counting(language: str) -> object:
        built.append(language)
        return real(language)

    monkeypatch.setattr(nlp, "_build_analyzer", counting)
    service = PiiService()
    results: list[int] = []

    def work() -> None:
        results.append(len(service.analyze("Maria Garcia lives in Madrid.")))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [2, 2, 2, 2]
    assert built == ["en"]

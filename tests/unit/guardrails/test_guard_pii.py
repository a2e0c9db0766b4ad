"""The pii guardrail: PiiService's findings as a verdict, with cheap gates that must never lose one."""

from __future__ import annotations

import random
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from llmops.guardrails.base import CheckContext, Finding, GuardrailError, GuardrailUnavailable
from llmops.guardrails.pii_guard import PiiGuardrail
from llmops.guardrails.redaction import redact_spans
from llmops.pii import PiiService

CONTEXT = CheckContext("input")

# One text per built-in entity and format, and near misses (years, prices, order ids, versions).
CORPUS = [
    "Write to bob.smith+news@example.co.uk today.",
    "Call +44 20 7946 0958 or (555) 123-4567 or 555.123.4567 or 1-555-123-4567.",
    "Our office: 020 7946 0958, Berlin 030/1234567, Paris 06.12.34.56.78.",
    "phone 02079460958 please",
    "order 2079460958 shipped",
    "Card 4111 1111 1111 1111, also 4111-1111-1111-1111 and 4111111111111111; not 4111 1111 1111 1112.",
    "IBAN DE89 3704 0044 0532 0130 00 and GB82WEST12345698765432, not DE89 3704 0044 0532 0130 01.",
    "Servers 192.168.0.1 and 2001:db8::8a2e:370:7334 and ::1, not 999.1.1.1 or version 1.2.3.4.5.",
    "Connect with postgres://admin:s3cret@db.internal:5432/app then.",
    "In 2023 we sold 4,500 units at $19.99, up 12% from 2022 (order #88392145).",
    "Meeting at 10:30, room 4.12, ticket ABC-1234, build 20240101.",
    "Plain prose without any numbers or addresses at all.",
    "",
    "a@b",
    "mailto:x@y.z and user@@example.com",
    "+1",
    "DE89",
]


@pytest.fixture(scope="module")
def guard() -> PiiGuardrail:
    return PiiGuardrail({})


@pytest.fixture(scope="module")
def service() -> PiiService:
    return PiiService(use_nlp=False)


def spans(service: PiiService, text: str) -> list[tuple[str, int, int]]:
    return [(finding.entity, finding.start, finding.end) for finding in service.analyze(text)]


def found(guard: PiiGuardrail, text: str) -> list[tuple[str, int, int]]:
    return [(finding.kind, finding.start, finding.end) for finding in guard.check(text, CONTEXT).findings]


def test_default_is_the_fast_pattern_entities(guard: PiiGuardrail) -> None:
    assert set(guard.entities) == {
        "CREDIT_CARD",
        "EMAIL_ADDRESS",
        "IBAN_CODE",
        "IP_ADDRESS",
        "PHONE_NUMBER",
        "URL_WITH_CREDENTIALS",
    }
    assert guard.slow is False
    assert guard.can_redact


def test_email_and_phone(guard: PiiGuardrail) -> None:
    text = "Reach me at jane.doe@example.com or +1 415 555 2671."
    verdict = guard.check(text, CONTEXT)
    assert verdict.triggered
    assert verdict.reason == "2 findings: EMAIL_ADDRESS, PHONE_NUMBER"
    assert verdict.findings == (Finding("EMAIL_ADDRESS", 12, 32), Finding("PHONE_NUMBER", 36, 51))
    assert verdict.details == {"entities": ["EMAIL_ADDRESS", "PHONE_NUMBER"], "categories": {"pii": 1.0}}
    assert verdict.score == 1.0
    assert redact_spans(text, verdict.findings) == "Reach me at <EMAIL_ADDRESS> or <PHONE_NUMBER>."


def test_one_finding_reads_singular(guard: PiiGuardrail) -> None:
    verdict = guard.check("card 4111 1111 1111 1111", CONTEXT)
    assert verdict.reason == "1 finding: CREDIT_CARD"
    assert verdict.findings == (Finding("CREDIT_CARD", 5, 24),)


def test_clean_text_passes(guard: PiiGuardrail) -> None:
    for text in ("Summarise the report in three bullet points.", "In 2023 revenue grew 12% to $4.5m.", ""):
        verdict = guard.check(text, CONTEXT)
        assert not verdict.triggered
        assert verdict.findings == ()


@pytest.mark.parametrize("text", CORPUS)
def test_the_gates_lose_nothing_the_service_finds(
    guard: PiiGuardrail, service: PiiService, text: str
) -> None:
    assert found(guard, text) == spans(service, text)


def mutated(generator: random.Random, text: str) -> str:
    """``text`` with a few characters replaced, inserted or deleted, near-misses included."""
    alphabet = "0123456789" * 3 + " -./()+:@" + "aZDE" + "٣²"
    chars = list(text)
    for _ in range(generator.randint(0, 4)):
        position = generator.randint(0, len(chars))
        action = generator.random()
        if action < 0.4 and position < len(chars):
            chars[position] = generator.choice(alphabet)
        elif action < 0.8:
            chars.insert(position, generator.choice(alphabet))
        elif position < len(chars):
            del chars[position]
    return "".join(chars)


def test_the_gates_lose_nothing_on_mutated_texts(guard: PiiGuardrail, service: PiiService) -> None:
    """Every corpus text, mutated at random: the gated and the full scan still agree."""
    generator = random.Random(12)
    entities: set[str] = set()
    for _ in range(4000):
        text = mutated(generator, generator.choice(CORPUS[:11]))
        expected = spans(service, text)
        assert found(guard, text) == expected, text
        entities.update(entity for entity, _, _ in expected)
    assert len(entities) == 6  # every entity was in play


def test_chosen_entities_only(service: PiiService) -> None:
    guard = PiiGuardrail({"entities": ["EMAIL_ADDRESS"]})
    text = "bob@example.com, 4111 1111 1111 1111"
    assert found(guard, text) == [("EMAIL_ADDRESS", 0, 15)]


def test_score_threshold_drops_weak_findings() -> None:
    text = "ring 02079460958"  # a bare national number next to a context word: score 0.7
    assert found(PiiGuardrail({"score_threshold": 0.5}), text) == [("PHONE_NUMBER", 5, 16)]
    assert found(PiiGuardrail({"score_threshold": 0.8}), text) == []


def test_checks_from_many_threads_agree(guard: PiiGuardrail, service: PiiService) -> None:
    texts = [text for text in CORPUS if text] * 40
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda text: found(guard, text), texts))
    assert results == [spans(service, text) for text in texts]


@pytest.mark.parametrize(
    ("params", "bad"),
    [
        ({"entities": ["EMAIL"]}, "entities"),
        ({"entities": "EMAIL_ADDRESS"}, "entities"),
        ({"entities": []}, "entities"),
        ({"entities": [3]}, "entities"),
        ({"score_threshold": 1.5}, "score_threshold"),
        ({"score_threshold": "high"}, "score_threshold"),
        ({"language": 1}, "language"),
        ({"entities": ["PERSON"], "language": "de"}, "language"),
        ({"entity": ["EMAIL_ADDRESS"]}, "entity"),
    ],
)
def test_bad_params(params: dict[str, object], bad: str) -> None:
    with pytest.raises(GuardrailError) as raised:
        PiiGuardrail(params)
    assert raised.value.param == bad
    assert "\n" not in raised.value.message


def test_nlp_entities_make_it_slow() -> None:
    """PERSON needs the data extra (installed in the dev environment), and marks the guardrail slow."""
    guard = PiiGuardrail({"entities": ["PERSON", "EMAIL_ADDRESS"]})
    assert guard.slow
    verdict = guard.check("Please ask John Smith at john@example.com.", CONTEXT)
    assert verdict.details["entities"] == ["EMAIL_ADDRESS", "PERSON"]
    assert Finding("PERSON", 11, 21) in verdict.findings


def test_nlp_entities_without_the_data_extra_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "presidio_analyzer", None)  # as if not installed
    with pytest.raises(GuardrailUnavailable, match=r"pip install 'llmops\[data\]'"):
        PiiGuardrail({"entities": ["PERSON"]})
    assert PiiGuardrail({}).check("bob@example.com", CONTEXT).triggered  # patterns need no extra

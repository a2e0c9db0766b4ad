"""Pattern entities of llmops.pii (no NLP): what is found, what is not, overlaps and strategies."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from llmops.pii import PiiError, PiiFinding, PiiService, Recognizer, RecognizerRegistry
from llmops.pii.base import resolve_overlaps
from llmops.pii.patterns import iban_valid, luhn_valid


@pytest.fixture(scope="module")
def pii() -> PiiService:
    return PiiService(use_nlp=False, salt="test-salt")


def found(service: PiiService, text: str) -> list[tuple[str, str]]:
    return [(finding.entity, finding.text) for finding in service.analyze(text)]


@pytest.mark.parametrize(
    "email",
    ["jane.roe@example.org", "j+tag@mail.example.co.uk", "ANNA_B-99@sub.domain.io", "x@y.de"],
)
def test_emails(pii: PiiService, email: str) -> None:
    assert found(pii, f"Write to {email}, please.") == [("EMAIL_ADDRESS", email)]


def test_not_emails(pii: PiiService) -> None:
    assert found(pii, "user@localhost or @handle or a@b") == []


@pytest.mark.parametrize(
    "phone",
    [
        "+44 20 7946 0958",  # UK, international
        "+1 (555) 123-4567",
        "+49 151 12345678",
        "+33 (0)1 23 45 67 89",
        "+4915112345678",
        "(555) 123-4567",  # US
        "555-867-5309",
        "555.867.5309",
        "1-800-555-0199",
        "020 7946 0958",  # UK national
        "07700 900123",
        "030 12345678",  # DE
        "089/1234567",
        "0151-12345678",
        "01 23 45 67 89",  # FR
        "06.12.34.56.78",
    ],
)
def test_phones(pii: PiiService, phone: str) -> None:
    assert found(pii, f"Reach me on {phone} today.") == [("PHONE_NUMBER", phone)]


@pytest.mark.parametrize(
    "text",
    [
        "In 2021 we sold 1,299.00 EUR worth.",
        "Order 88392145 shipped; order ORD-2023-55812 too.",
        "Invoice 0042-1234 and ticket #123456.",
        "The build 20240115 ran for 3600 seconds.",
        "Ref 4452 1187 9931",
        "Date 05.06.2021 at 10:30.",
    ],
)
def test_plain_numbers_are_not_phones(pii: PiiService, text: str) -> None:
    assert found(pii, text) == []


def test_bare_national_number_needs_a_context_word(pii: PiiService) -> None:
    assert found(pii, "call 07700900123") == [("PHONE_NUMBER", "07700900123")]
    assert found(pii, "id 07700900123") == []


@pytest.mark.parametrize(
    "card",
    [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5555555555554444",
        "3782 822463 10005",
        "6011000990139424",
    ],
)
def test_luhn_valid_cards(pii: PiiService, card: str) -> None:
    assert found(pii, f"card {card} exp 12/29") == [("CREDIT_CARD", card)]


@pytest.mark.parametrize("number", ["4111 1111 1111 1112", "5555555555554445", "4539148803436468"])
def test_luhn_failing_numbers_are_never_cards(pii: PiiService, number: str) -> None:
    assert not luhn_valid(number.replace(" ", ""))
    assert all(finding.entity != "CREDIT_CARD" for finding in pii.analyze(f"number {number}"))


def test_luhn() -> None:
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")


@pytest.mark.parametrize(
    "iban",
    [
        "DE89 3704 0044 0532 0130 00",
        "GB82WEST12345698765432",
        "FR14 2004 1010 0505 0001 3M02 606",
        "NL91ABNA0417164300",
        "ES9121000418450200051332",
        "BE68539007547034",
    ],
)
def test_ibans(pii: PiiService, iban: str) -> None:
    assert found(pii, f"Pay to {iban} by Friday.") == [("IBAN_CODE", iban)]


def test_iban_checksum_and_length() -> None:
    assert iban_valid("DE89370400440532013000")
    assert not iban_valid("DE89370400440532013001")  # checksum
    assert not iban_valid("DE8937040044053201300")  # length for DE
    assert not iban_valid("ZZ89370400440532013000")  # no such country


def test_iban_with_a_bad_checksum_is_not_found(pii: PiiService) -> None:
    assert found(pii, "IBAN DE89 3704 0044 0532 0130 01.") == []


def test_ips(pii: PiiService) -> None:
    text = "from 192.168.1.20 and 2001:db8::8a2e:370:7334 or fe80::1, ::ffff:10.0.0.1."
    assert found(pii, text) == [
        ("IP_ADDRESS", "192.168.1.20"),
        ("IP_ADDRESS", "2001:db8::8a2e:370:7334"),
        ("IP_ADDRESS", "fe80::1"),
        ("IP_ADDRESS", "::ffff:10.0.0.1"),
    ]


def test_not_ips(pii: PiiService) -> None:
    assert found(pii, "999.1.1.1, 01.2.3.4, version 1.2.3.4.5, at 10:30:00, MAC 00:1A:2B:3C:4D:5E") == []


def test_url_with_credentials(pii: PiiService) -> None:
    text = "DSN postgres://admin:hunter2@db.example.com:5432/app, and https://example.com/no/creds."
    assert found(pii, text) == [("URL_WITH_CREDENTIALS", "postgres://admin:hunter2@db.example.com:5432")]


def test_overlap_keeps_the_longer_finding(pii: PiiService) -> None:
    # the password looks like a card number and the user part like an e-mail's: the URL wins whole
    text = "https://bob:4111111111111111@bank.example.com/x"
    assert found(pii, text) == [("URL_WITH_CREDENTIALS", "https://bob:4111111111111111@bank.example.com")]


def test_overlap_rule() -> None:
    def finding(entity: str, start: int, end: int, score: float = 1.0) -> PiiFinding:
        return PiiFinding(entity, start, end, "x" * (end - start), score)

    phone, date = finding("PHONE_NUMBER", 0, 16, 0.75), finding("DATE_TIME", 5, 20, 0.85)
    assert resolve_overlaps([date, phone]) == [phone]  # a pattern beats NER, even longer NER
    short, long = finding("EMAIL_ADDRESS", 4, 10), finding("URL_WITH_CREDENTIALS", 0, 30)
    assert resolve_overlaps([short, long]) == [long]
    low, high = finding("PHONE_NUMBER", 0, 10, 0.5), finding("CREDIT_CARD", 2, 12, 0.9)
    assert resolve_overlaps([low, high]) == [high]
    apart = finding("EMAIL_ADDRESS", 40, 50)
    assert resolve_overlaps([apart, long]) == [long, apart]


TEXT = "Mail jane.roe@example.org, card 4111 1111 1111 1111, from 10.0.0.1."


def test_tag_strategy(pii: PiiService) -> None:
    result = pii.redact(TEXT)
    assert result.text == "Mail <EMAIL>, card <CREDIT_CARD>, from <IP_ADDRESS>."
    assert [finding.entity for finding in result.findings] == ["EMAIL_ADDRESS", "CREDIT_CARD", "IP_ADDRESS"]
    assert result.drop is False


def test_mask_keeps_length_and_shape(pii: PiiService) -> None:
    result = pii.redact(TEXT, {"default": "mask", "CREDIT_CARD": "mask_last4"})
    assert result.text == "Mail ****.***@*******.***, card **** **** **** 1111, from **.*.*.*."
    assert len(result.text) == len(TEXT)


def test_hash_pseudonyms_are_stable_per_salt(pii: PiiService) -> None:
    first = pii.redact("jane.roe@example.org wrote", "hash").text
    again = pii.redact("Again: JANE.ROE@example.org", "hash").text
    other = PiiService(use_nlp=False, salt="another-salt").redact("jane.roe@example.org wrote", "hash").text
    token = first.split()[0]
    assert re.fullmatch(r"<EMAIL_[0-9a-f]{8}>", token)
    assert again == f"Again: {token}"
    assert other.split()[0] != token
    card_spaced = pii.redact("4111 1111 1111 1111", "hash").text
    assert pii.redact("4111-1111-1111-1111", "hash").text == card_spaced


def test_hash_needs_a_salt() -> None:
    with pytest.raises(PiiError, match="salt"):
        PiiService(use_nlp=False).redact("nothing to hash", {"EMAIL_ADDRESS": "hash"})


def test_drop_strategy(pii: PiiService) -> None:
    result = pii.redact(TEXT, {"default": "tag", "CREDIT_CARD": "drop"})
    assert result.drop is True
    assert pii.redact("no card here, jane@example.org", {"CREDIT_CARD": "drop"}).drop is False


def test_unknown_names_are_one_line_errors(pii: PiiService) -> None:
    with pytest.raises(PiiError, match="unknown PII strategy 'blur'"):
        pii.redact(TEXT, "blur")
    with pytest.raises(PiiError, match="unknown PII entity 'SSN'"):
        pii.analyze(TEXT, ["SSN"])
    with pytest.raises(PiiError, match="needs the NLP engine"):
        pii.analyze(TEXT, ["PERSON"])


def test_entities_restrict_the_search(pii: PiiService) -> None:
    assert [finding.entity for finding in pii.analyze(TEXT, ["IP_ADDRESS"])] == ["IP_ADDRESS"]
    only_email = PiiService(use_nlp=False, entities=["EMAIL_ADDRESS"])
    assert [finding.entity for finding in only_email.analyze(TEXT)] == ["EMAIL_ADDRESS"]


def test_nlp_entities_are_off_when_asked(pii: PiiService) -> None:
    assert pii.nlp_available is False
    assert pii.skipped_entities == ()  # asked for: not a surprise to report
    assert "PERSON" not in pii.entities


class _Ticket(Recognizer):
    entity = "TICKET"
    tag = "TICKET"

    def find(self, text: str) -> Iterator[PiiFinding]:
        start = text.find("TCK-")
        if start >= 0:
            yield self._finding(text, start, start + 8)


def test_a_registered_recognizer_is_used_by_name() -> None:
    registry = RecognizerRegistry(load_plugins=False)
    registry.register(_Ticket())
    service = PiiService(use_nlp=False, registry=registry)
    assert service.redact("see TCK-1234 now").text == "see <TICKET> now"
    assert "TICKET" in service.available_entities


def test_pattern_path_is_fast(pii: PiiService) -> None:
    import time

    text = (TEXT + " Call +44 20 7946 0958 about IBAN DE89 3704 0044 0532 0130 00. " * 5)[:500]
    start = time.perf_counter()
    for _ in range(200):
        pii.analyze(text)
    assert (time.perf_counter() - start) / 200 < 0.002  # well under 1 ms here; slack for a loaded CI box


def test_without_the_data_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from llmops.pii import NlpUnavailable

    monkeypatch.setitem(sys.modules, "presidio_analyzer", None)  # as if not installed
    auto = PiiService()
    assert auto.nlp_available is False
    assert auto.skipped_entities == ("PERSON", "LOCATION", "DATE_TIME")
    assert [finding.entity for finding in auto.analyze(TEXT)] == [
        "EMAIL_ADDRESS",
        "CREDIT_CARD",
        "IP_ADDRESS",
    ]
    with pytest.raises(NlpUnavailable, match=r"pip install 'llmops\[data\]'"):
        PiiService(entities=["EMAIL_ADDRESS", "PERSON"])
    with pytest.raises(NlpUnavailable, match="data extra"):
        PiiService(use_nlp=True)


def test_digits_of_other_scripts_never_break_the_iban_check(pii: PiiService) -> None:
    # "²".isdigit() is true but int("²", 36) fails: the IBAN scan raised ValueError on this text
    assert pii.analyze("x DE89" + "²" * 18, ["IBAN_CODE"]) == []
    assert pii.analyze("pay DE89 3704 0044 0532 0130 00 now", ["IBAN_CODE"])[0].entity == "IBAN_CODE"

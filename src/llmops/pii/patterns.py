"""The pattern recognisers: e-mail, phone, credit card, IBAN, IP address, URL with credentials.

Each needs only the standard library (``re``, ``ipaddress``), so they work without the ``data`` extra
and give the same results with it. A regular expression proposes candidates; a check in code keeps
only the real ones (Luhn for cards, length per country and mod-97 for IBANs, valid octets for IPs,
digit counts for phones), which is what keeps years, prices and order ids out.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

from llmops.pii.base import PiiFinding, Recognizer

_EMAIL = re.compile(
    r"(?<![\w.+%-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-]|\.[A-Za-z0-9])"
)


class EmailRecognizer(Recognizer):
    """ASCII addresses ``local@domain.tld`` (internationalised domains are not recognised)."""

    entity = "EMAIL_ADDRESS"
    tag = "EMAIL"

    def find(self, text: str) -> Iterator[PiiFinding]:
        if "@" not in text:
            return
        for match in _EMAIL.finditer(text):
            yield self._finding(text, match.start(), match.end())

    def normalize(self, value: str) -> str:
        return value.strip().lower()


# Numbers that start with + and a country code: separated by spaces, dots, dashes, parentheses.
_INTERNATIONAL = re.compile(
    r"(?<![\w+])(?<!\d[ /.-])\+[1-9]\d{0,2}(?:[ .-]?\(0\))?(?:[ .-]?\(?\d{1,5}\)?){1,6}(?!\w)"
)
# US/Canada: (555) 123-4567, 555-123-4567, 555.123.4567, 1-555-123-4567 (the same separator twice).
_NORTH_AMERICAN = re.compile(
    r"(?<![\w+(./-])(?<!\d[ /.-])(?:1[ .-])?"
    r"(?:\([2-9]\d{2}\)[ .-]?\d{3}[ .-]|[2-9]\d{2}([ .-])\d{3}\1)\d{4}(?!\w|[.-]\d)"
)
# National numbers with a trunk 0 and separators: UK 020 7946 0958, DE 030/1234567, FR 06.12.34.56.78.
_NATIONAL = re.compile(
    r"(?<![\w+/.-])(?<!\d[ /.-])(?:\(0\d{1,4}\)|0[1-9]\d{0,3})(?:[ /.-]\d{2,8}){1,4}(?!\w|[/-]\d)"
)
# The same digits without any separator are only a phone next to a word that says so.
_BARE = re.compile(r"(?<![\w+/.-])(?<!\d[ /.-])(?:0[1-9]\d{8,10}|[2-9]\d{9})(?!\w|[.,]\d)")
_PHONE_CONTEXT = re.compile(
    r"\b(?:phone|tel|telephone|call|mobile|cell|fax|whatsapp|sms|text|ring|dial)\b", re.I
)
_CONTEXT_WINDOW = 40


class PhoneRecognizer(Recognizer):
    """International (+CC) and common national formats; 8-15 digits (E.164) or 9-12 for national ones.

    Plain digit runs (years, amounts, order ids) are not phones: a national number needs a separator
    or a context word (``call``, ``phone``, ``tel``...) in the 40 characters before it.
    """

    entity = "PHONE_NUMBER"
    tag = "PHONE"

    def find(self, text: str) -> Iterator[PiiFinding]:
        for pattern, low, high, score in (
            (_INTERNATIONAL, 8, 15, 0.9),
            (_NORTH_AMERICAN, 10, 11, 0.8),
            (_NATIONAL, 9, 12, 0.75),
        ):
            for match in pattern.finditer(text):
                if low <= sum(char.isdigit() for char in match.group()) <= high:
                    yield self._finding(text, match.start(), match.end(), score)
        for match in _BARE.finditer(text):
            before = text[max(0, match.start() - _CONTEXT_WINDOW) : match.start()]
            yield self._finding(
                text, match.start(), match.end(), 0.7 if _PHONE_CONTEXT.search(before) else 0.3
            )

    def normalize(self, value: str) -> str:
        return ("+" if value.lstrip().startswith("+") else "") + "".join(c for c in value if c.isdigit())


_CARD = re.compile(r"(?<![\w+.-])(?<!\d[ -])[2-6]\d{3}(?:[ -]?\d){9,15}(?!\w|[ -]\d)")


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number carries in its last digit."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


class CreditCardRecognizer(Recognizer):
    """13-19 digits (spaces or dashes allowed) starting 2-6, as the card networks do; Luhn-checked.

    A number failing Luhn is never reported, whatever it looks like.
    """

    entity = "CREDIT_CARD"
    tag = "CREDIT_CARD"

    def find(self, text: str) -> Iterator[PiiFinding]:
        for match in _CARD.finditer(text):
            digits = "".join(char for char in match.group() if char.isdigit())
            if 13 <= len(digits) <= 19 and luhn_valid(digits):
                yield self._finding(text, match.start(), match.end())

    def normalize(self, value: str) -> str:
        return "".join(char for char in value if char.isdigit())


IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25,
    "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18,
    "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33,
    "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip
"""IBAN length per country (ISO 13616 registry): a candidate of another length is not an IBAN."""

_IBAN_START = re.compile(r"(?<![A-Za-z0-9])([A-Z]{2})\d{2}")


def iban_valid(iban: str) -> bool:
    """Country length and the ISO 7064 mod-97 check of an IBAN written without spaces."""
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum():
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def _iban_end(text: str, position: int, needed: int) -> int | None:
    """Where an IBAN whose BBAN (``needed`` characters, single spaces allowed) starts here ends."""
    count = 0
    while count < needed:
        if text[position : position + 1] == " " and _iban_char(text[position + 1 : position + 2]):
            position += 1
        if not _iban_char(text[position : position + 1]):
            return None
        count += 1
        position += 1
    return None if text[position : position + 1].isalnum() else position


def _iban_char(char: str) -> bool:
    return bool(char) and ("0" <= char <= "9" or "A" <= char <= "Z")  # isdigit() admits "²"


class IbanRecognizer(Recognizer):
    """IBANs of the registry's countries, printed with or without spaces, checked by length and mod 97."""

    entity = "IBAN_CODE"
    tag = "IBAN"

    def find(self, text: str) -> Iterator[PiiFinding]:
        for match in _IBAN_START.finditer(text):
            length = IBAN_LENGTHS.get(match.group(1))
            if length is None:
                continue
            end = _iban_end(text, match.end(), length - 4)
            if end is not None and iban_valid(self.normalize(text[match.start() : end])):
                yield self._finding(text, match.start(), end)

    def normalize(self, value: str) -> str:
        return value.replace(" ", "").upper()


_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?=[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:)[0-9A-Fa-f:]{2,39}"
    r"(?:(?<=:)\d{1,3}(?:\.\d{1,3}){3})?(?![\w:]|\.\d)"
)


class IpAddressRecognizer(Recognizer):
    """IPv4 with valid octets (no leading zeros) and IPv6 as :mod:`ipaddress` parses it (with a digit)."""

    entity = "IP_ADDRESS"
    tag = "IP_ADDRESS"

    def find(self, text: str) -> Iterator[PiiFinding]:
        if "." in text:
            for match in _IPV4.finditer(text):
                if _parses(match.group()):
                    yield self._finding(text, match.start(), match.end(), 0.95)
        if "::" in text or text.count(":") >= 2:
            for match in _IPV6.finditer(text):
                candidate = match.group()
                if any(char.isdigit() for char in candidate) and _parses(candidate):
                    yield self._finding(text, match.start(), match.end(), 0.95)

    def normalize(self, value: str) -> str:
        return str(ipaddress.ip_address(value)) if _parses(value) else value


def _parses(candidate: str) -> bool:
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


_URL_CREDENTIALS = re.compile(
    r"(?<![\w+.-])[A-Za-z][A-Za-z0-9+.-]{0,30}://[^\s/:@?#]+:[^\s/?#]+@[^\s/?#@:]+(?::\d{1,5})?"
)
_TRAILING = ".,;:!?)]}'\""


class UrlCredentialsRecognizer(Recognizer):
    """``scheme://user:password@host[:port]``: the part of a URL that gives access (the path is left)."""

    entity = "URL_WITH_CREDENTIALS"
    tag = "URL_CREDENTIALS"

    def find(self, text: str) -> Iterator[PiiFinding]:
        if "://" not in text:
            return
        for match in _URL_CREDENTIALS.finditer(text):
            end = match.start() + len(match.group().rstrip(_TRAILING))
            yield self._finding(text, match.start(), end)

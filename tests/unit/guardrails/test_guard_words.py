"""The keywords guardrail: whole words and phrases, deny-list and allow-list."""

from __future__ import annotations

import pytest

from llmops.guardrails.base import CheckContext, Finding, GuardrailError
from llmops.guardrails.redaction import redact_spans
from llmops.guardrails.words import KeywordGuardrail

CONTEXT = CheckContext("input")


def test_denied_word_is_found_whole_and_case_insensitively() -> None:
    guard = KeywordGuardrail({"deny": ["password", "credit card"]})
    text = "My PASSWORD and my Credit\n  Card, not passwords."
    verdict = guard.check(text, CONTEXT)
    assert verdict.triggered
    assert verdict.score == 1.0
    assert verdict.findings == (Finding("keyword", 3, 11), Finding("keyword", 19, 32))
    assert verdict.details == {"matched": ["password", "credit card"]}
    assert verdict.reason == "denied words: password, credit card"
    assert redact_spans(text, verdict.findings) == "My <keyword> and my <keyword>, not passwords."


def test_part_of_a_word_is_not_a_match() -> None:
    guard = KeywordGuardrail({"deny": ["art", "kill"]})
    assert not guard.check("Start the skilled work; killer app.", CONTEXT).triggered
    assert guard.check("It is art.", CONTEXT).findings == (Finding("keyword", 6, 9),)


def test_words_with_symbols_at_their_edges() -> None:
    guard = KeywordGuardrail({"deny": ["c++", ".env", "$HOME"]})
    verdict = guard.check("Show my .env file, in C++ (use $HOME).", CONTEXT)
    assert verdict.details == {"matched": [".env", "c++", "$HOME"]}
    assert not guard.check("see config.env and c++x", CONTEXT).triggered


def test_the_longest_phrase_wins() -> None:
    guard = KeywordGuardrail({"deny": ["credit card", "credit card number"]})
    verdict = guard.check("my credit card number is", CONTEXT)
    assert verdict.findings == (Finding("keyword", 3, 21),)
    assert verdict.details == {"matched": ["credit card number"]}


def test_case_sensitive() -> None:
    guard = KeywordGuardrail({"deny": ["ACME"], "case_sensitive": True})
    assert not guard.check("acme corp", CONTEXT).triggered
    assert guard.check("ACME corp", CONTEXT).triggered


def test_each_matched_word_listed_once() -> None:
    verdict = KeywordGuardrail({"deny": ["spam"]}).check("spam, Spam and SPAM", CONTEXT)
    assert len(verdict.findings) == 3
    assert verdict.details == {"matched": ["spam"]}


def test_allow_list_triggers_when_no_word_appears() -> None:
    guard = KeywordGuardrail({"allow": ["invoice", "refund", "order"]})
    off = guard.check("Write me a poem about the sea.", CONTEXT)
    assert off.triggered
    assert off.reason == "none of the required words appears"
    assert off.findings == ()
    on = guard.check("Where is my Refund?", CONTEXT)
    assert not on.triggered
    assert on.details == {"matched": ["refund"]}


def test_deny_wins_over_allow() -> None:
    guard = KeywordGuardrail({"deny": ["hack"], "allow": ["order"]})
    assert guard.check("hack my order", CONTEXT).details == {"matched": ["hack"]}
    assert not guard.check("cancel my order", CONTEXT).triggered
    assert guard.check("hello", CONTEXT).triggered


def test_regex_characters_in_words_are_literal() -> None:
    guard = KeywordGuardrail({"deny": ["a.b", "(x)"]})
    assert not guard.check("axb", CONTEXT).triggered
    assert guard.check("see (x) and a.b", CONTEXT).details == {"matched": ["(x)", "a.b"]}


def test_a_long_list_matches_like_a_short_one() -> None:
    words = [f"term{number}" for number in range(1000)] + ["term", "term1 two"]
    guard = KeywordGuardrail({"deny": words})
    verdict = guard.check("a term, term7, term999 and TERM1  two but not term1000 or terms", CONTEXT)
    assert verdict.details == {"matched": ["term", "term7", "term999", "term1 two"]}
    assert [(finding.start, finding.end) for finding in verdict.findings] == [
        (2, 6),
        (8, 13),
        (15, 22),
        (27, 37),
    ]


def test_letters_that_only_ignorecase_equates_still_name_their_word() -> None:
    verdict = KeywordGuardrail({"deny": ["kelvin"]}).check("\u212aelvin", CONTEXT)  # KELVIN SIGN
    assert verdict.details == {"matched": ["kelvin"]}


def test_any_text_is_checked_without_error() -> None:
    guard = KeywordGuardrail({"deny": ["x"], "allow": ["y"]})
    for text in ("", "\ud800", "x" * 100_000, "\x00y\x00"):
        guard.check(text, CONTEXT)


@pytest.mark.parametrize(
    ("params", "bad"),
    [
        ({}, "deny"),
        ({"deny": []}, "deny"),
        ({"deny": "password"}, "deny"),
        ({"deny": ["ok", ""]}, "deny"),
        ({"allow": ["ok", 3]}, "allow"),
        ({"deny": ["x"], "case_sensitive": "yes"}, "case_sensitive"),
        ({"deny": ["x"], "words": ["y"]}, "words"),
        ({"deny": ["x" * 201]}, "deny"),
    ],
)
def test_bad_params(params: dict[str, object], bad: str) -> None:
    with pytest.raises(GuardrailError) as raised:
        KeywordGuardrail(params)
    assert raised.value.param == bad

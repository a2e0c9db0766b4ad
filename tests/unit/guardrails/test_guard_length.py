"""The length guardrail: characters, words and cl100k tokens against the configured limits."""

from __future__ import annotations

import pytest

from llmops.guardrails.base import CheckContext, GuardrailError
from llmops.guardrails.length import LengthGuardrail

CONTEXT = CheckContext("input")


def test_too_many_characters_reads_with_thousands_separators() -> None:
    verdict = LengthGuardrail({"max_chars": 1000}).check("x" * 1234, CONTEXT)
    assert verdict.triggered
    assert verdict.score == 1.0
    assert verdict.reason == "1,234 characters > 1,000"
    assert verdict.details == {"characters": 1234}


def test_within_limits_passes_with_the_counts() -> None:
    guard = LengthGuardrail({"max_chars": 100, "min_chars": 2, "max_words": 5, "max_tokens": 10})
    verdict = guard.check("Hello there, world!", CONTEXT)
    assert not verdict.triggered
    assert verdict.details == {"characters": 19, "words": 3, "tokens": 5}


def test_too_short() -> None:
    verdict = LengthGuardrail({"min_chars": 20}).check("ok", CONTEXT)
    assert verdict.triggered
    assert verdict.reason == "2 characters < 20"


def test_words() -> None:
    verdict = LengthGuardrail({"max_words": 3}).check("one two\nthree  four", CONTEXT)
    assert verdict.reason == "4 words > 3"
    assert verdict.details == {"characters": 19, "words": 4}


def test_tokens_are_cl100k() -> None:
    guard = LengthGuardrail({"max_tokens": 5})
    verdict = guard.check("The quick brown fox jumps over the lazy dog.", CONTEXT)
    assert verdict.triggered
    assert verdict.reason == "10 tokens > 5"
    assert verdict.details["tokens"] == 10


def test_a_text_too_short_to_reach_max_tokens_is_not_tokenised() -> None:
    guard = LengthGuardrail({"max_tokens": 100})
    assert guard.check("short", CONTEXT).details == {"characters": 5}
    assert guard.check("é" * 25, CONTEXT).details == {"characters": 25}  # at most 4 bytes a character
    assert guard.check("é" * 26, CONTEXT).details["tokens"] == 26
    assert guard.check("x" * 100, CONTEXT).details == {"characters": 100}  # ASCII: a byte a character


def test_every_broken_limit_is_reported() -> None:
    guard = LengthGuardrail({"max_chars": 10, "max_words": 1, "max_tokens": 2})
    verdict = guard.check("twelve chars here", CONTEXT)
    assert verdict.reason == "17 characters > 10; 3 words > 1; 4 tokens > 2"


def test_special_token_text_and_lone_surrogates_are_counted_not_raised() -> None:
    guard = LengthGuardrail({"max_tokens": 1})
    assert guard.check("hi <|endoftext|> there", CONTEXT).details["tokens"] == 8
    assert guard.check("\ud800abc", CONTEXT).details["tokens"] >= 2


def test_zero_is_a_limit() -> None:
    assert LengthGuardrail({"max_chars": 0}).check("a", CONTEXT).triggered
    assert not LengthGuardrail({"max_chars": 0}).check("", CONTEXT).triggered


@pytest.mark.parametrize(
    ("params", "bad"),
    [
        ({}, "max_chars"),
        ({"max_chars": -1}, "max_chars"),
        ({"max_chars": 1.5}, "max_chars"),
        ({"max_words": "10"}, "max_words"),
        ({"max_tokens": True}, "max_tokens"),
        ({"min_chars": 10, "max_chars": 5}, "min_chars"),
        ({"max_characters": 10}, "max_characters"),
    ],
)
def test_bad_params(params: dict[str, object], bad: str) -> None:
    with pytest.raises(GuardrailError) as raised:
        LengthGuardrail(params)
    assert raised.value.param == bad

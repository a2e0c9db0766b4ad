"""The regex guardrail: the user's patterns as a deny-list (findings to redact) or as a requirement."""

from __future__ import annotations

import pytest

from llmops.guardrails.base import CheckContext, Finding, GuardrailError
from llmops.guardrails.redaction import redact_spans
from llmops.guardrails.regex import RegexGuardrail

CONTEXT = CheckContext("output")


def test_named_patterns_deny_and_name_their_findings() -> None:
    guard = RegexGuardrail({"patterns": {"ticket": r"\bTCK-\d{4}\b", "employee": r"\bE\d{6}\b"}})
    text = "See TCK-1234 and E123456, also TCK-9999."
    verdict = guard.check(text, CONTEXT)
    assert verdict.triggered
    assert verdict.findings == (
        Finding("ticket", 4, 12),
        Finding("employee", 17, 24),
        Finding("ticket", 31, 39),
    )
    assert verdict.details == {"matched": ["ticket", "employee"]}
    assert verdict.reason == "matched 2 patterns: ticket, employee"
    assert redact_spans(text, verdict.findings) == "See <ticket> and <employee>, also <ticket>."


def test_a_list_of_patterns_names_them_by_their_text() -> None:
    guard = RegexGuardrail({"patterns": [r"secret\w*", r"\d{3}-\d{2}-\d{4}"]})
    verdict = guard.check("my ssn 123-45-6789", CONTEXT)
    assert verdict.findings == (Finding("regex", 7, 18),)
    assert verdict.details == {"matched": [r"\d{3}-\d{2}-\d{4}"]}
    assert verdict.reason == r"matched 1 pattern: \d{3}-\d{2}-\d{4}"
    assert not guard.check("nothing to see", CONTEXT).triggered


def test_flags() -> None:
    assert not RegexGuardrail({"patterns": ["^drop table"]}).check("x\nDROP TABLE users", CONTEXT).triggered
    guard = RegexGuardrail({"patterns": ["^drop table"], "flags": "im"})
    assert guard.check("x\nDROP TABLE users", CONTEXT).findings == (Finding("regex", 2, 12),)
    dotall = RegexGuardrail({"patterns": ["begin.end"], "flags": "s"})
    assert dotall.check("begin\nend", CONTEXT).triggered


def test_require_mode_triggers_when_nothing_matches() -> None:
    guard = RegexGuardrail({"patterns": {"citation": r"\[\d+\]"}, "mode": "require"})
    missing = guard.check("An answer without sources.", CONTEXT)
    assert missing.triggered
    assert missing.reason == "no required pattern matches"
    assert missing.findings == ()
    cited = guard.check("Water boils at 100 °C [1].", CONTEXT)
    assert not cited.triggered
    assert cited.details == {"matched": ["citation"]}


def test_empty_matches_trigger_but_are_not_findings() -> None:
    verdict = RegexGuardrail({"patterns": ["x*"]}).check("abc", CONTEXT)
    assert verdict.triggered
    assert verdict.findings == ()


def test_only_the_first_max_chars_are_checked() -> None:
    guard = RegexGuardrail({"patterns": ["needle"], "max_chars": 10})
    assert guard.check("needle", CONTEXT).triggered
    late = guard.check("0123456789needle", CONTEXT)
    assert not late.triggered
    assert late.details == {"checked_chars": 10}


def test_any_text_is_checked_without_error() -> None:
    guard = RegexGuardrail({"patterns": [r"@\w+"]})
    for text in ("", "\ud800@x", "a" * 100_001, "\x00"):
        guard.check(text, CONTEXT)


@pytest.mark.parametrize(
    ("params", "bad", "says"),
    [
        ({}, "patterns", "needs 'patterns'"),
        ({"patterns": "abc"}, "patterns", "needs 'patterns'"),
        ({"patterns": []}, "patterns", "empty"),
        (
            {"patterns": ["ok", "(unclosed"]},
            "patterns",
            "pattern '(unclosed' is not a valid regular expression",
        ),
        ({"patterns": {"ids": "[z-a]"}}, "patterns", "pattern 'ids' is not a valid regular expression"),
        ({"patterns": ["a{99999999999}"]}, "patterns", "is not a valid regular expression"),
        ({"patterns": ["(" * 2000 + ")" * 2000]}, "patterns", "...' is not a valid regular expression"),
        ({"patterns": [""]}, "patterns", "non-empty string"),
        ({"patterns": {"x": 3}}, "patterns", "non-empty string"),
        ({"patterns": ["a"], "flags": "ix"}, "flags", "not 'x'"),
        ({"patterns": ["a"], "mode": "allow"}, "mode", "deny, require"),
        ({"patterns": ["a"], "max_chars": 0}, "max_chars", "at least 1"),
        ({"patterns": ["a"], "max_chars": True}, "max_chars", "must be a int"),
        ({"patterns": ["a"], "pattern": ["b"]}, "pattern", "no parameter 'pattern'"),
    ],
)
def test_bad_params(params: dict[str, object], bad: str, says: str) -> None:
    with pytest.raises(GuardrailError) as raised:
        RegexGuardrail(params)
    assert raised.value.param == bad
    assert says in raised.value.message
    assert "\n" not in raised.value.message
    assert len(raised.value.message) < 300

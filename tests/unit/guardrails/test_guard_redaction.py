"""redact_spans: the spans guardrails found, replaced; overlapping ones merged, touching ones kept apart."""

from __future__ import annotations

from llmops.guardrails.base import Finding
from llmops.guardrails.redaction import merge_findings, redact_spans


def test_each_span_is_replaced_by_its_kind() -> None:
    text = "mail bob@example.com or call +44 20 7946 0958 now"
    findings = [Finding("PHONE_NUMBER", 29, 45), Finding("EMAIL_ADDRESS", 5, 20)]
    assert redact_spans(text, findings) == "mail <EMAIL_ADDRESS> or call <PHONE_NUMBER> now"


def test_no_findings_leaves_the_text_alone() -> None:
    assert redact_spans("nothing here", []) == "nothing here"


def test_overlapping_spans_are_merged_under_the_first() -> None:
    text = "key sk-abc123def456 end"
    findings = [Finding("keyword", 4, 10), Finding("api_key", 4, 19), Finding("regex", 15, 23)]
    assert merge_findings(findings, len(text)) == [Finding("api_key", 4, 23)]
    assert redact_spans(text, findings) == "key <api_key>"


def test_a_span_inside_another_disappears_into_it() -> None:
    text = "user: alice@example.com"
    findings = [Finding("keyword", 6, 11), Finding("EMAIL_ADDRESS", 6, 23), Finding("regex", 12, 19)]
    assert redact_spans(text, findings) == "user: <EMAIL_ADDRESS>"


def test_touching_spans_stay_separate() -> None:
    assert redact_spans("abcdef", [Finding("A", 0, 3), Finding("B", 3, 6)]) == "<A><B>"


def test_custom_replacement() -> None:
    text = "card 4111 1111 1111 1111."
    masked = redact_spans(
        text, [Finding("CREDIT_CARD", 5, 24)], lambda finding: "*" * (finding.end - finding.start)
    )
    assert masked == "card *******************."


def test_spans_outside_the_text_are_clipped_or_dropped() -> None:
    findings = [Finding("A", -3, 2), Finding("B", 8, 50), Finding("C", 4, 4), Finding("D", 60, 70)]
    assert redact_spans("0123456789", findings) == "<A>234567<B>"

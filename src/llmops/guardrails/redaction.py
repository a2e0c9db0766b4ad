"""Replace the spans guardrails found, for the ``redact`` action of every guardrail that can redact.

Several guardrails may report the same piece of text (an e-mail address that is also a denied word),
or overlapping pieces; replacing each on its own would cut replacements into each other. So spans are
first merged: overlapping findings become one span, named after the one that starts first (the
longest of those, on a tie). Spans that only touch stay separate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from llmops.guardrails.base import Finding


def _tag(finding: Finding) -> str:
    return f"<{finding.kind}>"


def merge_findings(findings: Iterable[Finding], length: int) -> list[Finding]:
    """Non-overlapping findings in text order, clipped to ``0..length``; empty spans are dropped."""
    spans = sorted(
        (
            Finding(finding.kind, max(0, finding.start), min(length, finding.end))
            for finding in findings
            if min(length, finding.end) > max(0, finding.start)
        ),
        key=lambda finding: (finding.start, -finding.end),
    )
    merged: list[Finding] = []
    for span in spans:
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            merged[-1] = Finding(last.kind, last.start, max(last.end, span.end))
        else:
            merged.append(span)
    return merged


def redact_spans(text: str, findings: Iterable[Finding], replacement: Callable[[Finding], str] = _tag) -> str:
    """``text`` with each (merged) finding's span replaced by ``replacement(finding)``."""
    pieces: list[str] = []
    position = 0
    for finding in merge_findings(findings, len(text)):
        pieces.append(text[position : finding.start])
        pieces.append(replacement(finding))
        position = finding.end
    pieces.append(text[position:])
    return "".join(pieces)

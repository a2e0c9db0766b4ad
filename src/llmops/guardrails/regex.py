"""The ``regex`` guardrail: the user's own regular expressions, as a deny-list or as a requirement.

``mode: deny`` (default) triggers when any pattern matches, and its matches are findings the
``redact`` action can replace (named after the pattern when ``patterns`` is a mapping, else
``regex``). ``mode: require`` triggers when no pattern matches (an answer must cite a ticket id).

The user owns each pattern's complexity: Python's ``re`` backtracks, so a pattern like ``(a+)+$``
can take exponential time on a crafted text, and nothing can interrupt it; even ``\\w+@\\w+`` is
quadratic (20 s on one 100,000-letter word). Only the first ``max_chars`` characters (default
100,000) are checked, which bounds linear patterns' cost but not the others': keep patterns simple,
starting with a literal, without nested or adjacent unbounded quantifiers, and lower ``max_chars``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from llmops.guardrails.base import (
    PASS,
    CheckContext,
    Finding,
    Guardrail,
    GuardrailError,
    Verdict,
    param,
    unknown_params,
)

_KNOWN = ("patterns", "flags", "mode", "max_chars")
_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}
_MODES = ("deny", "require")
_FINDING_KIND = "regex"


class RegexGuardrail(Guardrail):
    """Patterns compiled once at build time; see the module docstring for the modes and the limits."""

    kind = "regex"
    can_redact = True

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        unknown_params(params, _KNOWN, self.kind)
        flags = _flags(param(params, "flags", str, ""))
        self.mode: str = param(params, "mode", str, "deny")
        if self.mode not in _MODES:
            raise GuardrailError(
                f"guardrail parameter 'mode' must be one of {', '.join(_MODES)}, not {self.mode!r}",
                param="mode",
            )
        self.max_chars: int = param(params, "max_chars", int, 100_000)
        if self.max_chars < 1:
            raise GuardrailError(
                f"guardrail parameter 'max_chars' must be at least 1, not {self.max_chars}", param="max_chars"
            )
        self._patterns = _compiled(params.get("patterns"), flags)

    def check(self, text: str, context: CheckContext) -> Verdict:
        checked = text[: self.max_chars]
        verdict = self._deny(checked) if self.mode == "deny" else self._require(checked)
        if len(text) > self.max_chars:
            return replace(verdict, details={**verdict.details, "checked_chars": self.max_chars})
        return verdict

    def _deny(self, text: str) -> Verdict:
        findings: list[Finding] = []
        matched: list[str] = []
        for name, kind, pattern in self._patterns:
            if pattern.search(text) is None:  # the common case, without building a list
                continue
            spans = [match.span() for match in pattern.finditer(text)]
            if spans:
                matched.append(name)
                findings.extend(Finding(kind, start, end) for start, end in spans if end > start)
        if not matched:
            return PASS
        findings.sort(key=lambda finding: finding.start)
        reason = f"matched {len(matched)} pattern{'s' if len(matched) > 1 else ''}: {', '.join(matched)}"
        return Verdict(True, 1.0, reason, tuple(findings), {"matched": matched})

    def _require(self, text: str) -> Verdict:
        for name, _, pattern in self._patterns:
            if pattern.search(text) is not None:
                return Verdict(False, details={"matched": [name]})
        return Verdict(True, 1.0, "no required pattern matches", details={"matched": []})


def _flags(letters: str) -> int:
    flags = 0
    for letter in letters:
        if letter not in _FLAGS:
            raise GuardrailError(
                f"guardrail parameter 'flags' takes the letters i, m and s, not {letter!r}", param="flags"
            )
        flags |= _FLAGS[letter]
    return flags


def _compiled(patterns: Any, flags: int) -> list[tuple[str, str, re.Pattern[str]]]:
    """(name, finding kind, compiled pattern) for a list of patterns or a mapping name -> pattern."""
    if isinstance(patterns, list):
        named = [(pattern, _FINDING_KIND, pattern) for pattern in patterns]
    elif isinstance(patterns, Mapping):
        named = [(str(name), str(name), pattern) for name, pattern in patterns.items()]
    else:
        raise GuardrailError(
            "guardrail 'regex' needs 'patterns': a list of regular expressions or a mapping name -> pattern",
            param="patterns",
        )
    if not named:
        raise GuardrailError("guardrail parameter 'patterns' is empty", param="patterns")
    compiled = []
    for name, kind, pattern in named:
        if not isinstance(pattern, str) or not pattern:
            raise GuardrailError(
                f"guardrail 'regex': pattern {_shown(name)} must be a non-empty string, not {pattern!r}",
                param="patterns",
            )
        try:
            compiled.append((name, kind, re.compile(pattern, flags)))
        except (re.error, OverflowError, RecursionError) as exc:
            raise GuardrailError(
                f"guardrail 'regex': pattern {_shown(name)} is not a valid regular expression: {exc}",
                param="patterns",
            ) from exc
    return compiled


def _shown(name: str, limit: int = 60) -> str:
    """A pattern's name for an error message: quoted, and cut when long."""
    return repr(name if len(name) <= limit else f"{name[:limit]}...")

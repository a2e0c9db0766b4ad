"""The ``keywords`` guardrail: words or phrases a text must not contain, or of which it must contain one.

``deny`` triggers when any of its words appears; ``allow`` is a list of required words (the topics
an assistant is for) and triggers when none of them appears. Words match whole: ``art`` is not found
in ``start``; a phrase matches across any run of whitespace (``credit card`` in ``credit\\ncard``).
The boundary test is "no letter, digit or underscore next to it", so words that begin or end with a
symbol (``c++``, ``.env``) work too. Each list is one regular expression shaped like a trie,
compiled once: 10 words or 1,000 cost about the same, 10-20 µs over 200 characters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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

_KNOWN = ("deny", "allow", "case_sensitive")
_MAX_WORD_CHARS = 200
_END = ""  # the trie's mark that a word ends at this node


class KeywordGuardrail(Guardrail):
    """Deny-list and/or allow-list of words; the denied words found are its findings (kind ``keyword``)."""

    kind = "keywords"
    can_redact = True

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        unknown_params(params, _KNOWN, self.kind)
        deny, allow = _words(params, "deny"), _words(params, "allow")
        if not deny and not allow:
            raise GuardrailError(
                "guardrail 'keywords' needs 'deny' or 'allow' (a list of words), or both", param="deny"
            )
        case_sensitive = param(params, "case_sensitive", bool, False)
        self._deny = _WordSet(deny, case_sensitive) if deny else None
        self._allow = _WordSet(allow, case_sensitive) if allow else None

    def check(self, text: str, context: CheckContext) -> Verdict:
        findings: list[Finding] = []
        matched: dict[str, None] = {}
        if self._deny is not None:
            for match in self._deny.pattern.finditer(text):
                findings.append(Finding("keyword", match.start(), match.end()))
                matched[self._deny.word(match.group())] = None
        if findings:
            words = list(matched)
            return Verdict(
                True, 1.0, f"denied words: {', '.join(words)}", tuple(findings), {"matched": words}
            )
        if self._allow is not None:
            found = self._allow.pattern.search(text)
            if found is None:
                return Verdict(True, 1.0, "none of the required words appears", details={"matched": []})
            return Verdict(False, details={"matched": [self._allow.word(found.group())]})
        return PASS


class _WordSet:
    """Words compiled into one pattern shaped like a trie, and the way back from a match to its word.

    An alternation of hundreds of words is tried word by word at every word start (0.7 ms for 200
    words over 200 characters); a trie matches shared beginnings once and tries one branch per
    character, so the cost hardly grows with the list. A longer word wins over its own beginning
    (``credit card number`` over ``credit card``).
    """

    def __init__(self, words: list[str], case_sensitive: bool) -> None:
        self._case_sensitive = case_sensitive
        self._by_key: dict[str, str] = {}
        for word in words:
            self._by_key.setdefault(self._key(word), word)
        flags = 0 if case_sensitive else re.IGNORECASE
        self.pattern = re.compile(rf"(?<!\w){_trie_pattern(list(self._by_key))}(?!\w)", flags)
        self._flags = flags

    def _key(self, text: str) -> str:
        key = " ".join(text.split())
        return key if self._case_sensitive else key.lower()

    def word(self, matched: str) -> str:
        """The configured word ``matched`` (a match of :attr:`pattern`) is an occurrence of."""
        word = self._by_key.get(self._key(matched))
        if word is not None:
            return word
        # re.IGNORECASE also equates letters whose lower() differ (the Kelvin sign and k)
        return next(
            (
                word
                for key, word in self._by_key.items()
                if re.fullmatch(_trie_pattern([key]), matched, self._flags)
            ),
            matched,
        )


def _words(params: Mapping[str, Any], name: str) -> list[str]:
    words = param(params, name, list, [])
    if not all(isinstance(word, str) and word.strip() for word in words):
        raise GuardrailError(
            f"guardrail parameter {name!r} must be a list of non-empty words or phrases, not {words!r}",
            param=name,
        )
    too_long = next((word for word in words if len(word) > _MAX_WORD_CHARS), None)
    if too_long is not None:
        raise GuardrailError(
            f"guardrail parameter {name!r}: {too_long[:40]!r}... is longer than {_MAX_WORD_CHARS} characters",
            param=name,
        )
    return list(dict.fromkeys(word.strip() for word in words))


def _trie_pattern(keys: list[str]) -> str:
    """A pattern matching exactly ``keys`` (spaces match any run of whitespace), longest first."""
    trie: dict[str, Any] = {}
    for key in keys:
        node = trie
        for char in key:
            node = node.setdefault(char, {})
        node[_END] = {}
    return _node_pattern(trie)


def _node_pattern(node: dict[str, Any]) -> str:
    branches = [
        (r"\s+" if char == " " else re.escape(char)) + _node_pattern(child)
        for char, child in node.items()
        if char != _END
    ]
    if not branches:
        return ""
    if _END in node:
        return f"(?:{'|'.join(branches)})?"
    return branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"

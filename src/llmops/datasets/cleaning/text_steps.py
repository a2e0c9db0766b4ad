"""Steps that rewrite text in place: Unicode normalisation, whitespace, HTML stripping, lower-casing.

Each step maps every string of its ``fields`` (a ``messages`` field through each message's content)
and records a row as changed only when some text actually differs. An unchanged row is passed on as
the same object; a changed row is a copy, so the caller's rows are never mutated.
"""

from __future__ import annotations

import html
import re
import unicodedata
from abc import abstractmethod
from collections import Counter
from html.parser import HTMLParser
from typing import Literal

from llmops.datasets.cleaning.base import CleaningStep, StepParams, StepReport
from llmops.datasets.rows import Row, field_texts, map_texts


class _TextStep(CleaningStep):
    """A step defined by one text transform; :meth:`rewrite` returns the new text and what was done."""

    def apply(self, position: int, row: Row, report: StepReport) -> Row | None:
        rewritten: dict[str, str] = {}
        notes: Counter[str] = Counter()
        for path in self.params.fields:
            for text in field_texts(row, path):
                if text in rewritten:
                    continue
                new_text, note = self.rewrite(text)
                if new_text != text:
                    rewritten[text] = new_text
                    notes.update(note)
        if not rewritten:
            return row
        after = map_texts(row, self.params.fields, lambda text: rewritten.get(text, text))
        reason, group = self.describe(notes)
        report.record_changed(position, reason, row, after, group=group)
        return after

    @abstractmethod
    def rewrite(self, text: str) -> tuple[str, Counter[str]]:
        """The transformed text and counts of what was done (summed over a row's texts for its reason)."""

    @abstractmethod
    def describe(self, notes: Counter[str]) -> tuple[str, str]:
        """The reason for one changed row and the group it is counted under in the report."""


class NormalizeParams(StepParams):
    form: Literal["NFC", "NFKC", "NFD", "NFKD"] = "NFKC"


class NormalizeUnicode(_TextStep):
    """Unicode normalisation: NFKC (the default) folds compatibility forms such as full-width letters,
    ligatures and non-breaking spaces, so equal-looking texts compare equal in later steps."""

    name = "normalize_unicode"
    Params = NormalizeParams
    params: NormalizeParams

    def rewrite(self, text: str) -> tuple[str, Counter[str]]:
        if unicodedata.is_normalized(self.params.form, text):
            return text, Counter()
        return unicodedata.normalize(self.params.form, text), Counter()

    def describe(self, notes: Counter[str]) -> tuple[str, str]:
        reason = f"normalised to {self.params.form}"
        return reason, reason


class WhitespaceParams(StepParams):
    keep_newlines: bool = True


_NEWLINES = re.compile("\r\n|[\r\v\f\x85\u2028\u2029]")
_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b\u2060\ufeff\u180e]")
"""Control characters (Unicode category Cc is exactly U+0000-001F and U+007F-009F) except tab and
newline, and the zero-width space, word joiner, byte-order mark and Mongolian vowel separator. The
zero-width (non-)joiners U+200C/U+200D are kept: they carry meaning in emoji sequences and in Persian
and Indic scripts."""
_SPACE_RUN = re.compile(r"[^\S\n]{2,}|[^\S\n\t ]")
"""Two or more spaces or tabs, or one other space character (no-break, em space...); a lone tab stays."""
_SPACE_AROUND_NEWLINE = re.compile(r" ?\n ?")
_BLANK_LINES = re.compile(r"\n{3,}")
_ANY_WHITESPACE = re.compile(r"\s+")


class CleanWhitespace(_TextStep):
    """Whitespace and invisible characters: control and zero-width characters removed (tab and newline
    excepted), newlines unified to ``\\n``, runs of spaces and tabs collapsed to one space (a lone tab is
    kept), the whole text trimmed, a space before or after a newline removed, more than one blank line
    collapsed to one. Indentation is not preserved: this step is for prose, not code. With
    ``keep_newlines: false`` every whitespace run, newlines included, becomes one space."""

    name = "clean_whitespace"
    Params = WhitespaceParams
    params: WhitespaceParams

    def rewrite(self, text: str) -> tuple[str, Counter[str]]:
        notes: Counter[str] = Counter()
        text = _NEWLINES.sub("\n", text)
        text, notes["invisible"] = _INVISIBLE.subn("", text)
        if self.params.keep_newlines:
            spaced = _SPACE_RUN.sub(" ", text)
            spaced = _BLANK_LINES.sub("\n\n", _SPACE_AROUND_NEWLINE.sub("\n", spaced)).strip()
        else:
            spaced = _ANY_WHITESPACE.sub(" ", text).strip()
        if spaced != text:
            notes["whitespace"] += 1
        return spaced, notes

    def describe(self, notes: Counter[str]) -> tuple[str, str]:
        removed = notes["invisible"]
        if not removed:
            return "collapsed whitespace", "collapsed whitespace"
        noun = "character" if removed == 1 else "characters"
        reason = f"removed {removed} control or zero-width {noun}"
        if notes["whitespace"]:
            reason += ", collapsed whitespace"
        return reason, "removed control or zero-width characters"


_KNOWN_TAGS = (
    "a|abbr|address|area|article|aside|audio|b|base|bdi|bdo|blockquote|body|br|button|canvas|caption|cite|"
    "code|col|colgroup|data|dd|del|details|dfn|dialog|div|dl|dt|em|embed|fieldset|figcaption|figure|font|"
    "footer|form|h[1-6]|head|header|hr|html|i|iframe|img|input|ins|kbd|label|legend|li|link|main|map|mark|"
    "meta|nav|noscript|object|ol|optgroup|option|output|p|param|picture|pre|q|s|samp|script|section|select|"
    "small|source|span|strong|style|sub|summary|sup|svg|table|tbody|td|template|textarea|tfoot|th|thead|"
    "time|title|tr|track|u|ul|var|video|wbr"
)
_TAGS = re.compile(rf"</?(?:{_KNOWN_TAGS})\b[^<>]*>|<!--|<!doctype", re.I)
_ENTITY = re.compile(r"&(?:#\d+|#x[0-9a-f]+|[a-z]+\d*);", re.I)
_BLOCK_TAGS = frozenset(
    "address article aside blockquote br dd details div dl dt fieldset figcaption figure footer form h1 h2 "
    "h3 h4 h5 h6 header hr li main nav ol p pre section summary table tbody td tfoot th thead tr ul".split()
)
_HIDDEN_TAGS = frozenset({"script", "style", "template", "noscript", "head", "title"})
_KNOWN_TAG_NAME = re.compile(rf"(?:{_KNOWN_TAGS})", re.I)


class _TextExtractor(HTMLParser):
    """Collects the visible text: block elements become line breaks, hidden elements are skipped,
    entities are unescaped, and a ``<word>`` that is not an HTML element is kept as written."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not _KNOWN_TAG_NAME.fullmatch(tag):
            self._visible(self.get_starttag_text() or "")
        elif tag in _HIDDEN_TAGS:
            self.hidden_depth += 1
        elif tag in _BLOCK_TAGS:
            self._visible("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not _KNOWN_TAG_NAME.fullmatch(tag):
            self._visible(self.get_starttag_text() or "")
        elif tag in _BLOCK_TAGS:
            self._visible("\n")

    def handle_endtag(self, tag: str) -> None:
        if not _KNOWN_TAG_NAME.fullmatch(tag):
            self._visible(f"</{tag}>")
        elif tag in _HIDDEN_TAGS:
            self.hidden_depth = max(0, self.hidden_depth - 1)
        elif tag in _BLOCK_TAGS:
            self._visible("\n")

    def handle_data(self, data: str) -> None:
        self._visible(data)

    def _visible(self, text: str) -> None:
        if not self.hidden_depth:
            self.parts.append(text)

    def text(self) -> str:
        joined = "".join(self.parts)
        return _BLANK_LINES.sub("\n\n", _SPACE_AROUND_NEWLINE.sub("\n", joined)).strip()


class StripHtml(_TextStep):
    """HTML to plain text with the standard library's parser; text without markup is left untouched
    (a known tag, a comment, a doctype or an entity counts as markup; ``a < b`` does not)."""

    name = "strip_html"

    def rewrite(self, text: str) -> tuple[str, Counter[str]]:
        if not _TAGS.search(text):
            if not _ENTITY.search(text):
                return text, Counter()
            return html.unescape(text), Counter({"entities": 1})
        extractor = _TextExtractor()
        extractor.feed(text)
        extractor.close()
        return extractor.text(), Counter({"tags": 1})

    def describe(self, notes: Counter[str]) -> tuple[str, str]:
        reason = "stripped HTML tags" if notes["tags"] else "unescaped HTML entities"
        return reason, reason


class Lowercase(_TextStep):
    """Lower-casing (``str.lower``), for data whose use ignores case; usually left out."""

    name = "lowercase"

    def rewrite(self, text: str) -> tuple[str, Counter[str]]:
        return text.lower(), Counter()

    def describe(self, notes: Counter[str]) -> tuple[str, str]:
        return "lower-cased", "lower-cased"

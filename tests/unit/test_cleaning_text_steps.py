"""Text-rewriting cleaning steps: what they change, what they leave alone, and what their reports say."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from llmops.datasets.cleaning.base import CleaningError, StepContext, StepRegistry, StepReport


def run_step(
    name: str, rows: list[dict[str, Any]], params: dict[str, Any] | None = None
) -> tuple[list, StepReport]:
    step = StepRegistry(load_plugins=False).create(name, params, StepContext())
    report = StepReport(step=name, params=params or {})
    return [step.apply(position, row, report) for position, row in enumerate(rows)], report


def test_normalize_unicode_nfkc_folds_compatibility_forms_in_every_text_field() -> None:
    rows = [
        {"input": "ｆｕｌｌ ﬁle", "messages": [{"role": "user", "content": "Ⅸ"}], "metadata": {"note": "ｆ"}},
        {"input": "plain"},
    ]
    original = copy.deepcopy(rows)
    out, report = run_step("normalize_unicode", rows)
    assert out[0]["input"] == "full file"
    assert out[0]["messages"][0]["content"] == "IX"
    assert out[0]["metadata"] == {"note": "ｆ"}  # not a text field
    assert out[1] is rows[1]  # unchanged rows pass through as they are
    assert rows == original
    assert report.changed == 1
    assert report.reasons == {"normalised to NFKC": 1}
    assert report.examples[0]["before"]["input"] == "ｆｕｌｌ ﬁle"


@pytest.mark.parametrize(("form", "expected"), [("NFC", "é"), ("NFD", "e\u0301"), ("NFKC", "é")])
def test_normalize_unicode_forms(form: str, expected: str) -> None:
    source = "e\u0301" if form != "NFD" else "é"
    out, report = run_step("normalize_unicode", [{"input": source}], {"form": form})
    assert out[0]["input"] == expected
    assert report.reasons == {f"normalised to {form}": 1}


def test_normalize_unicode_refuses_an_unknown_form() -> None:
    with pytest.raises(CleaningError, match="form"):
        run_step("normalize_unicode", [], {"form": "NFX"})


def test_clean_whitespace_collapses_trims_and_unifies_newlines() -> None:
    text = "  Hello \t\t world  \r\nsecond\u00a0\u00a0line\r\r\r\rthird  "
    out, report = run_step("clean_whitespace", [{"input": text}])
    assert out[0]["input"] == "Hello world\nsecond line\n\nthird"
    assert report.reasons == {"collapsed whitespace": 1}


def test_clean_whitespace_removes_control_and_zero_width_characters_keeping_joiners() -> None:
    text = "a\x00b\x07c\u200bd\ufeffe\tf\u200dg  h"
    out, report = run_step("clean_whitespace", [{"input": text}, {"expected": "x\x1b"}])
    assert out[0]["input"] == "abcde\tf\u200dg h"
    assert out[1]["expected"] == "x"
    assert report.examples[0]["reason"] == "removed 4 control or zero-width characters, collapsed whitespace"
    assert report.examples[1]["reason"] == "removed 1 control or zero-width character"
    assert report.reasons == {"removed control or zero-width characters": 2}


def test_clean_whitespace_without_newlines_and_unchanged_text() -> None:
    out, report = run_step(
        "clean_whitespace", [{"input": " a \n\n b "}, {"input": "a\nb"}], {"keep_newlines": False}
    )
    assert out[0]["input"] == "a b"
    assert out[1]["input"] == "a b"
    out, report = run_step("clean_whitespace", [{"input": "a\n\nb\tc"}])
    assert report.changed == 0
    assert out[0]["input"] == "a\n\nb\tc"


def test_clean_whitespace_touches_only_the_given_fields() -> None:
    out, _ = run_step("clean_whitespace", [{"input": " a ", "expected": " b "}], {"fields": "expected"})
    assert out[0] == {"input": " a ", "expected": "b"}


def test_strip_html_drops_tags_and_hidden_content_and_unescapes_entities() -> None:
    html = "<html><head><title>T</title><style>p {color: red}</style></head><body><p>Hello <b>world</b></p>"
    html += "<script>if (a < b) alert(1)</script><ul><li>one &amp; two</li><li>three</li></ul></body></html>"
    out, report = run_step("strip_html", [{"input": html}])
    assert out[0]["input"] == "Hello world\n\none & two\n\nthree"
    assert report.reasons == {"stripped HTML tags": 1}


@pytest.mark.parametrize(
    "text", ["if a < b and c > d then", "generic List<T> in Java", "AT&T and R&D", "x <not a tag> y", ""]
)
def test_strip_html_leaves_text_without_markup_untouched(text: str) -> None:
    out, report = run_step("strip_html", [{"input": text}])
    assert out[0]["input"] == text
    assert report.changed == 0


def test_strip_html_entities_only_and_unknown_tags_kept() -> None:
    out, report = run_step(
        "strip_html", [{"input": "Tom &amp; Jerry&#39;s"}, {"input": "use <T> here<br>now"}]
    )
    assert out[0]["input"] == "Tom & Jerry's"
    assert out[1]["input"] == "use <T> here\nnow"
    assert report.reasons == {"unescaped HTML entities": 1, "stripped HTML tags": 1}


def test_lowercase_messages_content_parts() -> None:
    row = {"messages": [{"role": "user", "content": [{"type": "text", "text": "HeLLo"}]}], "input": "lower"}
    out, report = run_step("lowercase", [row])
    assert out[0]["messages"][0]["content"][0]["text"] == "hello"
    assert row["messages"][0]["content"][0]["text"] == "HeLLo"
    assert report.changed == 1
    assert report.reasons == {"lower-cased": 1}


def test_text_steps_refuse_unknown_parameters() -> None:
    with pytest.raises(CleaningError, match="keep_newline"):
        run_step("clean_whitespace", [], {"keep_newline": False})

"""render_template's fast paths (the gateway renders on every prompt request) give Jinja's own output.

Text without a tag or a carriage return is returned as it is; other templates are rendered from
one flat context through Jinja's low-level API. Both are compared with ``Template.render`` of the
same sandbox, for sources that exercise what could differ: newlines, globals, loops, filters,
variables that shadow a global, undefined values and errors.
"""

from __future__ import annotations

from typing import Any

import pytest

from llmops.prompts.templates import (
    _BUDGET,
    MAX_LOOP_STEPS,
    MAX_OUTPUT_CHARS,
    RenderError,
    _Budget,
    environment,
    render_template,
)

CASES: list[tuple[str, dict[str, Any]]] = [
    ("plain text", {}),
    ("plain text with a trailing newline\n", {}),
    ("\n\nleading newlines and } braces }} and %} closers #}\n", {}),
    ("windows\r\nline\rends\r\n", {}),
    ("", {}),
    ("Hello {{ name }}!\n", {"name": "Ann"}),
    ("{{ missing_is_none }}.", {"missing_is_none": None}),
    ("{% for i in range(3) %}{{ i }},{% endfor %}", {}),
    ("{% for item in items %}- {{ item | upper }}\n{% endfor %}", {"items": ["a", "b"]}),
    ("{{ range }}", {"range": "a variable named like a global"}),
    ("{{ dict(a=1) }} {{ namespace(x=1).x }} {{ 'x' * 3 }}", {}),
    ("{% if flag %}yes{% else %}no{% endif %}\r\n{# comment #}end", {"flag": True}),
    (
        "{{ '%s-%d' | format('a', 2) }} {{ values | sum }} {{ text | truncate(9) }}",
        {"values": [1, 2], "text": "a" * 20},
    ),
]


@pytest.mark.parametrize(("source", "values"), CASES)
def test_the_same_text_as_jinja(source: str, values: dict[str, Any]) -> None:
    expected = environment().from_string(source).render({**values, _BUDGET: _Budget(MAX_LOOP_STEPS)})
    assert render_template(source, values) == expected


def test_errors_are_render_errors_on_both_paths() -> None:
    with pytest.raises(RenderError, match="'nothing' is undefined"):
        render_template("{{ nothing }}", {})
    with pytest.raises(RenderError, match="loops more than"):
        render_template("{% for i in range(10**6) %}{% endfor %}", {})
    with pytest.raises(RenderError, match="renders to more than"):
        render_template("x" * (MAX_OUTPUT_CHARS + 1), {})
    with pytest.raises(RenderError, match="renders to more than"):
        render_template("{{ text }}{{ text }}", {"text": "y" * (MAX_OUTPUT_CHARS // 2 + 1)})


def test_the_budget_is_per_render() -> None:
    source = "{% for i in range(60000) %}{% endfor %}ok"
    assert render_template(source, {}) == "ok"
    assert render_template(source, {}) == "ok"  # a new budget each time

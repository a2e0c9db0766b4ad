"""Prompt templates: sandboxed Jinja2, declared variables, bounded output, one-line errors."""

from __future__ import annotations

import pytest

from llmops.prompts.spec import MessageTemplate, PromptContent, PromptFile, VariableSpec
from llmops.prompts.templates import (
    MAX_OUTPUT_CHARS,
    RenderError,
    bind_variables,
    check_content,
    check_template,
    render,
    render_template,
)


def _chat(*messages: tuple[str, str], **variables: VariableSpec) -> PromptContent:
    return PromptContent(
        kind="chat",
        messages=tuple(MessageTemplate(role=role, content=content) for role, content in messages),  # type: ignore[arg-type]
        variables=variables,
    )


def test_renders_loops_and_conditionals_for_few_shot_examples() -> None:
    content = _chat(
        (
            "system",
            "You answer for {{ product }}.{% for e in examples %}\nQ: {{ e.q }}\nA: {{ e.a }}{% endfor %}",
        ),
        ("user", "{% if formal %}Dear support, {% endif %}{{ question }}"),
        product=VariableSpec(required=True),
        examples=VariableSpec(type="list", default=[]),
        formal=VariableSpec(type="boolean", default=False),
        question=VariableSpec(required=True),
    )
    check_content(content)
    rendered = render(content, {"product": "Acme", "question": "why?", "examples": [{"q": "a?", "a": "b."}]})
    assert rendered.messages == [
        {"role": "system", "content": "You answer for Acme.\nQ: a?\nA: b."},
        {"role": "user", "content": "why?"},
    ]
    assert render(content, {"product": "A", "question": "q", "formal": True}).messages[1]["content"] == (  # type: ignore[index]
        "Dear support, q"
    )


def test_text_prompt_renders_to_one_user_message() -> None:
    content = PromptContent(kind="text", template="Summarise: {{ text }}", variables={"text": VariableSpec()})
    rendered = render(content, {"text": "hello"})
    assert rendered.text == "Summarise: hello"
    assert rendered.as_messages() == [{"role": "user", "content": "Summarise: hello"}]


def test_optional_variables_without_default_render_empty() -> None:
    content = PromptContent(kind="text", template="[{{ note }}]", variables={"note": VariableSpec()})
    assert render(content, {}).text == "[]"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "missing required variable 'question'"),
        ({"question": "q", "colour": "red"}, "variable 'colour' is not declared"),
        ({"question": 5}, "variable 'question' must be of type string, got int"),
    ],
)
def test_variable_errors_name_the_variable(given: dict[str, object], message: str) -> None:
    with pytest.raises(RenderError, match=message):
        bind_variables({"question": VariableSpec(required=True)}, given)


def test_type_checks() -> None:
    declared = {
        "n": VariableSpec(type="integer", default=1),
        "x": VariableSpec(type="number", default=1.5),
        "flag": VariableSpec(type="boolean", default=False),
        "items": VariableSpec(type="list", default=[]),
        "anything": VariableSpec(type="any"),
    }
    assert (
        bind_variables(declared, {"n": 3, "x": 2, "flag": True, "items": [1], "anything": {"a": 1}})["x"] == 2
    )
    with pytest.raises(RenderError, match="integer"):
        bind_variables(declared, {"n": True})
    with pytest.raises(RenderError, match="number"):
        bind_variables(declared, {"x": "2"})


def test_broken_templates_name_the_line() -> None:
    with pytest.raises(RenderError, match="template line 2: "):
        check_template("fine\n{% if %}", {})
    with pytest.raises(RenderError, match=r"messages\[1\] line 1"):
        check_content(_chat(("system", "ok"), ("user", "{{ unclosed")))


def test_undeclared_variables_in_a_template_are_refused_when_stored() -> None:
    with pytest.raises(RenderError, match="undeclared variable 'tone'"):
        check_template("Be {{ tone }}.", {})
    check_template(
        "{% for e in examples %}{{ e }}{% endfor %}{% set x = 1 %}{{ x }}", {"examples": VariableSpec()}
    )


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ x.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ lipsum.__globals__ }}",
    ],
)
def test_python_internals_are_out_of_reach(source: str) -> None:
    with pytest.raises(RenderError):
        render_template(source, {"x": 1})


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{% for i in range(10**6) %}{% endfor %}", "loops more than"),
        ("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}", "loops more than"),
        ("{{ 'a' * 10**9 }}", "over"),
        ("{{ 7 ** 100000 }}", "power"),
        ("{% for i in range(90000) %}0123456789{% endfor %}", f"more than {MAX_OUTPUT_CHARS} characters"),
    ],
)
def test_work_and_output_are_bounded(source: str, message: str) -> None:
    with pytest.raises(RenderError, match=message):
        render_template(source, {})


def test_prompt_content_shape_and_hash() -> None:
    first = PromptFile.model_validate(
        {
            "name": "a",
            "kind": "chat",
            "messages": [{"role": "user", "content": "{{ q }}"}],
            "variables": {"q": None},
        }
    ).content()
    again = PromptFile.model_validate(
        {
            "variables": {"q": {}},
            "messages": [{"content": "{{ q }}", "role": "user"}],
            "kind": "chat",
            "name": "a",
            "labels": ["staging"],
            "message": "different words, same content",
        }
    ).content()
    assert first.content_hash() == again.content_hash()
    changed = first.model_copy(update={"parameters": {"temperature": 0.1}})
    assert changed.content_hash() != first.content_hash()
    with pytest.raises(ValueError, match="text prompt has a template"):
        PromptContent(kind="text", messages=(MessageTemplate(role="user", content="x"),))
    with pytest.raises(ValueError, match="cannot set 'messages'"):
        PromptContent(kind="text", template="x", parameters={"messages": []})
    with pytest.raises(ValueError, match="not an identifier"):
        PromptContent(kind="text", template="x", variables={"not ok": VariableSpec()})
    with pytest.raises(ValueError, match="required variable has no default"):
        VariableSpec(required=True, default="x")

"""The json guardrail: an answer that is JSON (fenced or not), conforming to a JSON Schema when given."""

from __future__ import annotations

import json
import sys

import pytest

from llmops.guardrails.base import CheckContext, GuardrailError, GuardrailUnavailable, Verdict
from llmops.guardrails.json_format import JsonGuardrail

CONTEXT = CheckContext("output")
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}


def test_answers_only() -> None:
    assert JsonGuardrail.stages == ("output",)


@pytest.mark.parametrize("answer", ['{"a": 1}', "[1, 2]", '"text"', "3", "null", '  {"a": [true, false]}\n'])
def test_any_json_value_passes_without_a_schema(answer: str) -> None:
    verdict = JsonGuardrail({}).check(answer, CONTEXT)
    assert verdict == Verdict(False)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (
            '{"a": 1,}',
            "not valid JSON: Expecting property name enclosed in double quotes at line 1, column 9",
        ),
        ('Sure! {"a": 1}', "not valid JSON: Expecting value at line 1, column 1"),
        ('{"a": 1}\n{"b": 2}', "not valid JSON: Extra data at line 2, column 1"),
        ('{"a": NaN}', "not valid JSON: NaN is not allowed"),
        ("[Infinity]", "not valid JSON: Infinity is not allowed"),
        ("", "the answer is empty, not JSON"),
        ("```json\n```", "the answer is empty, not JSON"),
        ("[" * 100_000, "not valid JSON: nested too deeply to read"),
    ],
)
def test_invalid_json(answer: str, error: str) -> None:
    verdict = JsonGuardrail({}).check(answer, CONTEXT)
    assert verdict.triggered
    assert verdict.score == 1.0
    assert verdict.reason == error
    assert verdict.details == {"error": error}


@pytest.mark.parametrize(
    "answer",
    [
        '```json\n{"a": 1}\n```',
        '```\n{"a": 1}\n```',
        '\n ```JSON\n  {"a": 1}\n```  \n',
        '```json\n{"a": 1}```',
    ],
)
def test_a_fenced_block_is_tolerated(answer: str) -> None:
    assert not JsonGuardrail({}).check(answer, CONTEXT).triggered
    assert JsonGuardrail({"allow_fences": False}).check(answer, CONTEXT).triggered


def test_prose_around_a_fenced_block_is_not_json() -> None:
    verdict = JsonGuardrail({}).check('Here you go:\n```json\n{"a": 1}\n```', CONTEXT)
    assert verdict.triggered


def test_a_conforming_answer_passes() -> None:
    guard = JsonGuardrail({"schema": PERSON})
    assert not guard.check('{"name": "Ada", "age": 36, "tags": ["math"]}', CONTEXT).triggered


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ('{"name": "Ada"}', "does not conform to the schema at $: 'age' is a required property"),
        (
            '{"name": "Ada", "age": "36"}',
            "does not conform to the schema at $.age: '36' is not of type 'integer'",
        ),
        (
            '{"name": "Ada", "age": -1}',
            "does not conform to the schema at $.age: -1 is less than the minimum of 0",
        ),
        (
            '{"name": "Ada", "age": 36, "tags": ["a", 2]}',
            "does not conform to the schema at $.tags[1]: 2 is not of type 'string'",
        ),
        ("[1]", "does not conform to the schema at $: [1] is not of type 'object'"),
    ],
)
def test_schema_violations_name_the_path(answer: str, error: str) -> None:
    verdict = JsonGuardrail({"schema": PERSON}).check(answer, CONTEXT)
    assert verdict.triggered
    assert verdict.details == {"error": error}
    assert verdict.reason == error


def test_a_long_error_is_one_short_line() -> None:
    answer = json.dumps({"name": "Ada", "age": 1, "extra\nkey": "x" * 1000})
    error = JsonGuardrail({"schema": PERSON}).check(answer, CONTEXT).details["error"]
    assert "\n" not in error
    assert len(error) <= 300
    assert error.startswith("does not conform to the schema at $: Additional properties are not allowed")


def test_formats_are_checked() -> None:
    guard = JsonGuardrail({"schema": {"type": "string", "format": "date"}})
    assert not guard.check('"2024-02-29"', CONTEXT).triggered
    assert guard.check('"2023-02-30"', CONTEXT).triggered


def test_an_unresolvable_ref_is_reported_without_blaming_the_answer() -> None:
    guard = JsonGuardrail({"schema": {"$ref": "#/$defs/missing"}})
    verdict = guard.check("{}", CONTEXT)
    assert not verdict.triggered
    assert "cannot be resolved" in verdict.details["error"]


def test_reask_is_kept_and_the_message_carries_the_error_and_the_schema() -> None:
    guard = JsonGuardrail({"schema": PERSON, "reask": 2})
    assert guard.reask == 2
    verdict = guard.check('{"name": "Ada"}', CONTEXT)
    message = guard.reask_message(verdict)
    assert message.startswith(
        "Your previous answer was not valid: does not conform to the schema at $: 'age' is a required"
        " property. Answer again with only JSON that conforms to this JSON Schema: {"
    )
    assert json.dumps(PERSON) in message
    assert JsonGuardrail({}).reask_message(JsonGuardrail({}).check("no", CONTEXT)) == (
        "Your previous answer was not valid: not valid JSON: Expecting value at line 1, column 1."
        " Answer again with only JSON."
    )


@pytest.mark.parametrize(
    ("params", "bad", "says"),
    [
        ({"schema": {"type": "nonsense"}}, "schema", "the schema is invalid at type"),
        ({"schema": {"properties": {"a": {"minimum": "zero"}}}}, "schema", "properties/a/minimum"),
        ({"schema": "object"}, "schema", "must be a dict"),
        ({"reask": 6}, "reask", "between 0 and 5"),
        ({"reask": -1}, "reask", "between 0 and 5"),
        ({"reask": 1.0}, "reask", "must be a int"),
        ({"allow_fences": "yes"}, "allow_fences", "must be a bool"),
        ({"schemas": {}}, "schemas", "no parameter"),
    ],
)
def test_bad_params(params: dict[str, object], bad: str, says: str) -> None:
    with pytest.raises(GuardrailError) as raised:
        JsonGuardrail(params)
    assert raised.value.param == bad
    assert says in raised.value.message
    assert "\n" not in raised.value.message


def test_without_the_eval_extra_a_schema_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("jsonschema", "jsonschema.exceptions", "jsonschema.validators"):
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    with pytest.raises(GuardrailUnavailable, match=r"pip install 'llmops\[eval\]'"):
        JsonGuardrail({"schema": PERSON})
    assert not JsonGuardrail({}).check("{}", CONTEXT).triggered  # no schema: no jsonschema needed

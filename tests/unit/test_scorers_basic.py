"""The cheap built-in metrics: string checks, JSON and JSON Schema, and the call's own numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from llmops.evals.scorers.base import Score, ScoreInput
from llmops.evals.scorers.registry import BadScorerArg, ScorerError, ScorerRegistry, ScorerResources

REGISTRY = ScorerRegistry(load_plugins=False)


async def score(spec: str, **fields: Any) -> Score:
    fields.setdefault("output", None)
    return await REGISTRY.create(spec, ScorerResources()).score(ScoreInput(**fields))


async def value(spec: str, **fields: Any) -> float | None:
    return (await score(spec, **fields)).value


@pytest.mark.parametrize(
    ("spec", "output", "expected", "result"),
    [
        ("exact_match", "  Paris\n", "Paris", 1.0),
        ("exact_match", "paris", "Paris", 0.0),
        ("exact_match:ci", "PARIS ", "paris", 1.0),
        ("exact_match:ci", "Straße", "STRASSE", 1.0),  # casefold, not lower
        ("exact_match", "Paris.", "Paris", 0.0),
        ("exact_match", '{"a":1}', {"a": 1}, 1.0),  # a structured reference compares as compact JSON
        ("exact_match", "Paris", None, None),
        ("exact_match", None, "Paris", None),
        ("contains", "The capital is Paris.", "Paris", 1.0),
        ("contains", "The capital is paris.", "Paris", 0.0),
        ("contains:refund", "We will refund you.", "ignored", 1.0),
        ("contains:refund", "We will not pay.", None, 0.0),
        ("contains", "anything", None, None),
        ("regex:^\\d+$", "12345", None, 1.0),
        ("regex:^\\d+$", "12a45", None, 0.0),
        ("regex:order #\\d{4}", "see order #1234 below", None, 1.0),  # a search, not a full match
        ("regex:x", None, None, None),
    ],
)
async def test_string_checks(spec: str, output: str | None, expected: Any, result: float | None) -> None:
    assert await value(spec, output=output, expected=expected) == result


@pytest.mark.parametrize(
    ("output", "result"),
    [
        ('{"a": [1, 2, {"b": null}]}', 1.0),
        ("  [1, 2]\n", 1.0),
        ('"just a string"', 1.0),
        ("{'a': 1}", 0.0),
        ('{"a": 1,}', 0.0),
        ("NaN", 0.0),
        ('{"a": 1} trailing', 0.0),
        ("", 0.0),
    ],
)
async def test_json_valid(output: str, result: float) -> None:
    found = await score("json_valid", output=output)
    assert found.value == result
    assert (found.reasoning is None) == (result == 1.0)


SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name"],
}


@pytest.fixture
def schema_file(tmp_path: Path) -> str:
    path = tmp_path / "person.schema.json"
    path.write_bytes(orjson.dumps(SCHEMA))
    return str(path)


async def test_json_schema_from_a_file(schema_file: str) -> None:
    spec = f"json_schema:{schema_file}"
    assert await score(spec, output='{"name": "Ada", "age": 36}') == Score(1.0)
    assert await score(spec, output='{"name": "Ada", "age": -1}') == Score(
        0.0, reasoning="$.age: -1 is less than the minimum of 0"
    )
    assert await score(spec, output='{"age": 3}') == Score(
        0.0, reasoning="the document: 'name' is a required property"
    )
    missing = await score(spec, output="{name: Ada}")
    assert missing.value == 0.0
    assert missing.reasoning is not None
    assert missing.reasoning.startswith("not valid JSON")


async def test_json_schema_from_the_row_metadata() -> None:
    good = '{"name": "Ada"}'
    assert await value("json_schema", output=good, metadata={"schema": SCHEMA}) == 1.0
    as_text = orjson.dumps(SCHEMA).decode()
    assert await value("json_schema", output='{"name": 1}', metadata={"schema": as_text}) == 0.0
    no_schema = await score("json_schema", output=good, metadata={})
    assert no_schema.value is None
    assert no_schema.reasoning is not None
    assert "no schema" in no_schema.reasoning
    with pytest.raises(ScorerError, match="the row's metadata.schema is not a valid JSON Schema"):
        await score("json_schema", output=good, metadata={"schema": {"type": "no-such-type"}})
    with pytest.raises(ScorerError, match="the row's metadata.schema is not valid JSON"):
        await score("json_schema", output=good, metadata={"schema": "{not json"})


def test_json_schema_file_errors_are_bad_args(tmp_path: Path) -> None:
    with pytest.raises(BadScorerArg, match="cannot read .*missing.json"):
        REGISTRY.create(f"json_schema:{tmp_path / 'missing.json'}", ScorerResources())
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(BadScorerArg, match="broken.json is not valid JSON"):
        REGISTRY.create(f"json_schema:{broken}", ScorerResources())
    invalid = tmp_path / "invalid.json"
    invalid.write_text('{"type": 12}')
    with pytest.raises(BadScorerArg, match="invalid.json is not a valid JSON Schema"):
        REGISTRY.create(f"json_schema:{invalid}", ScorerResources())


async def test_length() -> None:
    assert await value("length", output="héllo wörld") == 11.0
    assert await value("length:chars", output="") == 0.0
    assert await value("length:words", output="  three short\twords \n") == 3.0
    assert await value("length", output=None) is None


async def test_call_measurements() -> None:
    call = {"output": None, "latency_ms": 250.5, "prompt_tokens": 40, "completion_tokens": 12, "cost": 0.0021}
    assert await value("latency", **call) == 250.5
    assert await value("tokens", **call) == 12.0
    assert await value("tokens:completion", **call) == 12.0
    assert await value("tokens:total", **call) == 52.0
    assert await value("cost", **call) == 0.0021
    assert await value("tokens:total", completion_tokens=3) is None
    assert await value("cost") is None


def test_directions_and_default_thresholds() -> None:
    for name in ("exact_match", "contains:x", "regex:x", "json_valid", "json_schema"):
        made = REGISTRY.create(name, ScorerResources())
        assert (made.higher_is_better, made.threshold, made.requires_output) == (True, 1.0, True), name
    for name in ("length", "latency", "tokens", "cost"):
        made = REGISTRY.create(name, ScorerResources())
        assert (made.higher_is_better, made.threshold) == (False, None), name
        assert made.requires_output == (name == "length"), name

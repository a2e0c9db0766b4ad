"""Cheap metrics: string checks on the output, JSON validity and schemas, and the call's own numbers.

Pass/fail metrics score 1.0 or 0.0 with a default pass threshold of 1.0. ``length``, ``latency``,
``tokens`` and ``cost`` are measurements where lower is better, with no default threshold. A metric
that cannot apply to an item (no output, no reference, no schema) scores ``None``, which leaves the
item out of that metric's aggregates.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson

from llmops.evals.scorers.base import Score, ScoreInput
from llmops.evals.scorers.registry import BadScorerArg, Scorer, ScorerError, ScorerResources, extra_needed

MAX_CACHED_SCHEMAS = 256


def reference_text(expected: Any) -> str | None:
    """The reference as text: a string as it is, anything else as compact JSON."""
    if expected is None or isinstance(expected, str):
        return expected
    return orjson.dumps(expected).decode()


class PassFail(Scorer):
    """A metric whose items pass (1.0) or fail (0.0)."""

    threshold = 1.0


class ExactMatch(PassFail):
    """The output equals the reference once surrounding whitespace is trimmed; ``:ci`` ignores case."""

    name = "exact_match"
    arg_use = "optional"
    arg_choices = ("ci",)

    async def score(self, item: ScoreInput) -> Score:
        expected = reference_text(item.expected)
        if item.output is None or expected is None:
            return Score(None)
        output, expected = item.output.strip(), expected.strip()
        if self.arg == "ci":
            output, expected = output.casefold(), expected.casefold()
        return Score(float(output == expected))


class Contains(PassFail):
    """The output contains the reference (or the text of ``contains:TEXT``), case-sensitively."""

    name = "contains"
    arg_use = "optional"

    async def score(self, item: ScoreInput) -> Score:
        needle = self.arg if self.arg is not None else reference_text(item.expected)
        if item.output is None or needle is None:
            return Score(None)
        return Score(float(needle in item.output))


class Regex(PassFail):
    """The pattern of ``regex:PATTERN`` is found somewhere in the output (``re.search``)."""

    name = "regex"
    arg_use = "required"

    def __init__(self, arg: str | None = None, resources: ScorerResources | None = None) -> None:
        super().__init__(arg, resources)
        try:
            self._pattern = re.compile(arg or "")
        except re.error as exc:
            raise BadScorerArg(f"metric 'regex': bad pattern {arg!r}: {exc}") from exc

    async def score(self, item: ScoreInput) -> Score:
        if item.output is None:
            return Score(None)
        return Score(float(self._pattern.search(item.output) is not None))


def _parse_json(text: str) -> tuple[Any, str | None]:
    """(document, None), or (None, why it is not JSON). Strict RFC 8259: no NaN, no trailing commas."""
    try:
        return orjson.loads(text), None
    except orjson.JSONDecodeError as exc:
        return None, f"not valid JSON: {exc}"


class JsonValid(PassFail):
    """The whole output parses as JSON (strictly: no NaN, no comments, no trailing commas)."""

    name = "json_valid"

    async def score(self, item: ScoreInput) -> Score:
        if item.output is None:
            return Score(None)
        _, problem = _parse_json(item.output)
        return Score(0.0, reasoning=problem) if problem else Score(1.0)


class JsonSchema(PassFail):
    """The output is JSON that conforms to a JSON Schema: ``json_schema:FILE``, else the row's
    ``metadata.schema`` (an object, or a string holding one). Needs the ``eval`` extra (jsonschema)."""

    name = "json_schema"
    arg_use = "optional"

    def __init__(self, arg: str | None = None, resources: ScorerResources | None = None) -> None:
        super().__init__(arg, resources)
        with extra_needed(self.name, "eval"):
            import jsonschema  # noqa: F401 - fail when the run starts, not on its first item
        self._validators: dict[bytes, Any] = {}
        self._schema: Any = None
        if arg is not None:
            self._schema = _schema_file(arg)
            self._validator(self._schema, where=arg, error=BadScorerArg)

    async def score(self, item: ScoreInput) -> Score:
        if item.output is None:
            return Score(None)
        schema = self._schema if self._schema is not None else (item.metadata or {}).get("schema")
        if schema is None:
            return Score(None, reasoning="no schema: give json_schema:FILE or the row's metadata.schema")
        if isinstance(schema, str):
            schema, problem = _parse_json(schema)
            if problem:
                raise ScorerError(f"metric 'json_schema': the row's metadata.schema is {problem}")
        validator = self._validator(schema, where="the row's metadata.schema", error=ScorerError)
        document, problem = _parse_json(item.output)
        if problem:
            return Score(0.0, reasoning=problem)
        from jsonschema.exceptions import best_match

        error = best_match(validator.iter_errors(document))
        if error is None:
            return Score(1.0)
        location = error.json_path if error.path else "the document"
        return Score(0.0, reasoning=f"{location}: {error.message}")

    def _validator(self, schema: Any, *, where: str, error: type[ScorerError]) -> Any:
        """A validator of the schema's own draft, built once per distinct schema."""
        key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
        validator = self._validators.get(key)
        if validator is None:
            from jsonschema.exceptions import SchemaError
            from jsonschema.validators import validator_for

            cls = validator_for(schema)
            try:
                cls.check_schema(schema)
            except SchemaError as exc:
                message = f"metric 'json_schema': {where} is not a valid JSON Schema: {exc.message}"
                raise error(message) from exc
            if len(self._validators) >= MAX_CACHED_SCHEMAS:
                self._validators.clear()  # rows with ever-new schemas: keep memory bounded
            validator = self._validators[key] = cls(schema)
        return validator


def _schema_file(arg: str) -> Any:
    path = Path(arg)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise BadScorerArg(f"metric 'json_schema': cannot read {arg}: {exc.strerror or exc}") from exc
    schema, problem = _parse_json(text.decode("utf-8", errors="replace"))
    if problem:
        raise BadScorerArg(f"metric 'json_schema': {arg} is {problem}")
    return schema


class Measurement(Scorer):
    """A number where lower is better and no threshold applies by default."""

    higher_is_better = False


class Length(Measurement):
    """Characters of the output (``length:words``: whitespace-separated words)."""

    name = "length"
    arg_use = "optional"
    arg_choices = ("chars", "words")

    async def score(self, item: ScoreInput) -> Score:
        if item.output is None:
            return Score(None)
        return Score(float(len(item.output.split()) if self.arg == "words" else len(item.output)))


class Latency(Measurement):
    """Milliseconds the call took (recorded for failed calls too)."""

    name = "latency"
    requires_output = False

    async def score(self, item: ScoreInput) -> Score:
        return Score(item.latency_ms)


class Tokens(Measurement):
    """Completion tokens of the call (``tokens:total``: prompt and completion tokens)."""

    name = "tokens"
    requires_output = False
    arg_use = "optional"
    arg_choices = ("completion", "total")

    async def score(self, item: ScoreInput) -> Score:
        if self.arg != "total":
            return Score(None if item.completion_tokens is None else float(item.completion_tokens))
        if item.prompt_tokens is None or item.completion_tokens is None:
            return Score(None)
        return Score(float(item.prompt_tokens + item.completion_tokens))


class Cost(Measurement):
    """What the call cost in USD, as the gateway accounted it."""

    name = "cost"
    requires_output = False

    async def score(self, item: ScoreInput) -> Score:
        return Score(item.cost)

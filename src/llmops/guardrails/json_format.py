"""The ``json`` guardrail: an answer must be JSON and, when a JSON Schema is given, conform to it.

An answer that is one fenced block (```json ... ```) counts as its content when ``allow_fences`` is
true (the default), since models wrap JSON so even when asked not to; prose around the block does
not pass, because a program reading the answer would fail on it. ``NaN`` and ``Infinity``, which
Python's parser accepts, are not JSON and are refused.

Schemas are checked with ``jsonschema`` (the ``eval`` extra), imported only when a schema is given;
``format`` keywords are checked where jsonschema can do so without extra packages. A ``$ref`` the
validator cannot resolve (it fetches nothing over the network) is reported in ``details["error"]``
without triggering: the answer is not at fault.

``reask`` (0..5) is only kept here: the engine re-asks the model, with :meth:`JsonGuardrail.reask_message`
appended to the conversation, up to that many times.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from llmops.guardrails.base import (
    CheckContext,
    Guardrail,
    GuardrailError,
    GuardrailUnavailable,
    Stage,
    Verdict,
    param,
    unknown_params,
)

_KNOWN = ("schema", "allow_fences", "reask")
_MAX_REASK = 5
_MAX_ERROR_CHARS = 300
_FENCED = re.compile(r"```[ \t]*(?:json)?[ \t]*\n(.*?)\n?[ \t]*```", re.DOTALL | re.IGNORECASE)
_INSTALL_HINT = "pip install 'llmops[eval]'"


class JsonGuardrail(Guardrail):
    """Answers only; triggered by invalid JSON or a schema violation, with the error in ``details``."""

    kind = "json"
    stages: ClassVar[tuple[Stage, ...]] = ("output",)

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        unknown_params(params, _KNOWN, self.kind)
        self.allow_fences: bool = param(params, "allow_fences", bool, True)
        self.reask: int = param(params, "reask", int, 0)
        if not 0 <= self.reask <= _MAX_REASK:
            raise GuardrailError(
                f"guardrail parameter 'reask' must be between 0 and {_MAX_REASK}, not {self.reask}",
                param="reask",
            )
        self.schema: dict[str, Any] | None = param(params, "schema", dict)
        self._validator: Any = _validator(self.schema) if self.schema is not None else None

    def check(self, text: str, context: CheckContext) -> Verdict:
        data, error = self._parse(text)
        if error is None and self._validator is not None:
            from referencing.exceptions import Unresolvable

            try:
                error = self._schema_error(data)
            except Unresolvable as exc:  # the configuration is at fault, not the answer
                return Verdict(
                    False, details={"error": _one_line(f"the schema's $ref cannot be resolved: {exc}")}
                )
        if error is None:
            return Verdict(False)
        return Verdict(True, 1.0, error, details={"error": error})

    def reask_message(self, verdict: Verdict) -> str:
        """The user message the engine appends when it asks the model again after ``verdict``."""
        error = verdict.details.get("error") or verdict.reason or "it is not valid JSON"
        schema = json.dumps(self.schema, default=str) if self.schema else ""
        wanted = f" that conforms to this JSON Schema: {schema}" if schema else ""
        return f"Your previous answer was not valid: {error}. Answer again with only JSON{wanted}."

    def _parse(self, text: str) -> tuple[Any, str | None]:
        """The JSON value in ``text``, or an error: one line saying what is wrong with it."""
        body = text.strip()
        if self.allow_fences:
            fenced = _FENCED.fullmatch(body)
            if fenced is not None:
                body = fenced.group(1).strip()
        if not body:
            return None, "the answer is empty, not JSON"
        try:
            return json.loads(body, parse_constant=_not_json), None
        except json.JSONDecodeError as exc:
            return None, f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        except ValueError as exc:  # NaN/Infinity, or an integer of more than 4,300 digits
            return None, _one_line(f"not valid JSON: {exc}")
        except RecursionError:
            return None, "not valid JSON: nested too deeply to read"

    def _schema_error(self, data: Any) -> str | None:
        from jsonschema.exceptions import best_match

        try:
            error = best_match(self._validator.iter_errors(data))
        except RecursionError:
            return "does not conform to the schema: nested too deeply to check"
        if error is None:
            return None
        return _one_line(f"does not conform to the schema at {error.json_path}: {error.message}")


def _validator(schema: dict[str, Any]) -> Any:
    """A jsonschema validator of the schema's own draft (latest when it names none), checked now."""
    try:
        from jsonschema.exceptions import SchemaError
        from jsonschema.validators import validator_for
    except ImportError as exc:
        raise GuardrailUnavailable(
            f"guardrail 'json' needs jsonschema to check a schema: {_INSTALL_HINT}", param="schema"
        ) from exc
    cls = validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.path) or "the top level"
        raise GuardrailError(
            _one_line(f"guardrail 'json': the schema is invalid at {where}: {exc.message}"), param="schema"
        ) from exc
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not allowed")


def _one_line(message: str) -> str:
    flat = " ".join(message.split())
    return flat if len(flat) <= _MAX_ERROR_CHARS else f"{flat[: _MAX_ERROR_CHARS - 3]}..."

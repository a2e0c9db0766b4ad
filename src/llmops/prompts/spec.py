"""What a prompt is: its versioned content, and the YAML file form that is pushed from git.

:class:`PromptContent` is what a version holds and what its hash covers: the kind, the template
(``text``) or the message templates (``chat``), the declared variables, the default model and
parameters. The same content is the same version. The commit message, author, tags and labels are
about a version or the prompt, not part of it, so they never change its hash.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PromptKind = Literal["text", "chat"]
VariableType = Literal["string", "number", "integer", "boolean", "list", "object", "any"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"
LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
# valid_label() as one expression without look-ahead, for JSON schemas (with a maximum length of 100)
LABEL_SCHEMA_PATTERN = r"^(?:[A-Za-z][A-Za-z0-9._-]*|[0-9]+[A-Za-z._-][A-Za-z0-9._-]*)$"
IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
RESERVED_PARAMETERS = ("messages", "prompt", "model", "stream", "prompt_variables")
MAX_VERSION = 2**31 - 1  # version numbers are 32-bit integers in the database
MAX_JSON_DEPTH = 32
MAX_TAGS = 50
MAX_TAG_LENGTH = 100
MAX_NUMBER = 2**53 - 1  # the numbers every JSON parser keeps exactly (RFC 7493), floats and integers
_NAME = re.compile(NAME_PATTERN)
_LABEL = re.compile(LABEL_PATTERN)
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
ROLES = ("system", "developer", "user", "assistant")


def valid_name(name: str) -> bool:
    return bool(_NAME.fullmatch(name))  # fullmatch: "$" alone would accept a trailing newline


def valid_label(label: str) -> bool:
    return bool(_LABEL.fullmatch(label)) and not label.isdigit()


def json_problem(value: Any, where: str = "value", depth: int = 0) -> str | None:
    """Why ``value`` cannot be stored as a prompt's JSON, naming where (None when it can).

    Strings may not hold NUL (no Postgres text or JSONB value can); numbers stay within
    ±:data:`MAX_NUMBER`, which every JSON parser keeps exactly (and orjson, which computes the content
    hash, needs 64-bit integers); nesting stays within :data:`MAX_JSON_DEPTH` levels.
    """
    if depth > MAX_JSON_DEPTH:
        return f"{where}: nested more than {MAX_JSON_DEPTH} levels deep"
    if isinstance(value, str):
        return f"{where}: contains a NUL character" if "\x00" in value else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return f"{where}: number is not finite"
        return None if abs(value) <= MAX_NUMBER else f"{where}: number outside ±{MAX_NUMBER}"
    if isinstance(value, dict):
        children = [(f"{where}.{key}", key) for key in value] + [
            (f"{where}.{key}", item) for key, item in value.items()
        ]
    elif isinstance(value, list | tuple):
        children = [(f"{where}[{index}]", item) for index, item in enumerate(value)]
    else:
        return None  # dates and the like: stored as JSON strings
    for child_where, child in children:
        problem = json_problem(child, child_where, depth + 1)
        if problem:
            return problem
    return None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VariableSpec(_Strict):
    type: VariableType = Field(default="string", description="What values the variable accepts.")
    default: Any = Field(default=None, description="Used when the caller gives none.")
    required: bool = Field(default=False, description="The caller must give it (no default).")
    description: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _required_has_no_default(self) -> VariableSpec:
        if self.required and self.default is not None:
            raise ValueError("a required variable has no default")
        return self


class MessageTemplate(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str = Field(max_length=200_000, description="A Jinja2 template.")


class PromptContent(_Strict):
    """One version's content: immutable, identified by :meth:`content_hash`."""

    kind: PromptKind
    template: str | None = Field(
        default=None, max_length=200_000, description="text prompts: a Jinja2 template."
    )
    messages: tuple[MessageTemplate, ...] | None = Field(default=None, description="chat prompts.")
    variables: dict[str, VariableSpec] = Field(default_factory=dict)
    model: str | None = Field(
        default=None, max_length=200, description="Default model when the request names none."
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="Default request parameters: temperature, max_tokens, stop, ..."
    )

    @field_validator("variables")
    @classmethod
    def _identifiers(cls, variables: dict[str, VariableSpec]) -> dict[str, VariableSpec]:
        for name in variables:
            if not _IDENTIFIER.fullmatch(name):
                raise ValueError(f"variable name {name!r} is not an identifier (letters, digits, _)")
        return variables

    @field_validator("parameters")
    @classmethod
    def _no_conversation_in_parameters(cls, parameters: dict[str, Any]) -> dict[str, Any]:
        for reserved in RESERVED_PARAMETERS:
            if reserved in parameters:
                raise ValueError(f"parameters cannot set {reserved!r}")
        return parameters

    @model_validator(mode="after")
    def _storable(self) -> PromptContent:
        for key, value in self.model_dump().items():  # python mode: JSON mode hides NaN as null
            problem = json_problem(value, key)
            if problem:
                raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _shape_matches_kind(self) -> PromptContent:
        if self.kind == "text":
            if self.template is None or self.messages is not None:
                raise ValueError("a text prompt has a template and no messages")
        elif self.messages is None or self.template is not None:
            raise ValueError("a chat prompt has messages and no template")
        elif not self.messages:
            raise ValueError("a chat prompt needs at least one message")
        return self

    def canonical(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=False)

    def content_hash(self) -> str:
        return hashlib.sha256(orjson.dumps(self.canonical(), option=orjson.OPT_SORT_KEYS)).hexdigest()


class PromptFile(_Strict):
    """One YAML file in a prompts folder: a prompt's content plus what is said about this version."""

    name: str = Field(pattern=NAME_PATTERN)
    kind: PromptKind = "chat"
    template: str | None = None
    messages: list[MessageTemplate] | None = None
    variables: dict[str, VariableSpec | None] = Field(default_factory=dict)
    model: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    description: str | None = Field(default=None, max_length=2000)
    tags: list[Annotated[str, Field(min_length=1, max_length=MAX_TAG_LENGTH)]] = Field(
        default_factory=list, max_length=MAX_TAGS
    )
    labels: list[str] = Field(default_factory=list)
    message: str | None = Field(default=None, max_length=2000, description="Commit message of this version.")
    author: str | None = Field(default=None, max_length=200)

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: list[str]) -> list[str]:
        for label in labels:
            if not valid_label(label):
                raise ValueError(f"label {label!r}: letters, digits, '.', '_' or '-', not only digits")
        return labels

    def content(self) -> PromptContent:
        return PromptContent(
            kind=self.kind,
            template=self.template,
            messages=tuple(self.messages) if self.messages is not None else None,
            variables={name: spec or VariableSpec() for name, spec in self.variables.items()},
            model=self.model,
            parameters=self.parameters,
        )


def file_data(name: str, content: PromptContent, **about: Any) -> dict[str, Any]:
    """A prompt file's mapping (what `llmops prompts pull` writes), without empty fields."""
    data: dict[str, Any] = {"name": name, "kind": content.kind}
    if content.template is not None:
        data["template"] = content.template
    if content.messages is not None:
        data["messages"] = [message.model_dump() for message in content.messages]
    if content.variables:
        data["variables"] = {
            key: spec.model_dump(exclude_defaults=True) or None for key, spec in content.variables.items()
        }
    if content.model:
        data["model"] = content.model
    if content.parameters:
        data["parameters"] = content.parameters
    data.update({key: value for key, value in about.items() if value})
    return data

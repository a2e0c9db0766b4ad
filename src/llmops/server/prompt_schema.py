"""Request bodies and answers of the prompt registry's admin routes (/api/prompts).

Bodies declare the registry's own rules (name and label patterns, the shape of each kind, variable
names, reserved parameters, JSON values that every backend keeps), so what the schema accepts is
stored; what only a template's text can tell is left to the service (400 naming the line or variable).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from fastapi import Path
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PlainValidator,
    StrictBool,
    StrictFloat,
    StrictInt,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema
from typing_extensions import TypeAliasType

from llmops.prompts.spec import (
    IDENTIFIER_PATTERN,
    LABEL_SCHEMA_PATTERN,
    MAX_NUMBER,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    MAX_VERSION,
    NAME_PATTERN,
    RESERVED_PARAMETERS,
    json_problem,
)
from llmops.server.admin_schema import NO_NUL


class _NotNull:
    """Absent is allowed, null is not: the schema of `X | None` is that of X (`_In` refuses a null)."""

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        declared = handler(schema)
        branches = [branch for branch in declared.get("anyOf", []) if branch != {"type": "null"}]
        if len(branches) != 1:
            return declared
        return {**branches[0], **{key: value for key, value in declared.items() if key != "anyOf"}}


_NOT_NULL = _NotNull()


class _Closed:
    """A mapping whose keys match a pattern has no other keys (`additionalProperties: false`)."""

    def __init__(self, **extra: Any) -> None:
        self._extra = extra

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        declared = handler(schema)
        declared["additionalProperties"] = False
        declared.update(self._extra)
        return declared


def whole_number(value: Any) -> Any:
    """JSON has one number type: 3.0 is the integer 3 (as JSON Schema says); 3.5 and "3" stay refused."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _not_reserved(name: str) -> str:
    if name in RESERVED_PARAMETERS:
        raise PydanticCustomError("reserved", "parameters cannot set {name}", {"name": name})
    return name


_Text = Annotated[str, Field(strict=True, pattern=NO_NUL)]
_Number = Annotated[StrictFloat, Field(ge=-MAX_NUMBER, le=MAX_NUMBER, allow_inf_nan=False)]
_Integer = Annotated[StrictInt, Field(ge=-MAX_NUMBER, le=MAX_NUMBER)]
# What the schema says of a JSON value the registry can keep: no NUL in strings or keys, numbers
# within ±(2**53 - 1). Values are checked by the registry's own rule (json_problem), as files are.
PromptJsonValue = TypeAliasType(
    "PromptJsonValue",
    "_Text | _Integer | _Number | StrictBool | None | list[PromptJsonValue] "
    "| Annotated[dict[_Text, PromptJsonValue], _Closed()]",
)


def _json_value(value: Any) -> Any:
    problem = json_problem(value, "")
    if problem:
        raise PydanticCustomError("json_value", problem.lstrip(".").removeprefix(": "))
    return value


JsonIn = Annotated[Any, PlainValidator(_json_value, json_schema_input_type=PromptJsonValue)]
_Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
_ParameterName = Annotated[str, Field(pattern=NO_NUL), AfterValidator(_not_reserved)]
_Label = Annotated[str, Field(pattern=LABEL_SCHEMA_PATTERN, max_length=100)]
_Author = Annotated[
    str, Field(max_length=200, pattern=NO_NUL, description="Who did it (default: the key's name).")
]
_Long = Annotated[str, Field(max_length=2000, pattern=NO_NUL)]
_Short = Annotated[str, Field(max_length=200, pattern=NO_NUL)]
_Template = Annotated[str, Field(max_length=200_000, pattern=NO_NUL, description="A Jinja2 template.")]
_Version = Annotated[int, Field(ge=1, le=MAX_VERSION), BeforeValidator(whole_number)]
# Optional fields: absent or a value, never null (as their schema says).
_MaybeLong = Annotated[_Long | None, _NOT_NULL]
_MaybeShort = Annotated[_Short | None, _NOT_NULL]
_MaybeTemplate = Annotated[_Template | None, _NOT_NULL]
_MaybeVersion = Annotated[_Version | None, _NOT_NULL]

# the examples name the prompt and labels the schemathesis test seeds (tests/e2e/test_schemathesis.py)
NamePath = Annotated[str, Path(pattern=NAME_PATTERN, description="The prompt's name.", examples=["greeting"])]
_LABEL = "A label: not only digits."
LabelPath = Annotated[
    str, Path(pattern=LABEL_SCHEMA_PATTERN, max_length=100, description=_LABEL, examples=["staging"])
]
RollbackLabelPath = Annotated[
    str, Path(pattern=LABEL_SCHEMA_PATTERN, max_length=100, description=_LABEL, examples=["rolled"])
]
VersionPath = Annotated[
    int, Path(ge=1, le=MAX_VERSION, description="A version number (1, 2, 3, ...).", examples=[1])
]
VERSION_RULE = {"ge": 1, "le": MAX_VERSION}

# A required variable has no default: `required` absent or false, or `default` absent or null.
_REQUIRED_HAS_NO_DEFAULT: dict[str, Any] = {
    "anyOf": [
        {"not": {"required": ["required"]}},
        {"properties": {"required": {"const": False}}},
        {"not": {"required": ["default"]}},
        {"properties": {"default": {"type": "null"}}},
    ]
}
# A text prompt has a template, a chat prompt messages; never both.
_ONE_KIND: dict[str, Any] = {
    "oneOf": [
        {
            "properties": {"kind": {"const": "text"}},
            "required": ["template"],
            "not": {"required": ["messages"]},
        },
        {
            "properties": {"kind": {"const": "chat"}},
            "required": ["messages"],
            "not": {"required": ["template"]},
        },
    ]
}


class _In(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    _nullable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _no_explicit_null(self) -> Self:
        for name in sorted(self.model_fields_set - self._nullable):
            if getattr(self, name) is None:
                raise PydanticCustomError("not_null", "{name}: give a value or leave it out", {"name": name})
        return self


class PromptVariableIn(_In):
    model_config = ConfigDict(json_schema_extra=_REQUIRED_HAS_NO_DEFAULT)
    _nullable = frozenset({"default"})

    type: Literal["string", "number", "integer", "boolean", "list", "object", "any"] = "string"
    default: JsonIn = Field(default=None, description="Used when the caller gives none.")
    required: bool = Field(default=False, description="The caller must give it (then no default).")
    description: _MaybeLong = None

    @model_validator(mode="after")
    def _required_has_no_default(self) -> Self:
        if self.required and self.default is not None:
            raise PydanticCustomError("required_default", "a required variable has no default")
        return self


class PromptMessageIn(_In):
    role: Literal["system", "developer", "user", "assistant"]
    content: _Template


class PromptIn(_In):
    """A prompt file's fields: `kind` text with a `template`, or chat with `messages`."""

    model_config = ConfigDict(
        json_schema_extra={
            **_ONE_KIND,
            "examples": [
                {
                    "name": "greeting",
                    "kind": "text",
                    "template": "Hello {{ who }}!",
                    "variables": {"who": {}},
                },
                {"name": "support", "kind": "chat", "messages": [{"role": "user", "content": "Hi"}]},
            ],
        }
    )

    name: str = Field(pattern=NAME_PATTERN, description="Letters, digits, '.', '_', '-'; up to 200.")
    kind: Literal["text", "chat"]
    template: _MaybeTemplate = None
    messages: Annotated[Annotated[list[PromptMessageIn], Field(min_length=1)] | None, _NOT_NULL] = Field(
        default=None, description="Message templates, in order."
    )
    variables: Annotated[dict[_Identifier, PromptVariableIn], _Closed()] = Field(
        default_factory=dict, description="Every variable the templates use, by name."
    )
    model: _MaybeShort = Field(default=None, description="Default model.")
    parameters: Annotated[
        dict[_ParameterName, JsonIn], _Closed(propertyNames={"not": {"enum": list(RESERVED_PARAMETERS)}})
    ] = Field(
        default_factory=dict,
        description="Default request parameters (temperature, max_tokens, stop, response_format, ...); "
        f"not {', '.join(RESERVED_PARAMETERS)}.",
    )
    description: _MaybeLong = None
    tags: list[Annotated[str, Field(min_length=1, max_length=MAX_TAG_LENGTH, pattern=NO_NUL)]] = Field(
        default_factory=list, max_length=MAX_TAGS
    )
    labels: list[_Label] = Field(default_factory=list, description="Labels to point at this version.")
    message: _MaybeLong = Field(default=None, description="What changed (commit message).")
    author: Annotated[_Author | None, _NOT_NULL] = None

    @model_validator(mode="after")
    def _shape_matches_kind(self) -> Self:
        if self.kind == "text" and (self.template is None or self.messages is not None):
            raise PydanticCustomError("kind", "a text prompt has a template and no messages")
        if self.kind == "chat" and (self.messages is None or self.template is not None):
            raise PydanticCustomError("kind", "a chat prompt has messages and no template")
        return self


class PromptLabelIn(_In):
    model_config = ConfigDict(json_schema_extra={"examples": [{"version": 1}, {"version": 2}]})

    version: _Version = Field(description="The version the label points at from now on.")
    author: Annotated[_Author | None, _NOT_NULL] = None


class PromptAuthorIn(_In):
    author: Annotated[_Author | None, _NOT_NULL] = None


class PromptRenderIn(_In):
    variables: Annotated[dict[_Identifier, JsonIn], _Closed()] = Field(default_factory=dict)
    label: Annotated[_Label | None, _NOT_NULL] = Field(
        default=None, description="Render the version it points at."
    )
    version: _MaybeVersion = Field(
        default=None, description="Render this version (with `label`: it must carry it)."
    )


NOTHING_TO_RENDER = PromptRenderIn()  # the value of an absent body (never changed)
NO_AUTHOR = PromptAuthorIn()


# -- answers ----------------------------------------------------------------------------------------------


class PromptMessageOut(BaseModel):
    role: str
    content: str


class PromptVariableOut(BaseModel):
    type: str
    default: Any
    required: bool
    description: str | None


class PromptVersionOut(BaseModel):
    name: str
    version: int
    content_hash: str = Field(description="sha256 of the content: the same content is the same version.")
    kind: Literal["text", "chat"]
    template: str | None
    messages: list[PromptMessageOut] | None
    variables: dict[str, PromptVariableOut]
    model: str | None
    parameters: dict[str, Any]
    message: str | None
    author: str | None
    created_at: datetime
    labels: list[str] = Field(description="The labels pointing at this version now.")


class PromptPushOut(PromptVersionOut):
    created: bool = Field(description="False when a version with this content existed (nothing stored).")
    labels_moved: list[str]


class PromptSummaryOut(BaseModel):
    name: str
    kind: Literal["text", "chat"]
    description: str | None
    tags: list[str]
    latest_version: int
    labels: dict[str, int] = Field(description="Each label and the version it points at.")
    created_at: datetime
    updated_at: datetime


class PromptListOut(BaseModel):
    data: list[PromptSummaryOut]


class PromptVersionListOut(BaseModel):
    data: list[PromptVersionOut]


class PromptLabelOut(BaseModel):
    label: str
    version: int
    updated_at: datetime
    updated_by: str | None


class PromptLabelListOut(BaseModel):
    data: list[PromptLabelOut]


class PromptLabelEventOut(BaseModel):
    id: str
    label: str
    action: str = Field(description="deploy, rollback or remove.")
    from_version: int | None
    to_version: int | None
    author: str | None
    created_at: datetime


class PromptHistoryOut(BaseModel):
    data: list[PromptLabelEventOut] = Field(description="Oldest first.")


class PromptLabelMoveOut(BaseModel):
    label: str
    action: str = Field(description="deploy, rollback or remove.")
    from_version: int | None
    to_version: int | None
    moved: bool = Field(description="False when the label pointed at that version already.")
    author: str | None
    created_at: datetime


class PromptDiffOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    name: str
    from_version: int = Field(alias="from")
    to_version: int = Field(alias="to")
    changes: list[str] = Field(description="One line per changed kind, model, parameter or variable.")
    diff: list[str] = Field(description="Unified diff of the templates, one line per item.")


class PromptRenderOut(BaseModel):
    name: str
    version: int
    kind: Literal["text", "chat"]
    messages: list[PromptMessageOut] | None = Field(description="Chat prompts: the rendered messages.")
    text: str | None = Field(description="Text prompts: the rendered text.")
    model: str | None
    parameters: dict[str, Any]

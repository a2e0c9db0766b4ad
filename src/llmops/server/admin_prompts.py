"""Admin routes of the prompt registry (/api/prompts): the service functions behind `llmops prompts`.

Request bodies declare the registry's own rules (name and label patterns, the shape of each kind,
variable names, reserved parameters, JSON values that every backend keeps), so what the schema
accepts is stored. What only the text of a template can tell is answered with 400 naming the line or
the variable: a template that does not parse or uses an undeclared variable, and render variables
that are missing, undeclared or of the wrong type. A version of another kind than the prompt's, and
a rollback with nothing earlier to go back to, are 409.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from fastapi import APIRouter, Body, Path, Query, Response
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

from llmops.gateway.auth import Principal
from llmops.gateway.errors import GatewayError
from llmops.prompts.services import (
    InvalidPrompt,
    PromptConflict,
    PromptNotFound,
    PromptService,
    PromptVersion,
    Reference,
    parse_prompt_file,
)
from llmops.prompts.spec import (
    IDENTIFIER_PATTERN,
    LABEL_SCHEMA_PATTERN,
    MAX_NUMBER,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    MAX_VERSION,
    NAME_PATTERN,
    RESERVED_PARAMETERS,
    PromptFile,
    json_problem,
)
from llmops.server.admin_auth import Admin
from llmops.server.admin_schema import NO_NUL, error_responses, link
from llmops.services import Services


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


def _whole(value: Any) -> Any:
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
_Version = Annotated[int, Field(ge=1, le=MAX_VERSION), BeforeValidator(_whole)]
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
_VERSION_RULE = {"ge": 1, "le": MAX_VERSION}

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


_NOTHING_TO_RENDER = PromptRenderIn()  # the value of an absent body (never changed)
_NO_AUTHOR = PromptAuthorIn()


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


# -- routes -----------------------------------------------------------------------------------------------

_NO_PROMPT = {404: "No prompt has this name."}
_NO_VERSION = {404: "No such prompt, version or label (or the version does not carry the label)."}
_NO_LABEL = {404: "No such prompt, or it has no such label."}


@contextmanager
def _answers() -> Iterator[None]:
    """Conflicts as 409; the variable at fault (render) named in `param`."""
    try:
        yield
    except PromptConflict as exc:
        raise GatewayError(409, str(exc), code="conflict") from None
    except InvalidPrompt as exc:
        raise GatewayError(400, str(exc), param=exc.param) from None


def _author(given: str | None, principal: Principal) -> str:
    return given if given is not None else principal.name


def _version_out(version: PromptVersion) -> dict[str, Any]:
    return version.as_dict()


def _prompt_file(body: PromptIn) -> PromptFile:
    return parse_prompt_file(body.model_dump(exclude={"author"}, exclude_none=True), "body")


def _resolve(prompts: PromptService, name: str, label: str | None, version: int | None) -> PromptVersion:
    if version is None:
        return prompts.get(Reference(name, label=label))
    found = prompts.get(Reference(name, version=version))
    if label is not None and label not in found.labels:
        raise PromptNotFound(f"label {label!r} of {name!r} does not point at version {version}")
    return found


def prompt_routes(services: Services) -> APIRouter:
    router = APIRouter(tags=["prompts"])
    prompts = services.store.prompts
    _reading_routes(router, prompts)
    _writing_routes(router, prompts)
    _label_routes(router, prompts)
    return router


def _reading_routes(router: APIRouter, prompts: PromptService) -> None:
    one = {"GetPrompt": link("get_prompt", name="$response.body#/data/0/name")}

    @router.get(
        "/api/prompts",
        operation_id="list_prompts",
        response_model=PromptListOut,
        responses={200: {"links": one}, **error_responses(400)},
    )
    def list_prompts(
        _: Admin,
        tag: Annotated[str | None, Query(description="Only prompts with this tag.", pattern=NO_NUL)] = None,
        search: Annotated[
            str | None, Query(description="Only prompts whose name contains this.", pattern=NO_NUL)
        ] = None,
    ) -> dict[str, Any]:
        """Every prompt with its latest version number, labels and tags, by name."""
        return {"data": prompts.list_prompts(tag=tag, search=search)}

    @router.get(
        "/api/prompts/{name}",
        operation_id="get_prompt",
        response_model=PromptVersionOut,
        responses=error_responses(400, 404, descriptions=_NO_VERSION),
    )
    def get_prompt(
        _: Admin,
        name: NamePath,
        label: Annotated[
            str | None,
            Query(
                pattern=LABEL_SCHEMA_PATTERN, max_length=100, description="The version this label points at."
            ),
        ] = None,
        version: Annotated[int | None, Query(**_VERSION_RULE, description="This version.")] = None,
    ) -> dict[str, Any]:
        """One version: by `version`, by `label`, else the one labelled `production`, else the latest."""
        return _version_out(_resolve(prompts, name, label, version))

    @router.get(
        "/api/prompts/{name}/versions",
        operation_id="list_prompt_versions",
        response_model=PromptVersionListOut,
        responses={
            200: {
                "links": {
                    "GetVersion": link(
                        "get_prompt_version",
                        name="$request.path.name",
                        number="$response.body#/data/0/version",
                    )
                }
            },
            **error_responses(400, 404, descriptions=_NO_PROMPT),
        },
    )
    def list_versions(_: Admin, name: NamePath) -> dict[str, Any]:
        """Every version of a prompt, oldest first, with the labels pointing at each."""
        return {"data": [_version_out(version) for version in prompts.versions(name)]}

    @router.get(
        "/api/prompts/{name}/versions/{number}",
        operation_id="get_prompt_version",
        response_model=PromptVersionOut,
        responses=error_responses(400, 404, descriptions=_NO_VERSION),
    )
    def get_version(_: Admin, name: NamePath, number: VersionPath) -> dict[str, Any]:
        """One version by number."""
        return _version_out(prompts.get(Reference(name, version=number)))

    @router.get(
        "/api/prompts/{name}/diff",
        operation_id="diff_prompt_versions",
        response_model=PromptDiffOut,
        responses=error_responses(400, 404, descriptions=_NO_VERSION),
    )
    def diff(
        _: Admin,
        name: NamePath,
        old: Annotated[int, Query(alias="from", **_VERSION_RULE, description="The older version.")],
        new: Annotated[int, Query(alias="to", **_VERSION_RULE, description="The newer version.")],
    ) -> dict[str, Any]:
        """What changed between two versions: kind, model, parameters, variables, and the templates."""
        return prompts.diff(name, old, new).as_dict()

    @router.post(
        "/api/prompts/{name}/render",
        operation_id="render_prompt",
        response_model=PromptRenderOut,
        responses=error_responses(
            400,
            404,
            descriptions={
                400: "A variable is missing, undeclared or of the wrong type (`param` names it), "
                "or the body does not match the schema.",
                **_NO_VERSION,
            },
        ),
    )
    def render(
        _: Admin, name: NamePath, body: Annotated[PromptRenderIn, Body()] = _NOTHING_TO_RENDER
    ) -> dict[str, Any]:
        """Render a version with variables: the messages (chat) or the text (text) a request would send."""
        with _answers():
            found = _resolve(prompts, name, body.label, body.version)
            version, rendered = prompts.render(Reference(name, version=found.number), body.variables)
        return {
            "name": version.name,
            "version": version.number,
            "kind": version.content.kind,
            "messages": rendered.messages,
            "text": rendered.text,
            "model": version.content.model,
            "parameters": version.content.parameters,
        }


def _writing_routes(router: APIRouter, prompts: PromptService) -> None:
    created_links = {
        "GetPrompt": link("get_prompt", name="$response.body#/name", version="$response.body#/version"),
        "GetVersion": link(
            "get_prompt_version", name="$response.body#/name", number="$response.body#/version"
        ),
        "ListVersions": link("list_prompt_versions", name="$response.body#/name"),
        "ListLabels": link("list_prompt_labels", name="$response.body#/name"),
        "LabelHistory": link("prompt_label_history", name="$response.body#/name"),
        "Diff": link(
            "diff_prompt_versions",
            name="$response.body#/name",
            **{"from": "$response.body#/version", "to": "$response.body#/version"},
        ),
        "SetLabel": {
            **link("set_prompt_label", name="$response.body#/name"),
            "requestBody": {"version": "$response.body#/version"},
        },
    }

    @router.post(
        "/api/prompts",
        operation_id="create_prompt_version",
        response_model=PromptPushOut,
        status_code=201,
        responses={
            201: {"description": "A new version was stored.", "links": created_links},
            200: {
                "model": PromptPushOut,
                "description": "A version with this content existed: nothing new stored (labels may move).",
            },
            **error_responses(
                400,
                409,
                descriptions={
                    400: "Invalid prompt: the body does not match the schema, a template does not parse "
                    "(the message names the line) or uses an undeclared variable.",
                    409: "The prompt exists with another kind (text or chat).",
                },
            ),
        },
    )
    def create_version(principal: Admin, body: PromptIn, response: Response) -> dict[str, Any]:
        """Store a version from a body shaped like a prompt file; the same content is the same version."""
        with _answers():
            spec = _prompt_file(body)
            result = prompts.push_file(spec, author=_author(body.author, principal))
        if not result.created:
            response.status_code = 200
        return {
            **_version_out(result.version),
            "created": result.created,
            "labels_moved": list(result.labels_moved),
        }


def _label_routes(router: APIRouter, prompts: PromptService) -> None:
    at_label = {
        "GetLabel": link("get_prompt_label", name="$request.path.name", label="$request.path.label"),
        "GetPrompt": link("get_prompt", name="$request.path.name", label="$request.path.label"),
        "LabelHistory": link("prompt_label_history", name="$request.path.name", label="$request.path.label"),
    }

    @router.get(
        "/api/prompts/{name}/labels",
        operation_id="list_prompt_labels",
        response_model=PromptLabelListOut,
        responses=error_responses(400, 404, descriptions=_NO_PROMPT),
    )
    def list_labels(_: Admin, name: NamePath) -> dict[str, Any]:
        """Where each label of a prompt points, who moved it last and when."""
        return {"data": prompts.labels(name)}

    @router.get(
        "/api/prompts/{name}/labels/{label}",
        operation_id="get_prompt_label",
        response_model=PromptLabelOut,
        responses=error_responses(400, 404, descriptions=_NO_LABEL),
    )
    def get_label(_: Admin, name: NamePath, label: LabelPath) -> dict[str, Any]:
        """Where one label points."""
        return prompts.label(name, label)

    @router.put(
        "/api/prompts/{name}/labels/{label}",
        operation_id="set_prompt_label",
        response_model=PromptLabelMoveOut,
        responses={
            200: {
                "links": {
                    **at_label,
                    "Rollback": link(
                        "rollback_prompt_label", name="$request.path.name", label="$request.path.label"
                    ),
                    "RemoveLabel": link(
                        "remove_prompt_label", name="$request.path.name", label="$request.path.label"
                    ),
                }
            },
            **error_responses(400, 404, descriptions={404: "No such prompt or version."}),
        },
    )
    def set_label(principal: Admin, name: NamePath, label: LabelPath, body: PromptLabelIn) -> dict[str, Any]:
        """Point a label at a version: a deploy (kept in the label's history)."""
        author = _author(body.author, principal)
        event = prompts.set_label(name, label, body.version, author=author)
        if event is not None:
            return {**event, "moved": True}
        current = prompts.label(name, label)
        return {
            "label": label,
            "action": "deploy",
            "from_version": current["version"],
            "to_version": current["version"],
            "moved": False,
            "author": current["updated_by"],
            "created_at": current["updated_at"],
        }

    @router.delete(
        "/api/prompts/{name}/labels/{label}",
        operation_id="remove_prompt_label",
        response_model=PromptLabelMoveOut,
        responses=error_responses(400, 404, descriptions=_NO_LABEL),
    )
    def remove_label(
        principal: Admin,
        name: NamePath,
        label: LabelPath,
        author: Annotated[
            str | None,
            Query(max_length=200, pattern=NO_NUL, description="Who removes it (default: the key's name)."),
        ] = None,
    ) -> dict[str, Any]:
        """Remove a label (requests for it get 404 from now on); kept in its history."""
        return {**prompts.remove_label(name, label, author=_author(author, principal)), "moved": True}

    @router.post(
        "/api/prompts/{name}/labels/{label}/rollback",
        operation_id="rollback_prompt_label",
        response_model=PromptLabelMoveOut,
        responses={
            **error_responses(
                400,
                404,
                409,
                descriptions={**_NO_LABEL, 409: "The label has no earlier version to go back to."},
            ),
        },
    )
    def rollback(
        principal: Admin,
        name: NamePath,
        label: RollbackLabelPath,
        body: Annotated[PromptAuthorIn, Body()] = _NO_AUTHOR,
    ) -> dict[str, Any]:
        """Move a label back to the version it pointed at before its last deploy (step by step)."""
        with _answers():
            event = prompts.rollback(name, label, author=_author(body.author, principal))
        return {**event, "moved": True}

    @router.get(
        "/api/prompts/{name}/history",
        operation_id="prompt_label_history",
        response_model=PromptHistoryOut,
        responses=error_responses(400, 404, descriptions=_NO_PROMPT),
    )
    def history(
        _: Admin,
        name: NamePath,
        label: Annotated[
            str | None, Query(pattern=LABEL_SCHEMA_PATTERN, max_length=100, description="Only this label.")
        ] = None,
    ) -> dict[str, Any]:
        """Every label move of a prompt (deploys, rollbacks, removals) with who and when, oldest first."""
        return {"data": prompts.history(name, label)}

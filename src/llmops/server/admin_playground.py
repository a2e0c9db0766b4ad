"""POST /api/playground: one conversation against several models and parameter sets, side by side.

Runs on this server's own gateway (:mod:`llmops.prompts.playground`), so every cell is traced like
any request, with the caller's key. The body is bounded so that a run always ends: at most
``MAX_MODELS`` models × ``MAX_PARAMETER_SETS`` parameter sets (32 cells).
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from llmops.prompts.playground import MAX_CELLS, MAX_CONCURRENCY, from_messages, from_prompt, run_playground
from llmops.prompts.services import Reference
from llmops.prompts.spec import LABEL_PATTERN, NAME_PATTERN
from llmops.server.admin_auth import Caller
from llmops.server.admin_schema import NO_NUL, error_responses
from llmops.server.team_views import TeamPrompts
from llmops.services import Services

MAX_MODELS = 4
MAX_PARAMETER_SETS = MAX_CELLS // MAX_MODELS
MAX_MESSAGES = 32
MAX_VARIABLES = 100
# NAME, NAME@LABEL or NAME#VERSION (a label made only of digits names no label: 404, not 400)
REFERENCE_PATTERN = rf"^{NAME_PATTERN[1:-1]}(?:@{LABEL_PATTERN[1:-1]}|#[0-9]{{1,9}})?$"
_REFERENCE = re.compile(r"^(?P<name>[^@#]+)(?:@(?P<label>[^@#]+)|#(?P<version>[0-9]+))?$")

# Exactly one of: a prompt (with variables), or messages with at least one model.
_ONE_SOURCE: dict[str, JsonValue] = {
    "oneOf": [
        {"required": ["prompt"], "not": {"required": ["messages"]}},
        {
            "required": ["messages", "models"],
            "properties": {"models": {"minItems": 1}},
            "not": {"anyOf": [{"required": ["prompt"]}, {"required": ["variables"]}]},
        },
    ]
}

ModelName = Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]


def _whole_number(value: Any) -> Any:
    """JSON Schema counts 6.0 as an integer; strict mode would refuse it (and lax mode would take "6")."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


_WholeNumber = BeforeValidator(_whole_number)
MaxTokens = Annotated[int, Field(ge=1, le=1_000_000), _WholeNumber]
Seed = Annotated[int, Field(ge=-(2**53), le=2**53), _WholeNumber]
Concurrency = Annotated[int, Field(ge=1, le=MAX_CONCURRENCY), _WholeNumber]


class ParameterSetIn(BaseModel):
    """Request parameters of one column; unset ones come from the prompt's defaults."""

    model_config = ConfigDict(strict=True, extra="forbid")

    temperature: float | None = Field(default=None, ge=0, le=2, allow_inf_nan=False)
    top_p: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    max_tokens: MaxTokens | None = None
    seed: Seed | None = None

    def values(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class MessageIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    role: Literal["system", "developer", "user", "assistant"]
    content: str = Field(max_length=32_000, pattern=NO_NUL)


PromptReference = Annotated[str, Field(max_length=320, pattern=REFERENCE_PATTERN)]
Variables = Annotated[dict[str, JsonValue], Field(max_length=MAX_VARIABLES)]
Messages = Annotated[list[MessageIn], Field(min_length=1, max_length=MAX_MESSAGES)]


def _no_default(schema: dict[str, JsonValue]) -> None:
    schema.pop("default", None)


class PlaygroundIn(BaseModel):
    """A prompt version (with variables), or raw messages with the models to ask."""

    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra=_ONE_SOURCE)

    # `| SkipJsonSchema[None]` with no default in the schema: leave it out, but never send null
    prompt: PromptReference | SkipJsonSchema[None] = Field(
        default=None,
        description="NAME (the `production` label, else the latest version), NAME@LABEL or NAME#VERSION.",
        json_schema_extra=_no_default,
    )
    variables: Variables | SkipJsonSchema[None] = Field(
        default=None, description="The prompt's variables.", json_schema_extra=_no_default
    )
    messages: Messages | SkipJsonSchema[None] = Field(
        default=None, description="Raw messages instead of a prompt.", json_schema_extra=_no_default
    )
    models: list[ModelName] = Field(
        default_factory=list,
        max_length=MAX_MODELS,
        description="Models to ask (default: the prompt's model). Duplicates are asked once.",
    )
    parameters: list[ParameterSetIn] = Field(
        default_factory=list,
        max_length=MAX_PARAMETER_SETS,
        description="Parameter sets, one column each (default: the prompt's parameters alone).",
    )
    max_concurrency: Concurrency = Field(default=4, description="Cells asked at once.")
    cache: bool = Field(
        default=False, description="Let the response cache answer (by default every cell asks its model)."
    )

    @field_validator("prompt", "variables", "messages", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("leave it out rather than null")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> PlaygroundIn:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give either prompt or messages")
        if self.messages is not None and self.variables is not None:
            raise ValueError("variables go with a prompt, not with messages")
        if self.messages is not None and not self.models:
            raise ValueError("models: name at least one model to ask the messages")
        return self


class PromptRefOut(BaseModel):
    name: str
    version: int
    label: str | None = Field(description="The label the version was resolved from, if any.")


class MessageOut(BaseModel):
    role: str
    content: str


class CellOut(BaseModel):
    model: str
    parameters: dict[str, Any] = Field(
        description="Sent with the request: the prompt's defaults and the set."
    )
    status: Literal["ok", "error"]
    status_code: int = Field(description="What the gateway answered for this cell (200 when it answered).")
    text: str | None = Field(description="The answer.")
    finish_reason: str | None
    latency_ms: float
    prompt_tokens: int | None
    completion_tokens: int | None
    cost: float | None = Field(description="USD, from the deployment's prices.")
    error: str | None = Field(description="Why the cell failed; the other cells are unaffected.")
    trace_id: str = Field(description="The trace of this cell's request (stored by the background writer).")


class PlaygroundOut(BaseModel):
    id: str = Field(description="The run id: `attributes.playground` of each cell's trace.")
    prompt: PromptRefOut | None = Field(description="The prompt version rendered, when one was given.")
    endpoint: Literal["chat.completions", "completions"]
    messages: list[MessageOut] | None = Field(description="The conversation sent (chat).")
    text: str | None = Field(description="The prompt text sent (text prompts, to the completions endpoint).")
    cells: list[CellOut] = Field(description="Models outer, parameter sets inner.")


def _reference(text: str) -> Reference:
    match = _REFERENCE.match(text)
    if match is None:  # the schema's pattern is stricter, so this is not reached
        raise ValueError(f"not a prompt reference: {text!r}")
    version = match["version"]
    return Reference(match["name"], match["label"], int(version) if version is not None else None)


def playground_routes(services: Services) -> APIRouter:
    router = APIRouter(tags=["playground"])

    @router.post(
        "/api/playground",
        operation_id="run_playground",
        response_model=PlaygroundOut,
        responses=error_responses(
            400,
            404,
            descriptions={
                400: "Invalid body, or the prompt's variables do not render (the message says which).",
                404: "No prompt, version or label of that name (among the caller's team's prompts).",
            },
        ),
    )
    async def run(principal: Caller, prompts: TeamPrompts, body: PlaygroundIn) -> dict[str, Any]:
        """Ask every model with every parameter set, concurrently; each cell is traced.

        A cell that fails (unknown model, upstream error) carries its error; the others still answer.
        """
        if body.prompt is not None:
            reference = _reference(body.prompt)
            conversation = await asyncio.to_thread(from_prompt, prompts, reference, body.variables or {})
        else:
            conversation = from_messages([message.model_dump() for message in body.messages or []])
        result = await run_playground(
            services.gateway,
            conversation,
            body.models,
            [parameters.values() for parameters in body.parameters],
            max_concurrency=body.max_concurrency,
            principal=principal,
            use_cache=body.cache,
        )
        return result.as_dict()

    return router

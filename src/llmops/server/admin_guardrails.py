"""Admin routes of guardrails (/api/guardrails): list, add, replace, delete rules, and try them on a text.

Rules of llmops.yaml are listed (``source: config``) but changed only in the file; rules added here
are stored in the database and reach every replica within ``guardrail_refresh_seconds`` (this one
at once). ``POST /api/guardrail-checks`` shows what each rule in force would decide about a text.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from llmops.gateway.guarding import evaluate
from llmops.guardrails.config import NAME_PATTERN, GuardrailConfig
from llmops.server.admin_auth import Caller, actor_of
from llmops.server.admin_schema import NO_NUL, error_responses, link
from llmops.server.audit_recording import mark_audited
from llmops.services import Services, guardrail_registry

NamePath = Annotated[
    str,
    Path(description="Letters, digits, '.', '_' or '-' (1 to 100), starting with a letter or digit.",
         pattern=NAME_PATTERN),
]  # fmt: skip
_NO_RULE = {404: "No guardrail has this name."}
MAX_TEST_CHARS = 100_000


class GuardrailOut(GuardrailConfig):
    source: Literal["config", "api"] = Field(description="config: llmops.yaml (read-only here); api: stored.")
    revision: int | None = Field(description="Grows with every change of a stored rule; null for config.")
    updated_at: datetime | None


class GuardrailListOut(BaseModel):
    data: list[GuardrailOut]
    types: list[str] = Field(description="The guardrail types this server knows.")


class GuardrailTestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=MAX_TEST_CHARS, pattern=NO_NUL, description="The prompt or answer to check.")
    model: str = Field(
        default="", max_length=200, pattern=NO_NUL, description="The model whose rules apply (default: any)."
    )
    stage: Literal["input", "output"] = "input"


class DecisionOut(BaseModel):
    guardrail: str
    type: str
    stage: str
    action: str = Field(description="pass, or what the rule does when it triggers: block, redact, ...")
    score: float
    ms: float
    reason: str | None = None
    mode: str | None = None
    details: dict[str, Any] | None = None


class GuardrailTestOut(BaseModel):
    decisions: list[DecisionOut]
    blocked: bool = Field(description="Whether a rule whose action is block triggered.")


def guardrail_routes(services: Services) -> APIRouter:
    router = APIRouter(tags=["guardrails"])
    rules = services.store.guardrails

    @router.get(
        "/api/guardrails",
        operation_id="list_guardrails",
        response_model=GuardrailListOut,
        responses={
            200: {"links": {"GetGuardrail": link("get_guardrail", name="$response.body#/data/0/name")}},
            **error_responses(),
        },
    )
    def list_guardrails(_: Caller) -> dict[str, Any]:
        """Every rule: those of llmops.yaml first, then those added through this API."""
        return {
            "data": [view.as_dict() for view in rules.all()],
            "types": guardrail_registry(services.settings).names(),
        }

    @router.post(
        "/api/guardrails",
        operation_id="create_guardrail",
        status_code=201,
        response_model=GuardrailOut,
        responses=error_responses(400, 409, descriptions={409: "A guardrail has this name already."}),
    )
    def create_guardrail(principal: Caller, request: Request, body: GuardrailConfig) -> dict[str, Any]:
        """Add a rule; it is checked (its type built with its parameters) before it is stored."""
        view = rules.create(body, actor_of(request, principal))
        mark_audited(request)
        return view.as_dict()

    @router.get(
        "/api/guardrails/{name}",
        operation_id="get_guardrail",
        response_model=GuardrailOut,
        responses=error_responses(400, 404, descriptions=_NO_RULE),
    )
    def get_guardrail(_: Caller, name: NamePath) -> dict[str, Any]:
        """One rule."""
        return rules.get(name).as_dict()

    @router.put(
        "/api/guardrails/{name}",
        operation_id="replace_guardrail",
        response_model=GuardrailOut,
        responses=error_responses(
            400, 404, 409, descriptions={**_NO_RULE, 409: "The rule is declared in llmops.yaml."}
        ),
    )
    def replace_guardrail(
        principal: Caller, request: Request, name: NamePath, body: GuardrailConfig
    ) -> dict[str, Any]:
        """Replace a stored rule (the body's name must be the path's)."""
        view = rules.replace(name, body, actor_of(request, principal))
        mark_audited(request)
        return view.as_dict()

    @router.delete(
        "/api/guardrails/{name}",
        operation_id="delete_guardrail",
        status_code=204,
        responses=error_responses(
            400, 404, 409, descriptions={**_NO_RULE, 409: "The rule is declared in llmops.yaml."}
        ),
    )
    def delete_guardrail(principal: Caller, request: Request, name: NamePath) -> None:
        """Delete a stored rule."""
        rules.delete(name, actor_of(request, principal))
        mark_audited(request)

    @router.post(
        "/api/guardrail-checks",
        operation_id="test_guardrails",
        response_model=GuardrailTestOut,
        responses=error_responses(400),
    )
    async def test_guardrails(principal: Caller, body: GuardrailTestIn) -> dict[str, Any]:
        """What each rule in force for the model (and the caller's key and team) decides about a
        text, and why; every rule runs, whatever the others decided. Nothing is traced."""
        step = services.gateway.guardrails
        decisions = await evaluate(step, body.text, body.stage, body.model, principal) if step else []
        return {
            "decisions": [decision.as_dict() for decision in decisions],
            "blocked": any(decision.action == "block" for decision in decisions),
        }

    return router

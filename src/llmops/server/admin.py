"""The admin REST API (/api/*): traces, feedback, keys. FastAPI over the same service functions as the CLI.

Every route needs an admin-scope key (or the open loopback mode). Errors use OpenAI's shape,
like the /v1 routes, so one client-side error handler fits both; each route declares in the
OpenAPI schema every status it can answer (see :mod:`llmops.server.admin_schema`).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, JsonValue
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from llmops import __version__
from llmops.errors import UserError
from llmops.gateway.errors import GatewayError
from llmops.gateway.keys import InvalidKeyRequest, KeyConflict, KeyNotFound
from llmops.prompts.services import InvalidPrompt, PromptNotFound
from llmops.server.admin_access import key_routes, team_routes
from llmops.server.admin_alerts import alert_routes
from llmops.server.admin_annotation import annotation_routes
from llmops.server.admin_audit import audit_routes
from llmops.server.admin_auth import Caller, team_scope
from llmops.server.admin_credentials import credential_routes
from llmops.server.admin_datasets import dataset_routes
from llmops.server.admin_deployments import deployment_routes
from llmops.server.admin_drift import drift_routes
from llmops.server.admin_evals import eval_routes
from llmops.server.admin_experiments import experiment_routes
from llmops.server.admin_finetune import finetune_routes
from llmops.server.admin_gateway import gateway_routes
from llmops.server.admin_guardrails import guardrail_routes
from llmops.server.admin_jobs import job_routes
from llmops.server.admin_pii import pii_routes
from llmops.server.admin_playground import playground_routes
from llmops.server.admin_prompts import prompt_routes
from llmops.server.admin_registry import registry_routes
from llmops.server.admin_schema import NO_NUL, declare_no_422, error_responses, link
from llmops.server.admin_stats import stats_routes
from llmops.server.audit_recording import AuditMiddleware
from llmops.services import Services
from llmops.tracing.service import (
    DURATION_PATTERN,
    ID_PATTERN,
    MAX_PAGE_SIZE,
    FeedbackInput,
    InvalidQuery,
    TraceNotFound,
    TraceService,
    UnknownKey,
    parse_since,
)

log = logging.getLogger("llmops.admin")

_HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}

SINCE_SCHEMA: dict[str, JsonValue] = {
    "anyOf": [
        {"type": "string", "pattern": DURATION_PATTERN},
        {"type": "string", "format": "date-time"},
        {"type": "string", "format": "date"},
    ]
}
# The same rule as the service's: a feedback says something (author alone is not a feedback).
_FEEDBACK_SCHEMA: dict[str, JsonValue] = {
    "anyOf": [
        {"required": ["score"], "properties": {"score": {"type": "number"}}},
        {"required": ["thumb"], "properties": {"thumb": {"enum": ["up", "down"]}}},
        {"required": ["label"], "properties": {"label": {"type": "string", "minLength": 1}}},
        {"required": ["comment"], "properties": {"comment": {"type": "string", "minLength": 1}}},
    ]
}


class _FeedbackFields(BaseModel):
    score: float | None = Field(default=None, description="A numeric score, e.g. 0..1 or 1..5.")
    thumb: Literal["up", "down"] | None = Field(default=None, description="Thumbs up or down.")
    label: str | None = Field(default=None, max_length=200, description="A category, e.g. 'hallucination'.")
    comment: str | None = Field(default=None, max_length=10_000)
    author: str | None = Field(default=None, max_length=200, description="Who gave it.")


class FeedbackIn(_FeedbackFields):
    """At least one of score, thumb, a non-empty label or a non-empty comment."""

    model_config = ConfigDict(strict=True, json_schema_extra=_FEEDBACK_SCHEMA)

    score: float | None = Field(
        default=None, allow_inf_nan=False, description="A numeric score, e.g. 0..1 or 1..5."
    )
    label: str | None = Field(
        default=None, max_length=200, pattern=NO_NUL, description="A category, e.g. 'hallucination'."
    )
    comment: str | None = Field(default=None, max_length=10_000, pattern=NO_NUL)
    author: str | None = Field(default=None, max_length=200, pattern=NO_NUL, description="Who gave it.")


class FeedbackOut(_FeedbackFields):
    id: str
    trace_id: str
    created_at: datetime


class TraceSummary(BaseModel):
    id: str
    started_at: datetime
    endpoint: str
    api_key_id: str | None
    requested_model: str
    provider: str | None
    upstream_model: str | None
    deployment: str | None = Field(
        description="The deployment of the model that answered (or was last tried)."
    )
    cache_status: str | None = Field(
        description="hit, semantic-hit or miss; null when the model has no cache."
    )
    prompt_name: str | None = Field(default=None, description="The prompt the request named, if any.")
    prompt_version: int | None = Field(default=None, description="The prompt version rendered.")
    prompt_label: str | None = Field(default=None, description="The label the version was resolved from.")
    experiment: str | None = Field(default=None, description="The experiment the request took part in.")
    variant: str | None = Field(default=None, description="The experiment variant it was assigned.")
    stream: bool
    status: str
    status_code: int
    error_type: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost: float | None
    latency_ms: float
    ttft_ms: float | None
    guardrail: str | None = Field(
        default=None,
        description="The guardrails that triggered, as `|rule:action|...`; null when none did "
        "(every decision is in `attributes.guardrails`).",
    )


class TraceNode(BaseModel):
    """A trace or an ingested span of an OpenTelemetry trace, with those whose parent it is."""

    kind: Literal["trace", "span"]
    trace_id: str | None = Field(description="The llmops trace id (null for a span, not a model call).")
    span_id: str
    parent_span_id: str | None
    name: str
    service: str | None
    started_at: datetime
    duration_ms: float
    status: str = Field(description="ok or error; spans also unset.")
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost: float | None
    current: bool = Field(description="This is the trace asked for.")
    children: list[TraceNode]


class TraceDetail(TraceSummary):
    ended_at: datetime
    error_message: str | None
    request: dict[str, Any] | None
    response_text: str | None
    finish_reason: str | None
    usage_source: str | None
    attributes: dict[str, Any] | None
    feedback: list[FeedbackOut]
    otel_trace_id: str | None = Field(
        default=None, description="The OpenTelemetry trace it belongs to (the caller's `traceparent`)."
    )
    otel_span_id: str | None = None
    otel_parent_span_id: str | None = None
    tree: list[TraceNode] = Field(
        default_factory=list,
        description="The traces and spans sharing its OpenTelemetry trace id, nested by parent (the roots).",
    )


class TracePageOut(BaseModel):
    data: list[TraceSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next (older) page.")


def _error(
    status: int,
    message: str,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The same OpenAI-shaped body as the /v1 routes, from the one place that builds it."""
    return Response(
        GatewayError(status, message, param=param, code=code).body(),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _allowed_methods(app: FastAPI, path: str) -> str | None:
    """The methods the schema declares for this path (Starlette names only its first route's)."""
    for template, operations in app.openapi()["paths"].items():
        if compile_path(template)[0].match(path):
            return ", ".join(sorted(method.upper() for method in operations if method in _HTTP_METHODS))
    return None


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def gateway_error(_: Request, exc: GatewayError) -> Response:
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in exc.headers}
        if exc.status == 401:
            headers.setdefault("www-authenticate", "Bearer")
        return Response(exc.body(), status_code=exc.status, media_type="application/json", headers=headers)

    @app.exception_handler(InvalidQuery)
    @app.exception_handler(InvalidKeyRequest)
    async def invalid(_: Request, exc: Exception) -> Response:
        return _error(400, str(exc))

    @app.exception_handler(UnknownKey)
    @app.exception_handler(KeyNotFound)
    async def key_not_found(_: Request, exc: Exception) -> Response:
        return _error(404, str(exc), param="key", code="key_not_found")

    @app.exception_handler(KeyConflict)
    async def key_conflict(_: Request, exc: KeyConflict) -> Response:
        return _error(409, str(exc), code="conflict")

    @app.exception_handler(InvalidPrompt)
    async def invalid_prompt(_: Request, exc: InvalidPrompt) -> Response:
        return _error(400, str(exc), param=exc.param)

    @app.exception_handler(PromptNotFound)
    async def prompt_not_found(_: Request, exc: PromptNotFound) -> Response:
        return _error(404, str(exc.args[0] if exc.args else exc), code="not_found")

    @app.exception_handler(UserError)
    async def user_error(_: Request, exc: UserError) -> Response:
        return _error(exc.status, exc.message, param=exc.param, code=exc.code)

    @app.exception_handler(TraceNotFound)
    async def not_found(_: Request, exc: TraceNotFound) -> Response:
        return _error(404, str(exc))

    @app.exception_handler(RequestValidationError)
    async def validation(_: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            return _error(400, f"body: {first['msg']}", param="body")
        where = ".".join(str(part) for part in first["loc"] if part != "body") or "body"
        return _error(400, f"{where}: {first['msg']}", param=where)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unexpected error in the admin API", exc_info=exc)
        return _error(500, "internal error; see the server log")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        allowed = _allowed_methods(request.app, request.scope["path"]) if exc.status_code == 405 else None
        if allowed:
            headers["Allow"] = allowed
        return _error(exc.status_code, str(exc.detail), headers=headers)


def create_admin_app(services: Services) -> FastAPI:
    app = FastAPI(
        title="llmops admin API", version=__version__, docs_url="/api/docs", openapi_url="/api/openapi.json"
    )
    app.state.services = services
    _install_error_handlers(app)
    declare_no_422(app)
    app.include_router(gateway_routes())
    app.include_router(_trace_routes(services.store.traces))
    app.include_router(key_routes(services))
    app.include_router(team_routes(services))
    app.include_router(credential_routes(services))
    app.include_router(guardrail_routes(services))
    app.include_router(alert_routes(services))
    app.include_router(stats_routes(services))
    app.include_router(drift_routes(services))
    app.include_router(audit_routes(services))
    app.include_router(prompt_routes(services))
    app.include_router(experiment_routes(services))
    app.include_router(playground_routes(services))
    app.include_router(dataset_routes(services))
    app.include_router(job_routes(services))
    app.include_router(eval_routes(services))
    app.include_router(finetune_routes(services))
    app.include_router(pii_routes(services))
    app.include_router(annotation_routes(services))
    app.include_router(registry_routes(services))
    app.include_router(deployment_routes(services))
    app.add_middleware(AuditMiddleware, audit=services.store.audit)
    return app


_NO_TRACE = {404: "No trace has this id (another team's trace is not found either)."}


def _trace_routes(traces: TraceService) -> APIRouter:
    router = APIRouter(tags=["traces"])
    read_trace = {
        "GetTrace": link("get_trace", trace_id="$response.body#/data/0/id"),
        "AddFeedback": link("add_feedback", trace_id="$response.body#/data/0/id"),
    }

    @router.get(
        "/api/traces",
        operation_id="list_traces",
        response_model=TracePageOut,
        responses={
            200: {"links": read_trace},
            **error_responses(400, 404, descriptions={404: "`key` names no API key."}),
        },
    )
    def list_traces(
        principal: Caller,
        model: Annotated[str | None, Query(description="The model as requested", pattern=NO_NUL)] = None,
        status: Literal["ok", "error"] | None = None,
        since: Annotated[
            str | None,
            Query(
                description="30m, 2h, 7d (ago), an ISO 8601 date or date-time (UTC when it has no offset)",
                json_schema_extra=SINCE_SCHEMA,
            ),
        ] = None,
        key: Annotated[
            str | None, Query(description="API key id or name", min_length=1, pattern=NO_NUL)
        ] = None,
        guardrail: Annotated[
            str | None,
            Query(description="Only requests on which this guardrail (rule name) triggered", pattern=NO_NUL),
        ] = None,
        guardrail_action: Annotated[
            Literal["block", "redact", "redact_trace", "flag"] | None,
            Query(description="Only requests on which a guardrail took this action"),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
        cursor: Annotated[
            str | None, Query(description="`next_cursor` of the previous page", pattern=ID_PATTERN)
        ] = None,
    ) -> dict[str, Any]:
        """Traces, newest first, a page at a time (a team's key: the traces of its team's keys)."""
        page = traces.list(
            model=model,
            status=status,
            since=parse_since(since) if since is not None else None,
            key=key,
            guardrail=guardrail,
            guardrail_action=guardrail_action,
            limit=limit,
            cursor=cursor,
            team=team_scope(principal),
        )
        return {"data": page.items, "next_cursor": page.next_cursor}

    @router.get(
        "/api/traces/{trace_id}",
        operation_id="get_trace",
        response_model=TraceDetail,
        responses=error_responses(400, 404, descriptions=_NO_TRACE),
    )
    def get_trace(principal: Caller, trace_id: str) -> dict[str, Any]:
        """One trace: request, response, usage, timing, its feedback and its OpenTelemetry tree."""
        return traces.get(trace_id, team=team_scope(principal))

    @router.post(
        "/api/traces/{trace_id}/feedback",
        operation_id="add_feedback",
        response_model=FeedbackOut,
        status_code=201,
        responses={
            201: {"links": {"GetTrace": link("get_trace", trace_id="$response.body#/trace_id")}},
            **error_responses(400, 404, descriptions=_NO_TRACE),
        },
    )
    def add_feedback(principal: Caller, trace_id: str, body: FeedbackIn) -> dict[str, Any]:
        """Attach human feedback to a trace (as `llmops traces feedback` does)."""
        feedback = FeedbackInput(**body.model_dump())
        return traces.add_feedback(trace_id, feedback, team=team_scope(principal))

    return router

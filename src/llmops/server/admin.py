"""The admin REST API (/api/*): traces, feedback, keys. FastAPI over the same service functions as the CLI.

Every route needs an admin-scope key (or the open loopback mode). Errors use OpenAI's shape,
like the /v1 routes, so one client-side error handler fits both.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmops import __version__
from llmops.gateway.errors import GatewayError
from llmops.gateway.keys import InvalidKeyRequest
from llmops.server.admin_auth import Admin
from llmops.server.admin_gateway import gateway_routes
from llmops.services import Services
from llmops.tracing.service import MAX_PAGE_SIZE, FeedbackInput, InvalidQuery, TraceNotFound, parse_since

log = logging.getLogger("llmops.admin")


class FeedbackIn(BaseModel):
    score: float | None = Field(default=None, description="A numeric score, e.g. 0..1 or 1..5.")
    thumb: Literal["up", "down"] | None = Field(default=None, description="Thumbs up or down.")
    label: str | None = Field(default=None, max_length=200, description="A category, e.g. 'hallucination'.")
    comment: str | None = Field(default=None, max_length=10_000)
    author: str | None = Field(default=None, max_length=200, description="Who gave it.")


class FeedbackOut(FeedbackIn):
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
    stream: bool
    status: str
    status_code: int
    error_type: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost: float | None
    latency_ms: float
    ttft_ms: float | None


class TraceDetail(TraceSummary):
    ended_at: datetime
    error_message: str | None
    request: dict[str, Any] | None
    response_text: str | None
    finish_reason: str | None
    usage_source: str | None
    attributes: dict[str, Any] | None
    feedback: list[FeedbackOut]


class TracePageOut(BaseModel):
    data: list[TraceSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next (older) page.")


class KeyOut(BaseModel):
    id: str
    name: str
    scope: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class KeyCreateIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    scope: Literal["inference", "admin"] = "inference"


class KeyCreatedOut(KeyOut):
    secret: str = Field(description="Shown once; only its hash is stored.")


def _error(status: int, message: str, param: str | None = None) -> Response:
    """The same OpenAI-shaped body as the /v1 routes, from the one place that builds it."""
    return Response(
        GatewayError(status, message, param=param).body(), status_code=status, media_type="application/json"
    )


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def gateway_error(_: Request, exc: GatewayError) -> Response:
        return Response(exc.body(), status_code=exc.status, media_type="application/json")

    @app.exception_handler(InvalidQuery)
    @app.exception_handler(InvalidKeyRequest)
    async def invalid(_: Request, exc: Exception) -> Response:
        return _error(400, str(exc))

    @app.exception_handler(TraceNotFound)
    async def not_found(_: Request, exc: TraceNotFound) -> Response:
        return _error(404, str(exc))

    @app.exception_handler(RequestValidationError)
    async def validation(_: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"] if part != "body")
        return _error(400, f"{where}: {first['msg']}", param=where)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unexpected error in the admin API", exc_info=exc)
        return _error(500, "internal error; see the server log")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return _error(exc.status_code, str(exc.detail))


def create_admin_app(services: Services) -> FastAPI:
    app = FastAPI(
        title="llmops admin API", version=__version__, docs_url="/api/docs", openapi_url="/api/openapi.json"
    )
    app.state.services = services
    _install_error_handlers(app)
    app.include_router(gateway_routes())
    traces = services.store.traces
    keys = services.store.keys

    @app.get("/api/traces", response_model=TracePageOut, tags=["traces"])
    def list_traces(
        _: Admin,
        model: str | None = None,
        status: Literal["ok", "error"] | None = None,
        since: Annotated[str | None, Query(description="30m, 2h, 7d or an ISO 8601 time")] = None,
        key: Annotated[str | None, Query(description="API key id or name")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        page = traces.list(
            model=model,
            status=status,
            since=parse_since(since) if since else None,
            key=key,
            limit=limit,
            cursor=cursor,
        )
        return {"data": page.items, "next_cursor": page.next_cursor}

    @app.get("/api/traces/{trace_id}", response_model=TraceDetail, tags=["traces"])
    def get_trace(_: Admin, trace_id: str) -> dict[str, Any]:
        return traces.get(trace_id)

    @app.post("/api/traces/{trace_id}/feedback", response_model=FeedbackOut, status_code=201, tags=["traces"])
    def add_feedback(_: Admin, trace_id: str, body: FeedbackIn) -> dict[str, Any]:
        return traces.add_feedback(trace_id, FeedbackInput(**body.model_dump()))

    @app.get("/api/keys", response_model=list[KeyOut], tags=["keys"])
    def list_keys(_: Admin, include_revoked: bool = False) -> list[Any]:
        return keys.list(include_revoked)

    @app.post("/api/keys", response_model=KeyCreatedOut, status_code=201, tags=["keys"])
    def create_key(_: Admin, body: KeyCreateIn) -> dict[str, Any]:
        created = keys.create(body.name, body.scope)
        return {**_row_fields(created.row), "secret": created.secret}

    @app.delete("/api/keys/{key}", response_model=KeyOut, tags=["keys"])
    def revoke_key(_: Admin, key: str) -> Any:
        return keys.revoke(key)

    return app


def _row_fields(row: Any) -> dict[str, Any]:
    return {name: getattr(row, name) for name in KeyOut.model_fields}

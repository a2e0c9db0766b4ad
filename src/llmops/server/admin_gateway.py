"""Admin routes of the gateway itself: live model and deployment status, and config reload."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from llmops.gateway.errors import GatewayError
from llmops.gateway.reload import ReloadError
from llmops.server.admin_auth import Caller, services_of
from llmops.server.admin_schema import error_responses


class DeploymentStatusOut(BaseModel):
    id: str
    provider: str
    base_url: str | None
    upstream_model: str
    weight: float
    priority: int
    context_window: int | None
    state: Literal["closed", "half-open", "open"] = Field(description="Circuit breaker state.")
    consecutive_failures: int
    error_rate: float = Field(description="Share of failed calls over the breaker's window.")
    retry_in_seconds: float = Field(description="Time until an open breaker lets a probe through.")
    times_opened: int
    in_flight: int
    rpm: int | None = Field(description="Declared requests-per-minute capacity.")
    tpm: int | None = Field(description="Declared tokens-per-minute capacity.")
    requests_last_minute: float = Field(
        description="Calls in the last minute (sliding estimate, this replica)."
    )
    tokens_last_minute: float = Field(
        description="Tokens in the last minute (sliding estimate, this replica)."
    )
    latency_ms: float | None = Field(description="Moving average of successful calls.")
    calls: int
    failures: int
    last_error: str | None
    ready: bool


class ModelStatusOut(BaseModel):
    name: str
    routing: str
    fallbacks: list[str]
    context_window_fallbacks: list[str]
    cache: str
    deployments: list[DeploymentStatusOut]


class ModelsStatusOut(BaseModel):
    generation: int = Field(description="Increases by one with every successful config reload.")
    data: list[ModelStatusOut]


class ReloadOut(BaseModel):
    status: Literal["reloaded"]
    generation: int
    models: list[str]


def gateway_routes() -> APIRouter:
    router = APIRouter()

    @router.get(
        "/api/models/status",
        operation_id="get_models_status",
        response_model=ModelsStatusOut,
        tags=["models"],
        responses=error_responses(),
    )
    def models_status(_: Caller, request: Request) -> dict[str, Any]:
        """Every model with its deployments: circuit breaker state, load, latency, failures (this replica)."""
        services = services_of(request)
        return {
            "generation": services.reloader.generation,
            "data": [route.status() for route in services.catalog.routes()],
        }

    @router.post(
        "/api/admin/reload",
        operation_id="reload_config",
        response_model=ReloadOut,
        tags=["models"],
        responses=error_responses(
            400, descriptions={400: "The configuration is invalid; the running one stays."}
        ),
    )
    async def reload(_: Caller, request: Request) -> dict[str, Any]:
        """Re-read llmops.yaml and swap the models in (as SIGHUP does); requests under way finish first."""
        services = services_of(request)
        try:
            catalog = await services.reloader.reload()
        except ReloadError as exc:
            raise GatewayError(400, f"config not reloaded: {exc}", code="invalid_config") from exc
        return {
            "status": "reloaded",
            "generation": services.reloader.generation,
            "models": [route.name for route in catalog.routes()],
        }

    return router

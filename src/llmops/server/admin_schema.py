"""What the admin API declares about its errors, so that its OpenAPI schema tells the truth.

Every error answer has OpenAI's body, ``{"error": {"message", "type", "param", "code"}}``, declared
once as the ``ErrorResponse`` component. Each route lists the statuses it can answer through
:func:`error_responses` (401, 403 and 429 always: every route needs a key whose role permits it,
and an address with too many failed attempts is held back). FastAPI's own 422
is removed from the schema, because this app answers validation errors with 400, as OpenAI does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

# A text field may hold anything but NUL, which no Postgres text column can store.
NO_NUL = r"^[^\x00]*$"


class ErrorDetail(BaseModel):
    message: str = Field(description="What went wrong, for a human.")
    type: str = Field(description="e.g. invalid_request_error, authentication_error, not_found_error.")
    param: str | None = Field(description="The parameter at fault, when there is one.")
    code: str | None = Field(description="A machine-readable code, when there is one.")


class ErrorResponse(BaseModel):
    """OpenAI's error shape, the same as on the /v1 routes."""

    error: ErrorDetail


_DESCRIPTIONS = {
    400: "Invalid request: a parameter or the body does not match the schema (the message says which).",
    401: "No API key, or an unknown or revoked one.",
    403: "The API key's role does not grant this route's permission (see docs/teams.md).",
    429: "Too many failed authentications from this address: wait for Retry-After seconds.",
    404: "Not found.",
    409: "Conflicts with the current state.",
}

_AUTH_HEADER = {
    "WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}},
}


def error_responses(*statuses: int, descriptions: Mapping[int, str] | None = None) -> dict[int | str, Any]:
    """``responses=`` for an admin route: 401, 403 and 429 (authentication), plus ``statuses``."""
    notes = {**_DESCRIPTIONS, **(descriptions or {})}
    declared: dict[int | str, Any] = {}
    for status in sorted({*statuses, 401, 403, 429}):
        declared[status] = {"model": ErrorResponse, "description": notes.get(status, "Error.")}
        if status == 401:
            declared[status]["headers"] = _AUTH_HEADER
    return declared


def link(operation_id: str, **parameters: str) -> dict[str, Any]:
    """An OpenAPI link: where a value of this answer can be used next (clients and fuzzers follow them)."""
    return {"operationId": operation_id, "parameters": parameters}


def declare_no_422(app: FastAPI) -> None:
    """Drop the 422 answers FastAPI adds to every route with parameters: this app answers 400 instead."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                if isinstance(operation, dict):
                    operation.get("responses", {}).pop("422", None)
        components = schema.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

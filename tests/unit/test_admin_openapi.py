"""Every admin operation declares the errors it can answer, so a new route without them fails here first.

The schemathesis run (tests/e2e/test_schemathesis.py) proves the declarations against a live server;
this test catches a forgotten ``responses=error_responses(...)`` in a second, without one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter

from llmops.server.admin import create_admin_app
from llmops.server.admin_auth import Caller
from llmops.services import Services, build_services
from llmops.settings import ModelConfig, load_settings

ERROR_BODY = {"$ref": "#/components/schemas/ErrorResponse"}
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    settings = load_settings(
        home=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        models=(ModelConfig(name="e", provider="echo"),),
    )
    services = build_services(settings, open_allowed=True)
    try:
        yield services
    finally:
        services.store.close()


def _operations(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", operation


def undeclared(schema: dict[str, Any]) -> list[str]:
    """What each operation fails to declare: 401/403 always, 400 when it takes any input, no 422."""
    problems = []
    for label, operation in _operations(schema):
        responses = operation.get("responses", {})
        expected = {"401", "403"}
        if operation.get("parameters") or operation.get("requestBody"):
            expected.add("400")
        problems += [f"{label}: no {status}" for status in sorted(expected - set(responses))]
        if "422" in responses:
            problems.append(f"{label}: declares 422, but validation errors are answered with 400")
        for status, response in responses.items():
            body = response.get("content", {}).get("application/json", {}).get("schema")
            if status.startswith("4") and body != ERROR_BODY:
                problems.append(f"{label}: {status} without the ErrorResponse body")
        if not operation.get("security"):
            problems.append(f"{label}: no security requirement")
    return problems


def test_every_operation_declares_its_errors(services: Services) -> None:
    schema = create_admin_app(services).openapi()
    assert len(list(_operations(schema))) >= 8
    assert undeclared(schema) == []


def test_the_error_body_is_openai_shaped(services: Services) -> None:
    components = create_admin_app(services).openapi()["components"]["schemas"]
    assert components["ErrorResponse"]["required"] == ["error"]
    detail = components["ErrorDetail"]
    assert set(detail["properties"]) == set(detail["required"]) == {"message", "type", "param", "code"}
    assert "HTTPValidationError" not in components


def test_a_route_without_declarations_is_caught(services: Services) -> None:
    app = create_admin_app(services)
    careless = APIRouter()

    @careless.get("/api/careless/{thing}")
    def careless_route(_: Caller, thing: str) -> dict[str, str]:
        return {"thing": thing}

    app.include_router(careless)
    app.openapi_schema = None
    assert undeclared(app.openapi()) == [
        "GET /api/careless/{thing}: no 400",
        "GET /api/careless/{thing}: no 401",
        "GET /api/careless/{thing}: no 403",
    ]

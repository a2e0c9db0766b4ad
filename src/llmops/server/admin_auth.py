"""Who may use the admin API: a dependency every /api route declares."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from llmops.gateway.auth import Principal, require_admin
from llmops.services import Services

# Declares the scheme in the OpenAPI schema; the key itself is checked by the Authenticator below.
_BEARER = HTTPBearer(
    scheme_name="AdminKey",
    description="An API key with scope 'admin': `Authorization: Bearer <key>`.",
    auto_error=False,
)


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def _any_key(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)]
) -> Principal:
    authorization = request.headers.get("authorization")
    return await services_of(request).authenticator.authenticate(
        authorization.encode("latin-1") if authorization else None
    )


AnyKey = Annotated[Principal, Depends(_any_key)]
"""Any valid key, admin or inference (annotators: their key's name is who answers)."""


async def _admin(principal: AnyKey) -> Principal:
    require_admin(principal)
    return principal


Admin = Annotated[Principal, Depends(_admin)]

"""Who may use the admin API: a dependency every /api route declares."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from llmops.gateway.auth import Principal, require_admin
from llmops.services import Services


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def _admin(request: Request) -> Principal:
    authorization = request.headers.get("authorization")
    principal = await services_of(request).authenticator.authenticate(
        authorization.encode("latin-1") if authorization else None
    )
    require_admin(principal)
    return principal


Admin = Annotated[Principal, Depends(_admin)]

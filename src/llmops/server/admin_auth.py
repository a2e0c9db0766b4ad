"""Who may use the admin API: one dependency every /api route declares.

:data:`Caller` authenticates the key, looks up the permission the route needs in
:mod:`llmops.server.permissions` (by its ``operation_id``) and checks the key's role grants it;
the caller is left on ``request.state.principal`` for the audit log. What a caller sees within a
route (its own team's things only) is decided by the route with :func:`team_scope`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from llmops.audit.actor import Actor
from llmops.gateway.auth import Principal
from llmops.gateway.errors import GatewayError
from llmops.server.permissions import permission_of
from llmops.services import Services
from llmops.store.scope import ALL_TEAMS, TeamScope
from llmops.teams.roles import permits

# Declares the scheme in the OpenAPI schema; the key itself is checked by the Authenticator below.
_BEARER = HTTPBearer(
    scheme_name="AdminKey",
    description="An API key whose role grants the route's permission: `Authorization: Bearer <key>`.",
    auto_error=False,
)


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def _authorized(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)]
) -> Principal:
    authorization = request.headers.get("authorization")
    principal = await services_of(request).authenticator.authenticate(
        authorization.encode("latin-1") if authorization else None,
        request.client.host if request.client else None,
    )
    route = request.scope.get("route")
    operation = (route.operation_id or route.unique_id) if isinstance(route, APIRoute) else ""
    permission = permission_of(operation)
    if not permits(principal.role, permission):
        raise GatewayError(
            403,
            f"the API key {principal.name!r} has role {principal.role!r}, "
            f"which does not grant {permission!r}",
            error_type="permission_error",
            code="permission_denied",
        )
    request.state.principal = principal
    return principal


Caller = Annotated[Principal, Depends(_authorized)]
"""The authenticated caller, whose role grants this route's permission."""


def team_scope(principal: Principal) -> TeamScope:
    """Whose things the caller sees: :data:`ALL_TEAMS` for an admin, else its team (None: no team)."""
    return ALL_TEAMS if principal.is_admin else principal.team_id


def actor_of(request: Request, principal: Principal) -> Actor:
    """The audit log's view of the caller of an admin request."""
    return Actor(
        name=principal.name,
        source="api",
        key_id=principal.key_id,
        ip=request.client.host if request.client else None,
        team_id=principal.team_id,
    )

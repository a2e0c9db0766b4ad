"""Admin routes for API keys and teams (admin role only; every change is audited)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from llmops.gateway.keys import key_fields
from llmops.limits.policy import Limits
from llmops.server.access_schema import (
    KeyCreatedOut,
    KeyCreateIn,
    KeyOut,
    KeyRotateIn,
    KeyUpdateIn,
    MemberIn,
    MemberOut,
    TeamCreateIn,
    TeamOut,
    TeamUpdateIn,
)
from llmops.server.admin_auth import Caller, actor_of
from llmops.server.admin_schema import NO_NUL, error_responses, link
from llmops.server.audit_recording import mark_audited
from llmops.services import Services
from llmops.teams.service import UNSET, parse_limits

KeyPath = Annotated[str, Path(description="Key id or name.", pattern=NO_NUL)]
TeamPath = Annotated[str, Path(description="Team id or name.", pattern=NO_NUL)]
_NO_KEY = {404: "No active key has this id or name (or the team named does not exist)."}
_NO_TEAM = {404: "No team has this id or name."}


def _limits_from(body: Any, current: Limits | None = None) -> Limits | None:
    """The limits a body sets; for an update, the fields it names replace the current ones."""
    given = body.model_fields_set & {"rpm", "tpm", "budget"}
    if current is not None and not given:
        return None
    budget = body.budget.model_dump(exclude_none=True) if body.budget is not None else None
    fresh = parse_limits(body.rpm, body.tpm, budget)
    if current is None:
        return fresh
    merged = current.to_json()
    for name in ("rpm", "tpm"):
        if name in given:
            merged.pop(name, None)
            if getattr(fresh, name) is not None:
                merged[name] = getattr(fresh, name)
    if "budget" in given:
        merged = {name: value for name, value in merged.items() if not name.startswith("budget_")}
        merged.update({name: value for name, value in fresh.to_json().items() if name.startswith("budget_")})
    return Limits.from_json(merged)


def key_routes(services: Services) -> APIRouter:
    router = APIRouter(tags=["keys"])
    keys = services.store.keys

    @router.get(
        "/api/keys",
        operation_id="list_keys",
        response_model=list[KeyOut],
        responses={
            200: {"links": {"RevokeKey": link("revoke_key", key="$response.body#/0/id")}},
            **error_responses(400, 404, descriptions={404: "The team named does not exist."}),
        },
    )
    def list_keys(
        _: Caller,
        include_revoked: bool = False,
        team: Annotated[
            str | None, Query(description="Team id or name", min_length=1, pattern=NO_NUL)
        ] = None,
    ) -> list[Any]:
        """API keys with their spend, oldest first (never their secrets)."""
        return [view.as_dict() for view in keys.list(include_revoked, team=team)]

    @router.post(
        "/api/keys",
        operation_id="create_key",
        response_model=KeyCreatedOut,
        status_code=201,
        responses={
            201: {"links": {"RevokeKey": link("revoke_key", key="$response.body#/id")}},
            **error_responses(
                400,
                404,
                409,
                descriptions={409: "An active key has this name already.", 404: "No such team."},
            ),
        },
    )
    def create_key(principal: Caller, request: Request, body: KeyCreateIn) -> dict[str, Any]:
        """Create a key; its secret is in this answer only."""
        created = keys.create(
            body.name,
            body.role or body.scope or "inference",
            team=body.team,
            models=body.models,
            expires_at=body.expires_at,
            limits=_limits_from(body) or Limits(),
            metadata=body.metadata,
            actor=actor_of(request, principal),
        )
        _changed(services, request)
        return {**keys.view(created.row.id).as_dict(), "secret": created.secret}

    @router.patch(
        "/api/keys/{key}",
        operation_id="update_key",
        response_model=KeyOut,
        responses=error_responses(400, 404, descriptions=_NO_KEY),
    )
    def update_key(principal: Caller, request: Request, key: KeyPath, body: KeyUpdateIn) -> Any:
        """Change a key's allowed models, expiry, limits or metadata (the fields given)."""
        current = keys.find(key)
        keys.update(
            key,
            models=body.models if "models" in body.model_fields_set else UNSET,
            expires_at=body.expires_at if "expires_at" in body.model_fields_set else UNSET,
            limits=_limits_from(body, Limits.from_json(current.limits)),
            metadata=body.metadata,
            actor=actor_of(request, principal),
        )
        _changed(services, request)
        return keys.view(current.id).as_dict()

    @router.post(
        "/api/keys/{key}/rotate",
        operation_id="rotate_key",
        response_model=KeyCreatedOut,
        responses={
            200: {"links": {"RevokeKey": link("revoke_key", key="$response.body#/id")}},
            **error_responses(
                400,
                404,
                409,
                descriptions={
                    **_NO_KEY,
                    409: "This is the key making the request: rotate it with another admin key or the CLI.",
                },
            ),
        },
    )
    def rotate_key(
        principal: Caller, request: Request, key: KeyPath, body: KeyRotateIn | None = None
    ) -> dict[str, Any]:
        """A new secret for the same key; the previous one keeps working for the grace period."""
        grace = body.grace_seconds if body and body.grace_seconds is not None else None
        created = keys.rotate(
            key,
            grace_seconds=services.settings.key_rotation_grace_seconds if grace is None else grace,
            acting_key_id=principal.key_id,
            actor=actor_of(request, principal),
        )
        _changed(services, request)
        return {**keys.view(created.row.id).as_dict(), "secret": created.secret}

    @router.delete(
        "/api/keys/{key}",
        operation_id="revoke_key",
        response_model=KeyOut,
        responses=error_responses(
            400,
            404,
            409,
            descriptions={
                404: "No active key has this id or name.",
                409: "This is the key making the request: revoke it with another admin key or the CLI.",
            },
        ),
    )
    def revoke_key(principal: Caller, request: Request, key: KeyPath) -> Any:
        """Revoke a key by id or name; servers stop accepting it within `key_cache_seconds`."""
        row = keys.revoke(key, acting_key_id=principal.key_id, actor=actor_of(request, principal))
        _changed(services, request)
        return {**key_fields(row), "team": None, "spend": {}}

    return router


def team_routes(services: Services) -> APIRouter:
    router = APIRouter(tags=["teams"])
    teams = services.store.teams

    @router.get(
        "/api/teams", operation_id="list_teams", response_model=list[TeamOut], responses=error_responses(400)
    )
    def list_teams(_: Caller) -> list[Any]:
        """Teams with their key count and spend."""
        return [view.as_dict() for view in teams.list()]

    @router.post(
        "/api/teams",
        operation_id="create_team",
        response_model=TeamOut,
        status_code=201,
        responses={
            201: {"links": {"GetTeam": link("get_team", team="$response.body#/id")}},
            **error_responses(400, 409, descriptions={409: "A team has this name already."}),
        },
    )
    def create_team(principal: Caller, request: Request, body: TeamCreateIn) -> Any:
        """Create a team: the models its keys may use, its limits and budgets."""
        row = teams.create(
            body.name,
            models=body.models,
            limits=_limits_from(body) or Limits(),
            metadata=body.metadata,
            actor=actor_of(request, principal),
        )
        _changed(services, request)
        return teams.show(row.id).as_dict()

    @router.get(
        "/api/teams/{team}",
        operation_id="get_team",
        response_model=TeamOut,
        responses=error_responses(400, 404, descriptions=_NO_TEAM),
    )
    def get_team(_: Caller, team: TeamPath) -> Any:
        """A team with its members, key count and spend."""
        return teams.show(team).as_dict()

    @router.patch(
        "/api/teams/{team}",
        operation_id="update_team",
        response_model=TeamOut,
        responses=error_responses(400, 404, descriptions=_NO_TEAM),
    )
    def update_team(principal: Caller, request: Request, team: TeamPath, body: TeamUpdateIn) -> Any:
        """Change a team's allowed models, limits or metadata (the fields given)."""
        current = teams.get(team)
        row = teams.update(
            team,
            models=body.models if "models" in body.model_fields_set else UNSET,
            limits=_limits_from(body, Limits.from_json(current.limits)),
            metadata=body.metadata,
            actor=actor_of(request, principal),
        )
        _changed(services, request)
        return teams.show(row.id).as_dict()

    @router.post(
        "/api/teams/{team}/members",
        operation_id="add_team_member",
        response_model=MemberOut,
        status_code=201,
        responses=error_responses(400, 404, descriptions=_NO_TEAM),
    )
    def add_team_member(principal: Caller, request: Request, team: TeamPath, body: MemberIn) -> Any:
        """Add a person to a team, or change their role there."""
        member = teams.add_member(team, body.user, body.role, actor=actor_of(request, principal))
        _changed(services, request)
        return member

    @router.delete(
        "/api/teams/{team}/members/{user}",
        operation_id="remove_team_member",
        status_code=204,
        responses=error_responses(400, 404, descriptions={404: "No such team, or the user is not a member."}),
    )
    def remove_team_member(
        principal: Caller,
        request: Request,
        team: TeamPath,
        user: Annotated[str, Path(description="The member.", pattern=NO_NUL)],
    ) -> None:
        """Take a person off a team."""
        teams.remove_member(team, user, actor=actor_of(request, principal))
        _changed(services, request)

    return router


def _changed(services: Services, request: Request) -> None:
    """After a change to keys or teams: it is audited, and this replica's key cache sees it at once
    (other replicas within ``key_cache_seconds``)."""
    mark_audited(request)
    services.authenticator.load()

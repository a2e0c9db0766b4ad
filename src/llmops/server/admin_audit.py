"""Admin routes of the audit log (/api/audit): read only, by design.

There is no route that changes or deletes an event (PUT, PATCH and DELETE answer 405), and the
database refuses it too. Filters and paging are those of `llmops audit list`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field, JsonValue

from llmops.audit import ID_PATTERN, MAX_PAGE_SIZE
from llmops.server.admin_auth import Caller
from llmops.server.admin_schema import NO_NUL, error_responses, link
from llmops.services import Services
from llmops.tracing.service import DURATION_PATTERN, parse_since

_MOMENT_SCHEMA: dict[str, JsonValue] = {
    "anyOf": [
        {"type": "string", "pattern": DURATION_PATTERN},
        {"type": "string", "format": "date-time"},
        {"type": "string", "format": "date"},
    ]
}
_MOMENT = "30m, 2h, 7d (ago), an ISO 8601 date or date-time (UTC when it has no offset)"


class AuditEventOut(BaseModel):
    id: str
    at: datetime
    actor: str = Field(description="The key's name (API) or `cli:<login>` (CLI).")
    actor_key_id: str | None = Field(description="The id of the key that made the change (API).")
    source: Literal["api", "cli"]
    ip: str | None = Field(description="The client's address (API).")
    action: str = Field(description="What was done, e.g. `create_key`, `set_credential`.")
    target_type: str = Field(description="The kind of thing changed: key, team, credential, prompts...")
    target: str | None = Field(description="Which one: a name or id (path parameters joined by '/').")
    team_id: str | None
    before: Any = Field(description="The target before the change, secrets redacted (null if new).")
    after: Any = Field(description="The target (or the request body) after the change, secrets redacted.")


class AuditPageOut(BaseModel):
    data: list[AuditEventOut]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next (older) page.")


def audit_routes(services: Services) -> APIRouter:
    router = APIRouter(tags=["audit"])
    audit = services.store.audit

    @router.get(
        "/api/audit",
        operation_id="list_audit_events",
        response_model=AuditPageOut,
        responses={
            200: {"links": {"GetEvent": link("get_audit_event", event_id="$response.body#/data/0/id")}},
            **error_responses(400),
        },
    )
    def list_events(
        _: Caller,
        actor: Annotated[
            str | None, Query(description="The actor's name or key id", min_length=1, pattern=NO_NUL)
        ] = None,
        action: Annotated[str | None, Query(description="e.g. create_key", pattern=NO_NUL)] = None,
        target_type: Annotated[str | None, Query(description="e.g. key, credential", pattern=NO_NUL)] = None,
        target: Annotated[str | None, Query(description="A target's name or id", pattern=NO_NUL)] = None,
        team: Annotated[
            str | None, Query(description="Team id or name", min_length=1, pattern=NO_NUL)
        ] = None,
        since: Annotated[
            str | None, Query(description=f"From: {_MOMENT}", json_schema_extra=_MOMENT_SCHEMA)
        ] = None,
        until: Annotated[
            str | None, Query(description=f"Before: {_MOMENT}", json_schema_extra=_MOMENT_SCHEMA)
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
        cursor: Annotated[
            str | None, Query(description="`next_cursor` of the previous page", pattern=ID_PATTERN)
        ] = None,
    ) -> dict[str, Any]:
        """Audit events, newest first, a page at a time."""
        page = audit.list(
            actor=actor,
            action=action,
            target_type=target_type,
            target=target,
            team_id=team,
            since=parse_since(since) if since is not None else None,
            until=parse_since(until) if until is not None else None,
            limit=limit,
            cursor=cursor,
        )
        return {"data": page.items, "next_cursor": page.next_cursor}

    @router.get(
        "/api/audit/{event_id}",
        operation_id="get_audit_event",
        response_model=AuditEventOut,
        responses=error_responses(400, 404, descriptions={404: "No audit event has this id."}),
    )
    def get_event(_: Caller, event_id: Annotated[str, Path(pattern=NO_NUL)]) -> dict[str, Any]:
        """One audit event."""
        return audit.get(event_id)

    return router

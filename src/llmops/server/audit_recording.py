"""Recording changes made through the admin API in the audit log.

Two ways, one event per request:

- a route (or the service it calls) records a rich event itself, with the target before and
  after: :func:`record_change`, or ``AuditService.record(admin_auth.actor_of(request, principal),
  ...)`` followed by :func:`mark_audited`;
- :class:`AuditMiddleware` records every other successful change: a POST, PUT, PATCH or DELETE
  under /api answered below 400 writes ``action`` = the route's operation id, ``target_type`` =
  its tag, ``target`` = its path parameters, ``after`` = the redacted JSON body.

The middleware is pure ASGI (responses stream through untouched) and writes the event before the
last body chunk goes out, so a client that got its answer can read the event at once. A failure
to write is logged and never changes the answer: the change itself has happened.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request

from llmops.audit import Actor, AuditService
from llmops.server.asgi import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("llmops.audit")

AUDITED_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# POST routes that compute an answer and change nothing
READ_ONLY_OPERATIONS = frozenset(
    {"analyze_pii", "redact_pii", "run_playground", "render_prompt", "gate_eval_runs"}
)
MAX_RECORDED_BODY = 64 * 1024


def mark_audited(request: Request) -> None:
    """Tell :class:`AuditMiddleware` that this request recorded its own, richer event."""
    request.state.audited = True


def record_change(
    request: Request,
    audit: AuditService,
    action: str,
    target_type: str,
    target: str | None,
    *,
    before: Any = None,
    after: Any = None,
    team_id: str | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """Record one event for this request and mark it audited; the actor is the caller the permission
    dependency left on ``request.state.principal``, with the client's address."""
    principal = getattr(request.state, "principal", None)
    audit.record(
        _actor(principal, request.client.host if request.client else None),
        action,
        target_type,
        target,
        before=before,
        after=after,
        team_id=team_id,
        secrets=secrets,
    )
    mark_audited(request)


def _actor(principal: Any, ip: str | None) -> Actor:
    if principal is None:
        return Actor(name="unknown", source="api", ip=ip)
    return Actor(
        name=str(principal.name),
        source="api",
        key_id=getattr(principal, "key_id", None),
        ip=ip,
        team_id=getattr(principal, "team_id", None),
    )


class AuditMiddleware:
    """Install with ``app.add_middleware(AuditMiddleware, audit=services.store.audit)``."""

    def __init__(
        self,
        app: ASGIApp,
        audit: AuditService,
        *,
        read_only: Iterable[str] = READ_ONLY_OPERATIONS,
        prefix: str = "/api/",
    ) -> None:
        self.app = app
        self.audit = audit
        self.read_only = frozenset(read_only)
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in AUDITED_METHODS
            or not scope["path"].startswith(self.prefix)
        ):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})  # the dict behind request.state, shared with the routes
        body = bytearray()
        overflow = False
        status = 500
        recorded = False

        async def receive_and_keep() -> Message:
            nonlocal overflow
            message = await receive()
            if message["type"] == "http.request" and not overflow:
                chunk = message.get("body", b"")
                if len(body) + len(chunk) > MAX_RECORDED_BODY:
                    overflow = True
                else:
                    body.extend(chunk)
            return message

        async def send_after_recording(message: Message) -> None:
            nonlocal status, recorded
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                if not recorded and status < 400 and not state.get("audited"):
                    recorded = True
                    await self._record(scope, state, bytes(body), overflow)
            await send(message)

        await self.app(scope, receive_and_keep, send_after_recording)

    async def _record(self, scope: Scope, state: dict[str, Any], body: bytes, overflow: bool) -> None:
        route = scope.get("route")
        action = getattr(route, "operation_id", None) or getattr(route, "unique_id", None)
        if action in self.read_only:
            return
        tags = getattr(route, "tags", None) or []
        path_params: dict[str, Any] = scope.get("path_params") or {}
        client = scope.get("client")
        actor = _actor(state.get("principal"), client[0] if client else None)
        try:
            await asyncio.to_thread(
                self.audit.record,
                actor,
                str(action or f"{scope['method']} {scope['path']}"),
                str(tags[0]) if tags else _area(scope["path"], self.prefix),
                "/".join(str(value) for value in path_params.values()) or None,
                after=_body_of(scope, body, overflow),
            )
        except Exception:  # instrumentation boundary: the change is made, the answer goes out
            log.exception("could not record the audit event of %s %s", scope["method"], scope["path"])


def _area(path: str, prefix: str) -> str:
    """``/api/prompts/x`` → ``prompts``."""
    return path[len(prefix) :].split("/", 1)[0] or "api"


def _body_of(scope: Scope, body: bytes, overflow: bool) -> Any:
    """The JSON body as sent (redacted by the service), or a note of what else it was."""
    content_type = ""
    for name, value in scope.get("headers") or []:
        if name == b"content-type":
            content_type = value.decode("latin-1").split(";", 1)[0].strip().lower()
    if not body and not overflow:
        return None
    if overflow:
        return {"body": f"not recorded: larger than {MAX_RECORDED_BODY} bytes", "content_type": content_type}
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            return json.loads(body)
        except ValueError:  # declared JSON but not JSON: described like any other body
            return _undescribed(body, content_type)
    return _undescribed(body, content_type)


def _undescribed(body: bytes, content_type: str) -> dict[str, Any]:
    return {"body": f"{len(body)} bytes not recorded", "content_type": content_type or None}

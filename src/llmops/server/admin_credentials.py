"""Admin routes of stored provider credentials (/api/credentials): set, list, delete; never read back.

A secret goes in through PUT and never comes out: answers carry the name, the fingerprint of the
master key that sealed it and the dates. Models use a credential by naming it in
``api_key_credential``; the master key is rotated with `llmops credentials rotate-key` only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from llmops.credentials import NAME_PATTERN, CredentialInfo
from llmops.credentials.service import MAX_SECRET_CHARS
from llmops.server.admin_auth import Caller, actor_of
from llmops.server.admin_schema import error_responses, link
from llmops.server.audit_recording import mark_audited
from llmops.services import Services

NamePath = Annotated[
    str,
    Path(
        description="Letters, digits, '.', '_' or '-' (1 to 200), starting with a letter or digit.",
        pattern=NAME_PATTERN,
    ),
]
_NO_CREDENTIAL = {404: "No credential has this name."}
_MASTER_KEY = {500: "The server's master key is missing, malformed or readable by others (see the log)."}


class CredentialOut(BaseModel):
    name: str
    key_id: str = Field(description="Fingerprint of the master key that sealed it (never the key).")
    created_at: datetime
    updated_at: datetime


class CredentialListOut(BaseModel):
    data: list[CredentialOut]


class CredentialIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    secret: str = Field(
        min_length=1,
        max_length=MAX_SECRET_CHARS,
        # one line with a character that no reader of the pattern (Python, pydantic's Rust regex,
        # ECMAScript) takes for white space
        pattern=r"^[^\r\n\x00]*[^\s\x00\x1c-\x1f\ufeff][^\r\n\x00]*$",
        description="The provider API key: one line; stored encrypted, never shown again.",
        json_schema_extra={"writeOnly": True, "format": "password"},
    )


def _out(info: CredentialInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "key_id": info.key_id,
        "created_at": info.created_at,
        "updated_at": info.updated_at,
    }


def credential_routes(services: Services) -> APIRouter:
    router = APIRouter(tags=["credentials"])
    credentials = services.store.credentials

    @router.get(
        "/api/credentials",
        operation_id="list_credentials",
        response_model=CredentialListOut,
        responses={
            200: {
                "links": {"DeleteCredential": link("delete_credential", name="$response.body#/data/0/name")}
            },
            **error_responses(),
        },
    )
    def list_credentials(_: Caller) -> dict[str, Any]:
        """Stored credentials by name, with the fingerprint of their master key (never their values)."""
        return {"data": [_out(info) for info in credentials.list()]}

    @router.put(
        "/api/credentials/{name}",
        operation_id="set_credential",
        response_model=CredentialOut,
        responses=error_responses(400, 500, descriptions=_MASTER_KEY),
    )
    def set_credential(principal: Caller, request: Request, name: NamePath, body: CredentialIn) -> Any:
        """Store (or replace) a credential, encrypted under the master key; the answer omits the secret."""
        info = credentials.set(name, body.secret, actor_of(request, principal))
        mark_audited(request)
        return _out(info)

    @router.delete(
        "/api/credentials/{name}",
        operation_id="delete_credential",
        response_model=CredentialOut,
        responses=error_responses(
            400,
            404,
            409,
            descriptions={
                **_NO_CREDENTIAL,
                409: "A configured model uses it: take it out of llmops.yaml first.",
            },
        ),
    )
    def delete_credential(principal: Caller, request: Request, name: NamePath) -> Any:
        """Delete a credential (models that name it fail at the next start or reload)."""
        info = credentials.delete(name, actor_of(request, principal))
        mark_audited(request)
        return _out(info)

    return router

"""Admin routes of the model registry (/api/registry): the service functions behind `llmops registry`.

Registering over REST records a serving config and metadata, and copies artefacts named by paths on the
server itself (an admin's key can make the server read any file it can read into the artefact store);
files on a client's machine are registered with the CLI. Deletions answer 409 while an alias (unless
``force``) or a deployment uses the version.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Any

from fastapi import APIRouter

from llmops.registry import ModelVersionInfo, RegistryService
from llmops.registry.errors import InvalidModel
from llmops.server.admin_auth import Caller
from llmops.server.admin_schema import error_responses, link
from llmops.server.registry_schema import (
    AliasEventOut,
    AliasIn,
    AliasMoveOut,
    AliasPath,
    AliasQuery,
    DeletedOut,
    EventListOut,
    ForceQuery,
    LineageOut,
    ModelDetailOut,
    ModelListOut,
    ModelPath,
    RegisterIn,
    VersionListOut,
    VersionNumberPath,
    VersionOut,
    VersionPath,
)
from llmops.services import Services

_NO_MODEL = {404: "No model has this name."}
_NO_VERSION = {404: "No such model, version or alias."}
_IN_USE = {409: "An alias points at it (without force), or a deployment uses it."}
_VERSION_LINKS = {
    "GetVersion": link("get_model_version", name="$response.body#/model", version="$response.body#/version"),
    "GetLineage": link(
        "get_model_version_lineage", name="$response.body#/model", version="$response.body#/version"
    ),
}


def _when(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "at": event["at"].isoformat()}


def _model(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


def _version(info: ModelVersionInfo) -> dict[str, Any]:
    return info.to_dict()


def registry_routes(services: Services) -> APIRouter:
    router = APIRouter(tags=["registry"])
    registry = services.store.registry
    _model_routes(router, registry)
    _version_routes(router, registry)
    _alias_routes(router, registry)
    return router


def _model_routes(router: APIRouter, registry: RegistryService) -> None:
    @router.get(
        "/api/registry/models",
        operation_id="list_registered_models",
        response_model=ModelListOut,
        responses={
            200: {"links": {"GetModel": link("get_registered_model", name="$response.body#/data/0/name")}},
            **error_responses(),
        },
    )
    def list_models(_: Caller) -> dict[str, Any]:
        """Every registered model with its latest version, number of versions and aliases."""
        return {"data": [_model(row) for row in registry.list_models()]}

    @router.get(
        "/api/registry/models/{name}",
        operation_id="get_registered_model",
        response_model=ModelDetailOut,
        responses=error_responses(400, 404, descriptions=_NO_MODEL),
    )
    def get_model(_: Caller, name: ModelPath) -> dict[str, Any]:
        """A model with its aliases and every version."""
        found = registry.get_model(name)
        return {**_model(found), "versions": [_version(info) for info in found["versions"]]}

    @router.delete(
        "/api/registry/models/{name}",
        operation_id="delete_registered_model",
        response_model=DeletedOut,
        responses=error_responses(400, 404, 409, descriptions={**_NO_MODEL, **_IN_USE}),
    )
    def delete_model(principal: Caller, name: ModelPath, force: ForceQuery = False) -> dict[str, Any]:
        """Delete a model with every version, alias and artefact."""
        registry.delete_model(name, author=principal.name, force=force)
        return {"deleted": name}


def _version_routes(router: APIRouter, registry: RegistryService) -> None:
    @router.post(
        "/api/registry/models/{name}/versions",
        operation_id="register_model_version",
        status_code=201,
        response_model=VersionOut,
        responses={
            201: {"links": _VERSION_LINKS},
            **error_responses(400, 404, descriptions={404: "No such dataset version."}),
        },
    )
    def register(principal: Caller, name: ModelPath, body: RegisterIn) -> dict[str, Any]:
        """Register the next version of a model (created if new): a serving config and/or artefacts."""
        for kind, path in body.artefacts.items():
            if not FilePath(path).is_absolute():  # the server's working folder and home are no one's business
                raise InvalidModel(
                    f"artefact {kind}: give an absolute path on the server, not {path!r}", param="artefacts"
                )
        info = registry.register(
            name,
            artefacts={kind: FilePath(path) for kind, path in body.artefacts.items()},
            serving=body.serving,
            base_model=body.base_model,
            dataset=body.dataset,
            params=body.params,
            metrics=body.metrics,
            job_id=body.job_id,
            source=body.source,
            description=body.description,
            author=principal.name,
        )
        return _version(info)

    @router.get(
        "/api/registry/models/{name}/versions",
        operation_id="list_model_versions",
        response_model=VersionListOut,
        responses=error_responses(400, 404, descriptions=_NO_MODEL),
    )
    def list_versions(_: Caller, name: ModelPath) -> dict[str, Any]:
        """A model's versions, oldest first."""
        return {"data": [_version(info) for info in registry.versions(name)]}

    @router.get(
        "/api/registry/models/{name}/versions/{version}",
        operation_id="get_model_version",
        response_model=VersionOut,
        responses=error_responses(400, 404, descriptions=_NO_VERSION),
    )
    def get_version(_: Caller, name: ModelPath, version: VersionPath) -> dict[str, Any]:
        """One version (by number, alias or latest): artefacts with checksums, serving config, origin."""
        return _version(registry.resolve(f"{name}@{version}"))

    @router.get(
        "/api/registry/models/{name}/versions/{version}/lineage",
        operation_id="get_model_version_lineage",
        response_model=LineageOut,
        responses=error_responses(400, 404, descriptions=_NO_VERSION),
    )
    def get_lineage(_: Caller, name: ModelPath, version: VersionPath) -> dict[str, Any]:
        """Where the version came from: job, source, base model, dataset versions back to the traces."""
        return {"data": registry.lineage(f"{name}@{version}")}

    @router.delete(
        "/api/registry/models/{name}/versions/{version}",
        operation_id="delete_model_version",
        response_model=DeletedOut,
        responses=error_responses(400, 404, 409, descriptions={**_NO_VERSION, **_IN_USE}),
    )
    def delete_version(
        principal: Caller, name: ModelPath, version: VersionNumberPath, force: ForceQuery = False
    ) -> dict[str, Any]:
        """Delete one version and its artefacts."""
        registry.delete_version(name, version, author=principal.name, force=force)
        return {"deleted": f"{name}@{version}"}


def _alias_routes(router: APIRouter, registry: RegistryService) -> None:
    @router.get(
        "/api/registry/models/{name}/aliases/history",
        operation_id="list_model_alias_history",
        response_model=EventListOut,
        responses=error_responses(400, 404, descriptions=_NO_MODEL),
    )
    def alias_history(_: Caller, name: ModelPath, alias: AliasQuery = None) -> dict[str, Any]:
        """Every alias move (or one alias's), oldest first, with who and when."""
        return {"data": [_when(event) for event in registry.alias_history(name, alias)]}

    @router.put(
        "/api/registry/models/{name}/aliases/{alias}",
        operation_id="set_model_alias",
        response_model=AliasMoveOut,
        responses=error_responses(400, 404, descriptions=_NO_VERSION),
    )
    def set_alias(principal: Caller, name: ModelPath, alias: AliasPath, body: AliasIn) -> dict[str, Any]:
        """Point an alias at a version (moved if it pointed elsewhere; the move is recorded)."""
        return _when(registry.set_alias(name, alias, body.version, author=principal.name))

    @router.delete(
        "/api/registry/models/{name}/aliases/{alias}",
        operation_id="remove_model_alias",
        response_model=AliasEventOut,
        responses=error_responses(400, 404, descriptions=_NO_VERSION),
    )
    def remove_alias(principal: Caller, name: ModelPath, alias: AliasPath) -> dict[str, Any]:
        """Remove an alias; the removal stays in its history."""
        registry.remove_alias(name, alias, author=principal.name)
        return _when(registry.alias_history(name, alias)[-1])

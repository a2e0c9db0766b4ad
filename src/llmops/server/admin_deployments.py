"""Admin routes of managed deployments (/api/deployments): the service functions behind `llmops deploy`.

A change made here is applied by this server at once (its watcher is woken) and by the other replicas
within their poll interval; the change is counted in ``llmops_deployment_transitions_total``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query

from llmops.deployments import DeploymentInfo, Rollout
from llmops.gateway.auth import Principal
from llmops.server.admin_auth import Caller
from llmops.server.admin_schema import error_responses, link
from llmops.server.deployment_schema import (
    ChangeIn,
    DeploymentIn,
    DeploymentListOut,
    DeploymentOut,
    DeploymentPath,
    DeploymentStatusOut,
    GuardsIn,
    HistoryOut,
)
from llmops.services import Services

_NO_DEPLOYMENT = {404: "No deployment has this name."}
_NO_CANARY = {409: "No canary is running, or the deployment changed meanwhile."}
_LINKS = {
    "GetDeployment": link("get_deployment", name="$response.body#/name"),
    "GetDeploymentHistory": link("get_deployment_history", name="$response.body#/name"),
    "PromoteDeployment": link("promote_deployment", name="$response.body#/name"),
    "RollbackDeployment": link("rollback_deployment", name="$response.body#/name"),
}


def deployment_routes(services: Services) -> APIRouter:
    router = APIRouter(tags=["deployments"])
    _reading_routes(router, services)
    _changing_routes(router, services)
    return router


def _reading_routes(router: APIRouter, services: Services) -> None:
    deployments = services.store.deployments

    @router.get(
        "/api/deployments",
        operation_id="list_deployments",
        response_model=DeploymentListOut,
        responses={
            200: {"links": {"GetDeployment": link("get_deployment", name="$response.body#/data/0/name")}},
            **error_responses(400),
        },
    )
    def list_deployments(_: Caller, include_undeployed: bool = False) -> dict[str, Any]:
        """Managed model names: stable and canary versions, traffic split, step, guard rules."""
        found = deployments.list_deployments(include_undeployed=include_undeployed)
        return {"data": [info.to_dict() for info in found]}

    @router.get(
        "/api/deployments/{name}",
        operation_id="get_deployment",
        response_model=DeploymentStatusOut,
        responses=error_responses(400, 404, descriptions=_NO_DEPLOYMENT),
    )
    def get_deployment(_: Caller, name: DeploymentPath) -> dict[str, Any]:
        """A deployment with its window figures per version, its guards' verdicts and the next action."""
        return deployments.status(name)

    @router.get(
        "/api/deployments/{name}/history",
        operation_id="get_deployment_history",
        response_model=HistoryOut,
        responses=error_responses(400, 404, descriptions=_NO_DEPLOYMENT),
    )
    def get_history(
        _: Caller, name: DeploymentPath, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> dict[str, Any]:
        """Who deployed, promoted or rolled back what, when and why, newest first."""
        return {"data": [event.to_dict() for event in deployments.history(name, limit=limit)]}


def _changing_routes(router: APIRouter, services: Services) -> None:
    deployments = services.store.deployments

    @router.post(
        "/api/deployments",
        operation_id="create_deployment",
        status_code=201,
        response_model=DeploymentOut,
        responses={
            201: {"links": _LINKS},
            **error_responses(
                400,
                404,
                409,
                descriptions={
                    404: "No such registry version or evaluation run.",
                    409: "A canary is already running, or there is no stable side to split with.",
                },
            ),
        },
    )
    async def create_deployment(principal: Caller, body: DeploymentIn) -> dict[str, Any]:
        """Deploy a registry version behind a model name: stable at once, or as a canary at ``canary``%."""
        rollout = Rollout(
            steps=body.steps,
            step_seconds=float(body.step_seconds),
            window_seconds=float(body.window_seconds),
            guards=(body.guards or GuardsIn.model_validate({})).model_dump(),
            manual=body.manual,
        )
        info = await asyncio.to_thread(
            deployments.deploy,
            body.ref,
            name=body.name,
            canary=body.canary,
            rollout=rollout,
            actor=_actor(principal),
        )
        return _applied(services, info, "deploy")

    for action, summary in (
        (
            "promote",
            "Move the canary to its next step now; from the last step it becomes the stable version.",
        ),
        ("rollback", "Remove the canary: all traffic goes back to the stable version."),
    ):
        _transition_route(router, services, action, summary)

    @router.delete(
        "/api/deployments/{name}",
        operation_id="delete_deployment",
        response_model=DeploymentOut,
        responses=error_responses(400, 404, 409, descriptions={**_NO_DEPLOYMENT, 409: "It is not deployed."}),
    )
    async def undeploy(principal: Caller, name: DeploymentPath) -> dict[str, Any]:
        """Stop managing the name: it is served as the configuration declares it again (or not at all)."""
        info = await asyncio.to_thread(deployments.undeploy, name, actor=_actor(principal))
        return _applied(services, info, "undeploy")


def _transition_route(router: APIRouter, services: Services, action: str, summary: str) -> None:
    """POST /api/deployments/{name}/promote or .../rollback."""
    change = getattr(services.store.deployments, action)

    async def transition(
        principal: Caller, name: DeploymentPath, body: ChangeIn | None = None
    ) -> dict[str, Any]:
        reason = body.reason if body else None
        info = await asyncio.to_thread(change, name, actor=_actor(principal), reason=reason)
        return _applied(services, info, action)

    router.add_api_route(
        f"/api/deployments/{{name}}/{action}",
        transition,
        methods=["POST"],
        operation_id=f"{action}_deployment",
        summary=f"{action.capitalize()} Deployment",
        description=summary,
        response_model=DeploymentOut,
        responses=error_responses(400, 404, 409, descriptions={**_NO_DEPLOYMENT, **_NO_CANARY}),
    )


def _actor(principal: Principal) -> str:
    return f"api:{principal.name}"


def _applied(services: Services, info: DeploymentInfo, action: str) -> dict[str, Any]:
    """Count the change and apply it on this server now (the others notice at their next poll)."""
    services.deployment_metrics.transitions.inc((info.name, action))
    services.deployment_watcher.check_soon()
    return info.to_dict()

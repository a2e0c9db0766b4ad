"""Admin routes of the prompt registry (/api/prompts): the service functions behind `llmops prompts`.

Bodies and answers are declared in :mod:`llmops.server.prompt_schema`, so what the schema accepts is
stored. What only the text of a template can tell is answered with 400 naming the line or
the variable: a template that does not parse or uses an undeclared variable, and render variables
that are missing, undeclared or of the wrong type. A version of another kind than the prompt's, and
a rollback with nothing earlier to go back to, are 409. A team's key sees and changes its team's
prompts only (:mod:`llmops.server.team_views`): another team's prompt answers 404.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response

from llmops.gateway.auth import Principal
from llmops.gateway.errors import GatewayError
from llmops.prompts.services import (
    InvalidPrompt,
    PromptConflict,
    PromptNotFound,
    PromptService,
    PromptVersion,
    Reference,
    parse_prompt_file,
)
from llmops.prompts.spec import (
    LABEL_SCHEMA_PATTERN,
    PromptFile,
)
from llmops.server.admin_auth import Caller
from llmops.server.admin_schema import NO_NUL, error_responses, link
from llmops.server.prompt_schema import (
    NO_AUTHOR,
    NOTHING_TO_RENDER,
    VERSION_RULE,
    LabelPath,
    NamePath,
    PromptAuthorIn,
    PromptDiffOut,
    PromptHistoryOut,
    PromptIn,
    PromptLabelIn,
    PromptLabelListOut,
    PromptLabelMoveOut,
    PromptLabelOut,
    PromptListOut,
    PromptPushOut,
    PromptRenderIn,
    PromptRenderOut,
    PromptVersionListOut,
    PromptVersionOut,
    RollbackLabelPath,
    VersionPath,
)
from llmops.server.team_views import TeamPrompts
from llmops.services import Services

# -- routes -----------------------------------------------------------------------------------------------

_NO_PROMPT = {404: "No prompt has this name."}
_NO_VERSION = {404: "No such prompt, version or label (or the version does not carry the label)."}
_NO_LABEL = {404: "No such prompt, or it has no such label."}


@contextmanager
def _answers() -> Iterator[None]:
    """Conflicts as 409; the variable at fault (render) named in `param`."""
    try:
        yield
    except PromptConflict as exc:
        raise GatewayError(409, str(exc), code="conflict") from None
    except InvalidPrompt as exc:
        raise GatewayError(400, str(exc), param=exc.param) from None


def _author(given: str | None, principal: Principal) -> str:
    return given if given is not None else principal.name


def _version_out(version: PromptVersion) -> dict[str, Any]:
    return version.as_dict()


def _prompt_file(body: PromptIn) -> PromptFile:
    return parse_prompt_file(body.model_dump(exclude={"author"}, exclude_none=True), "body")


def _resolve(prompts: PromptService, name: str, label: str | None, version: int | None) -> PromptVersion:
    if version is None:
        return prompts.get(Reference(name, label=label))
    found = prompts.get(Reference(name, version=version))
    if label is not None and label not in found.labels:
        raise PromptNotFound(f"label {label!r} of {name!r} does not point at version {version}")
    return found


def prompt_routes(services: Services) -> APIRouter:
    """The registry's routes; each sees the caller's team's prompts only (another team's: 404)."""
    router = APIRouter(tags=["prompts"])
    _reading_routes(router)
    _writing_routes(router)
    _label_routes(router)
    return router


def _reading_routes(router: APIRouter) -> None:
    one = {"GetPrompt": link("get_prompt", name="$response.body#/data/0/name")}

    @router.get(
        "/api/prompts",
        operation_id="list_prompts",
        response_model=PromptListOut,
        responses={200: {"links": one}, **error_responses(400)},
    )
    def list_prompts(
        prompts: TeamPrompts,
        tag: Annotated[str | None, Query(description="Only prompts with this tag.", pattern=NO_NUL)] = None,
        search: Annotated[
            str | None, Query(description="Only prompts whose name contains this.", pattern=NO_NUL)
        ] = None,
    ) -> dict[str, Any]:
        """Every prompt with its latest version number, labels and tags, by name."""
        return {"data": prompts.list_prompts(tag=tag, search=search)}

    @router.get(
        "/api/prompts/{name}",
        operation_id="get_prompt",
        response_model=PromptVersionOut,
        responses=error_responses(400, 404, descriptions=_NO_VERSION),
    )
    def get_prompt(
        prompts: TeamPrompts,
        name: NamePath,
        label: Annotated[
            str | None,
            Query(
                pattern=LABEL_SCHEMA_PATTERN, max_length=100, description="The version this label points at."
            ),
        ] = None,
        version: Annotated[int | None, Query(**VERSION_RULE, description="This version.")] = None,
    ) -> dict[str, Any]:
        """One version: by `version`, by `label`, else the one labelled `production`, else the latest."""
        return _version_out(_resolve(prompts, name, label, version))

    @router.get(
        "/api/prompts/{name}/versions",
        operation_id="list_prompt_versions",
        response_model=PromptVersionListOut,
        responses={
            200: {
                "links": {
                    "GetVersion": link(
                        "get_prompt_version",
                        name="$request.path.name",
                        number="$response.body#/data/0/version",
                    )
                }
            },
            **error_responses(400, 404, descriptions=_NO_PROMPT),
        },
    )
    def list_versions(prompts: TeamPrompts, name: NamePath) -> dict[str, Any]:
        """Every version of a prompt, oldest first, with the labels pointing at each."""
        return {"data": [_version_out(version) for version in prompts.versions(name)]}

    @router.get(
        "/api/prompts/{name}/versions/{number}",
        operation_id="get_prompt_version",
        response_model=PromptVersionOut,
        responses=error_responses(400, 404, descriptions=_NO_VERSION),
    )
    def get_version(prompts: TeamPrompts, name: NamePath, number: VersionPath) -> dict[str, Any]:
        """One version by number."""
        return _version_out(prompts.get(Reference(name, version=number)))

    @router.get(
        "/api/prompts/{name}/diff",
        operation_id="diff_prompt_versions",
        response_model=PromptDiffOut,
        responses=error_responses(400, 404, descriptions=_NO_VERSION),
    )
    def diff(
        prompts: TeamPrompts,
        name: NamePath,
        old: Annotated[int, Query(alias="from", **VERSION_RULE, description="The older version.")],
        new: Annotated[int, Query(alias="to", **VERSION_RULE, description="The newer version.")],
    ) -> dict[str, Any]:
        """What changed between two versions: kind, model, parameters, variables, and the templates."""
        return prompts.diff(name, old, new).as_dict()

    @router.post(
        "/api/prompts/{name}/render",
        operation_id="render_prompt",
        response_model=PromptRenderOut,
        responses=error_responses(
            400,
            404,
            descriptions={
                400: "A variable is missing, undeclared or of the wrong type (`param` names it), "
                "or the body does not match the schema.",
                **_NO_VERSION,
            },
        ),
    )
    def render(
        prompts: TeamPrompts, name: NamePath, body: Annotated[PromptRenderIn, Body()] = NOTHING_TO_RENDER
    ) -> dict[str, Any]:
        """Render a version with variables: the messages (chat) or the text (text) a request would send."""
        with _answers():
            found = _resolve(prompts, name, body.label, body.version)
            version, rendered = prompts.render(Reference(name, version=found.number), body.variables)
        return {
            "name": version.name,
            "version": version.number,
            "kind": version.content.kind,
            "messages": rendered.messages,
            "text": rendered.text,
            "model": version.content.model,
            "parameters": version.content.parameters,
        }


def _writing_routes(router: APIRouter) -> None:
    created_links = {
        "GetPrompt": link("get_prompt", name="$response.body#/name", version="$response.body#/version"),
        "GetVersion": link(
            "get_prompt_version", name="$response.body#/name", number="$response.body#/version"
        ),
        "ListVersions": link("list_prompt_versions", name="$response.body#/name"),
        "ListLabels": link("list_prompt_labels", name="$response.body#/name"),
        "LabelHistory": link("prompt_label_history", name="$response.body#/name"),
        "Diff": link(
            "diff_prompt_versions",
            name="$response.body#/name",
            **{"from": "$response.body#/version", "to": "$response.body#/version"},
        ),
        "SetLabel": {
            **link("set_prompt_label", name="$response.body#/name"),
            "requestBody": {"version": "$response.body#/version"},
        },
    }

    @router.post(
        "/api/prompts",
        operation_id="create_prompt_version",
        response_model=PromptPushOut,
        status_code=201,
        responses={
            201: {"description": "A new version was stored.", "links": created_links},
            200: {
                "model": PromptPushOut,
                "description": "A version with this content existed: nothing new stored (labels may move).",
            },
            **error_responses(
                400,
                404,
                409,
                descriptions={
                    400: "Invalid prompt: the body does not match the schema, a template does not parse "
                    "(the message names the line) or uses an undeclared variable.",
                    404: "The name is taken by a prompt of another team (one this key cannot see).",
                    409: "The prompt exists with another kind (text or chat).",
                },
            ),
        },
    )
    def create_version(
        principal: Caller, prompts: TeamPrompts, body: PromptIn, response: Response
    ) -> dict[str, Any]:
        """Store a version from a body shaped like a prompt file; the same content is the same version."""
        with _answers():
            spec = _prompt_file(body)
            result = prompts.push_file(spec, author=_author(body.author, principal))
        if not result.created:
            response.status_code = 200
        return {
            **_version_out(result.version),
            "created": result.created,
            "labels_moved": list(result.labels_moved),
        }


def _label_routes(router: APIRouter) -> None:
    at_label = {
        "GetLabel": link("get_prompt_label", name="$request.path.name", label="$request.path.label"),
        "GetPrompt": link("get_prompt", name="$request.path.name", label="$request.path.label"),
        "LabelHistory": link("prompt_label_history", name="$request.path.name", label="$request.path.label"),
    }

    @router.get(
        "/api/prompts/{name}/labels",
        operation_id="list_prompt_labels",
        response_model=PromptLabelListOut,
        responses=error_responses(400, 404, descriptions=_NO_PROMPT),
    )
    def list_labels(prompts: TeamPrompts, name: NamePath) -> dict[str, Any]:
        """Where each label of a prompt points, who moved it last and when."""
        return {"data": prompts.labels(name)}

    @router.get(
        "/api/prompts/{name}/labels/{label}",
        operation_id="get_prompt_label",
        response_model=PromptLabelOut,
        responses=error_responses(400, 404, descriptions=_NO_LABEL),
    )
    def get_label(prompts: TeamPrompts, name: NamePath, label: LabelPath) -> dict[str, Any]:
        """Where one label points."""
        return prompts.label(name, label)

    @router.put(
        "/api/prompts/{name}/labels/{label}",
        operation_id="set_prompt_label",
        response_model=PromptLabelMoveOut,
        responses={
            200: {
                "links": {
                    **at_label,
                    "Rollback": link(
                        "rollback_prompt_label", name="$request.path.name", label="$request.path.label"
                    ),
                    "RemoveLabel": link(
                        "remove_prompt_label", name="$request.path.name", label="$request.path.label"
                    ),
                }
            },
            **error_responses(400, 404, descriptions={404: "No such prompt or version."}),
        },
    )
    def set_label(
        principal: Caller, prompts: TeamPrompts, name: NamePath, label: LabelPath, body: PromptLabelIn
    ) -> dict[str, Any]:
        """Point a label at a version: a deploy (kept in the label's history)."""
        author = _author(body.author, principal)
        event = prompts.set_label(name, label, body.version, author=author)
        if event is not None:
            return {**event, "moved": True}
        current = prompts.label(name, label)
        return {
            "label": label,
            "action": "deploy",
            "from_version": current["version"],
            "to_version": current["version"],
            "moved": False,
            "author": current["updated_by"],
            "created_at": current["updated_at"],
        }

    @router.delete(
        "/api/prompts/{name}/labels/{label}",
        operation_id="remove_prompt_label",
        response_model=PromptLabelMoveOut,
        responses=error_responses(400, 404, descriptions=_NO_LABEL),
    )
    def remove_label(
        principal: Caller,
        prompts: TeamPrompts,
        name: NamePath,
        label: LabelPath,
        author: Annotated[
            str | None,
            Query(max_length=200, pattern=NO_NUL, description="Who removes it (default: the key's name)."),
        ] = None,
    ) -> dict[str, Any]:
        """Remove a label (requests for it get 404 from now on); kept in its history."""
        return {**prompts.remove_label(name, label, author=_author(author, principal)), "moved": True}

    @router.post(
        "/api/prompts/{name}/labels/{label}/rollback",
        operation_id="rollback_prompt_label",
        response_model=PromptLabelMoveOut,
        responses={
            **error_responses(
                400,
                404,
                409,
                descriptions={**_NO_LABEL, 409: "The label has no earlier version to go back to."},
            ),
        },
    )
    def rollback(
        principal: Caller,
        prompts: TeamPrompts,
        name: NamePath,
        label: RollbackLabelPath,
        body: Annotated[PromptAuthorIn, Body()] = NO_AUTHOR,
    ) -> dict[str, Any]:
        """Move a label back to the version it pointed at before its last deploy (step by step)."""
        with _answers():
            event = prompts.rollback(name, label, author=_author(body.author, principal))
        return {**event, "moved": True}

    @router.get(
        "/api/prompts/{name}/history",
        operation_id="prompt_label_history",
        response_model=PromptHistoryOut,
        responses=error_responses(400, 404, descriptions=_NO_PROMPT),
    )
    def history(
        prompts: TeamPrompts,
        name: NamePath,
        label: Annotated[
            str | None, Query(pattern=LABEL_SCHEMA_PATTERN, max_length=100, description="Only this label.")
        ] = None,
    ) -> dict[str, Any]:
        """Every label move of a prompt (deploys, rollbacks, removals) with who and when, oldest first."""
        return {"data": prompts.history(name, label)}

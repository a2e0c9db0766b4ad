"""Admin routes of annotation queues (/api/annotation-queues): the service functions behind `llmops annotate`.

Creating, accepting and closing a queue need an admin key. Reading queues, asking for the next item,
answering, skipping and the status are for annotators: any valid key (admin or inference) will do, and
the key's name is the annotator. Bodies and answers are declared in :mod:`llmops.server.annotation_schema`.
A team's key sees the queues over its team's datasets and the trace queues its team made (of its
team's traces); another team's queue answers 404.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Response

from llmops.server.admin_auth import Caller
from llmops.server.admin_schema import error_responses, link
from llmops.server.annotation_schema import (
    AcceptIn,
    AcceptOut,
    AnswerIn,
    AnswerOut,
    ItemPath,
    NextIn,
    NextOut,
    QueueIn,
    QueueListOut,
    QueueOut,
    QueuePath,
    SkipOut,
    StatusOut,
)
from llmops.server.team_views import TeamAnnotation
from llmops.services import Services

_NO_QUEUE = {404: "No annotation queue has this name."}
_NO_ITEM = {404: "No such queue, or the queue has no such item."}
_NOT_OPEN = {409: "The queue is closed (or still being created)."}
_ACCEPT_DEFAULTS = AcceptIn.model_validate({})
_NEXT_DEFAULTS = NextIn.model_validate({})
_ANY_KEY = {
    401: "No API key, or an unknown or revoked one. Any valid key (admin or inference) will do.",
    403: "Not answered while any valid key may annotate; kept in the contract for per-team access control.",
}


def _annotator_responses(*statuses: int, descriptions: dict[int, str]) -> dict[int | str, Any]:
    """Errors of a route any valid key may call (annotators): as the admin routes'."""
    return error_responses(*statuses, descriptions={**_ANY_KEY, **descriptions})


def annotation_routes(services: Services) -> APIRouter:
    """The queues' routes; each sees the queues whose source the caller's team sees."""
    router = APIRouter(tags=["annotation"])
    _queue_routes(router)
    _annotator_routes(router)
    return router


def _queue_routes(router: APIRouter) -> None:
    at_queue = {
        "GetQueue": link("get_annotation_queue", name="$response.body#/name"),
        "NextItem": link("next_annotation_item", name="$response.body#/name"),
        "QueueStatus": link("annotation_queue_status", name="$response.body#/name"),
    }

    @router.post(
        "/api/annotation-queues",
        operation_id="create_annotation_queue",
        response_model=QueueOut,
        status_code=201,
        responses={
            201: {"description": "The queue, with its items snapshotted.", "links": at_queue},
            **error_responses(
                400,
                404,
                409,
                descriptions={
                    400: "Invalid body: no source or two, a schema asking for nothing, nothing to annotate.",
                    404: "The dataset or version does not exist.",
                    409: "A queue has this name.",
                },
            ),
        },
    )
    def create_queue(principal: Caller, annotation: TeamAnnotation, body: QueueIn) -> dict[str, Any]:
        """Create a queue over a dataset version or over the traces a filter selects."""
        traces = None
        if body.traces is not None:
            from llmops.datasets.traces_source import selection_from_options

            traces = selection_from_options(**body.traces.model_dump())
        queue = annotation.create_queue(
            body.name,
            body.label_schema.to_schema(),
            dataset=body.dataset,
            traces=traces,
            annotators_per_item=body.annotators_per_item,
            author=principal.name,
        )
        return queue.as_dict()

    @router.get(
        "/api/annotation-queues",
        operation_id="list_annotation_queues",
        response_model=QueueListOut,
        responses={
            200: {"links": {"GetQueue": link("get_annotation_queue", name="$response.body#/data/0/name")}},
            **_annotator_responses(descriptions={}),
        },
    )
    def list_queues(annotation: TeamAnnotation) -> dict[str, Any]:
        """Every queue, by name, with its schema and number of items."""
        return {"data": [queue.as_dict() for queue in annotation.list_queues()]}

    @router.get(
        "/api/annotation-queues/{name}",
        operation_id="get_annotation_queue",
        response_model=QueueOut,
        responses=_annotator_responses(400, 404, descriptions=_NO_QUEUE),
    )
    def get_queue(annotation: TeamAnnotation, name: QueuePath) -> dict[str, Any]:
        """One queue: its source, label schema and instructions, status and last accepted version."""
        return annotation.get_queue(name).as_dict()

    @router.post(
        "/api/annotation-queues/{name}/accept",
        operation_id="accept_annotation_queue",
        response_model=AcceptOut,
        status_code=201,
        responses={
            201: {"description": "A new dataset version was written."},
            200: {
                "model": AcceptOut,
                "description": "The rows equal the dataset's latest version: nothing new.",
            },
            **error_responses(
                400,
                404,
                409,
                descriptions={
                    404: "No annotation queue has this name, or `into` is a dataset of another team.",
                    409: "No item has enough answers to accept.",
                },
            ),
        },
    )
    def accept(
        principal: Caller,
        annotation: TeamAnnotation,
        name: QueuePath,
        response: Response,
        body: Annotated[AcceptIn, Body()] = _ACCEPT_DEFAULTS,
    ) -> dict[str, Any]:
        """Write the answered items as a dataset version (majority label, mean score, correction)."""
        accepted = annotation.accept(
            name,
            into=body.into,
            include_partial=body.include_partial,
            author=principal.name,
            message=body.message,
        )
        if not accepted.created:
            response.status_code = 200
        return accepted.as_dict()

    @router.post(
        "/api/annotation-queues/{name}/close",
        operation_id="close_annotation_queue",
        response_model=QueueOut,
        responses=error_responses(400, 404, descriptions=_NO_QUEUE),
    )
    def close(annotation: TeamAnnotation, name: QueuePath) -> dict[str, Any]:
        """Stop handing out items and taking answers; accepting still works."""
        return annotation.close(name).as_dict()


def _annotator_routes(router: APIRouter) -> None:
    @router.post(
        "/api/annotation-queues/{name}/next",
        operation_id="next_annotation_item",
        response_model=NextOut,
        responses={
            200: {
                "links": {
                    "Answer": link(
                        "submit_annotation", name="$request.path.name", item_id="$response.body#/item/id"
                    ),
                    "Skip": link(
                        "skip_annotation_item", name="$request.path.name", item_id="$response.body#/item/id"
                    ),
                }
            },
            **_annotator_responses(400, 404, 409, descriptions={**_NO_QUEUE, **_NOT_OPEN}),
        },
    )
    def next_item(
        principal: Caller,
        annotation: TeamAnnotation,
        name: QueuePath,
        body: Annotated[NextIn, Body()] = _NEXT_DEFAULTS,
    ) -> dict[str, Any]:
        """The item this key should annotate now, leased to it; asking again gives the same until answered."""
        item = annotation.next_item(name, principal.name, lease=timedelta(seconds=body.lease_seconds))
        schema = annotation.get_queue(name).schema.as_dict()
        return {"item": item.as_dict() if item else None, "annotator": principal.name, "schema": schema}

    @router.post(
        "/api/annotation-queues/{name}/items/{item_id}/annotations",
        operation_id="submit_annotation",
        response_model=AnswerOut,
        status_code=201,
        responses={
            201: {"description": "The answer was stored."},
            200: {"model": AnswerOut, "description": "This key's earlier answer on the item was replaced."},
            **_annotator_responses(
                400,
                404,
                409,
                descriptions={
                    400: "The answer does not fit the queue's schema (`param` names the field).",
                    **_NO_ITEM,
                    409: "The queue is not open, or the item's slots are all answered or handed out "
                    "(this key's lease expired).",
                },
            ),
        },
    )
    def submit(
        principal: Caller,
        annotation: TeamAnnotation,
        name: QueuePath,
        item_id: ItemPath,
        body: AnswerIn,
        response: Response,
    ) -> dict[str, Any]:
        """Answer an item as this key: a label, a score, a correction (as the schema asks), a comment."""
        submitted = annotation.submit(name, item_id, principal.name, **body.model_dump())
        if submitted.replaced:
            response.status_code = 200
        return {**submitted.answer.as_dict(), "replaced": submitted.replaced}

    @router.post(
        "/api/annotation-queues/{name}/items/{item_id}/skip",
        operation_id="skip_annotation_item",
        response_model=SkipOut,
        responses=_annotator_responses(
            400,
            404,
            409,
            descriptions={**_NO_ITEM, 409: "The queue is not open, or this key answered the item."},
        ),
    )
    def skip(
        principal: Caller, annotation: TeamAnnotation, name: QueuePath, item_id: ItemPath
    ) -> dict[str, Any]:
        """Pass on an item: it goes to someone else and is not handed to this key again."""
        annotation.skip(name, item_id, principal.name)
        return {"item_id": item_id, "annotator": principal.name, "skipped": True}

    @router.get(
        "/api/annotation-queues/{name}/status",
        operation_id="annotation_queue_status",
        response_model=StatusOut,
        responses=_annotator_responses(400, 404, descriptions=_NO_QUEUE),
    )
    def status(annotation: TeamAnnotation, name: QueuePath) -> dict[str, Any]:
        """Items complete, partly answered and untouched, answers per annotator, and agreement."""
        return annotation.status(name).as_dict()

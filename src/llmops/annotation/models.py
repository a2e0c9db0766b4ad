"""The annotation area's records (queues, items, answers, accepted versions) and its errors.

Errors (all :class:`~llmops.errors.UserError`, so the CLI prints one line and the admin API answers
with their status): :class:`QueueNotFound` and :class:`ItemNotFound` (404), :class:`QueueConflict` (409:
a name taken, a queue not open, an item whose slots are taken), :class:`InvalidQueue` (400), and the
schema's :class:`~llmops.annotation.schema.InvalidAnswer` and ``InvalidSchema`` (400).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from llmops.annotation.consensus import Answer
from llmops.annotation.schema import LabelSchema
from llmops.datasets.rows import Row
from llmops.errors import ConflictError, NotFoundError, UserError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from llmops.datasets.repository import VersionInfo

_R = TypeVar("_R", bound="DataclassInstance")


class InvalidQueue(UserError):
    """A queue that cannot be made as asked (bad name, no source or two, nothing in the source)."""


class QueueNotFound(NotFoundError):
    pass


class ItemNotFound(NotFoundError):
    pass


class QueueConflict(ConflictError):
    pass


@dataclass(frozen=True)
class Queue:
    name: str
    source: str  # dataset | traces
    dataset: str | None
    dataset_version: int | None
    trace_filter: dict[str, Any] | None
    schema: LabelSchema
    annotators_per_item: int
    status: str  # open | closed
    result_dataset: str | None
    result_version: int | None
    created_by: str | None
    created_at: datetime
    items: int

    @property
    def source_ref(self) -> str | None:
        """``name@N`` of the dataset version the items came from (None for traces)."""
        return f"{self.dataset}@{self.dataset_version}" if self.dataset is not None else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "dataset": self.source_ref,
            "traces": self.trace_filter,
            "schema": self.schema.as_dict(),
            "annotators_per_item": self.annotators_per_item,
            "status": self.status,
            "items": self.items,
            "result": f"{self.result_dataset}@{self.result_version}" if self.result_dataset else None,
            "created_by": self.created_by,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class Item:
    id: str
    queue: str
    position: int
    row_hash: str | None
    trace_id: str | None
    data: Row
    lease_expires_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "queue": self.queue,
            "position": self.position,
            "row_hash": self.row_hash,
            "trace_id": self.trace_id,
            "data": self.data,
            "lease_expires_at": self.lease_expires_at,
        }


@dataclass(frozen=True)
class Submitted:
    answer: Answer
    replaced: bool  # True: the annotator's earlier answer on the item was replaced


@dataclass(frozen=True)
class Accepted:
    version: VersionInfo
    created: bool  # False: the rows equal the dataset's latest version, which is returned
    accepted: int  # items written
    partial: int  # of them, items with fewer answers than asked (only with include_partial)
    left_out: int  # items not written (not enough answers)

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version.to_dict(),
            "created": self.created,
            "accepted": self.accepted,
            "partial": self.partial,
            "left_out": self.left_out,
        }


def _from_row(kind: type[_R], row: Any, **given: Any) -> _R:
    """A record whose fields are the row's columns of the same names, except those ``given``."""
    values = {
        name.name: given[name.name] if name.name in given else getattr(row, name.name)
        for name in fields(kind)
    }
    return kind(**values)


def answer_from_row(row: Any) -> Answer:
    return _from_row(Answer, row)


def item_from_row(row: Any, lease_expires_at: datetime | None = None) -> Item:
    return _from_row(Item, row, lease_expires_at=lease_expires_at)


def queue_from_row(row: Any, items: int) -> Queue:
    schema = LabelSchema.from_dict({**row.label_schema, "instructions": row.instructions})
    return _from_row(Queue, row, schema=schema, items=items)

"""Annotation queues: items handed to annotators one at a time, answers, agreement, accepted versions.

A queue snapshots its items when it is created (rows of a dataset version, or traces turned into rows
the way ``llmops datasets from-traces`` does), so later changes to the source do not move them. An
annotator is a name (an API key's name over REST, ``--annotator`` in the CLI).

Handing out (:meth:`AnnotationService.next_item`): the annotator's own unanswered live lease first (asking
twice gives the same item), else the first item by position they have never been handed whose answers
plus others' live leases are fewer than ``annotators_per_item``. Every change to a queue's answers and
leases runs in one transaction that first updates the queue's row: on Postgres that takes the row's lock
(a second transaction waits, then reads what the first committed), on SQLite the database's write lock;
so two annotators never both take an item's last slot.

Submitting again replaces the annotator's answer (its time becomes the new one). A late answer (its lease
expired) is taken while the item still has a free slot, else refused with 409.

A queue is visible to a team when its source is (see :mod:`llmops.store.scope`): a dataset queue when
the team sees the dataset, a trace queue when it was made by a key of that team (its trace filter
records the team, and it holds that team's traces only). A trace queue made by an admin or the CLI
takes everyone's traces and is visible to admins only. :meth:`AnnotationService.for_team` gives the
service as one team sees it; the plain one (the CLI) sees every queue.

The errors are in :mod:`llmops.annotation.models` (all :class:`~llmops.errors.UserError`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from llmops.annotation.consensus import Answer, annotated_row, outcome
from llmops.annotation.models import (
    Accepted,
    InvalidQueue,
    Item,
    ItemNotFound,
    Queue,
    QueueConflict,
    QueueNotFound,
    Submitted,
    answer_from_row,
    item_from_row,
    queue_from_row,
)
from llmops.annotation.queries import free_item, held_item, live_leases, slots_taken
from llmops.annotation.reports import AgreementReport, QueueStatus, agreement_report, queue_status
from llmops.annotation.schema import LabelSchema
from llmops.annotation.tables import (
    annotation_answers,
    annotation_assignments,
    annotation_items,
    annotation_queues,
)
from llmops.datasets.rows import Row, row_hash
from llmops.datasets.tables import datasets
from llmops.ids import new_id
from llmops.store.scope import ALL_TEAMS, TeamScope, sees

if TYPE_CHECKING:
    from llmops.datasets.service import DatasetService
    from llmops.datasets.traces_source import TraceSelection

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"
_NAME = re.compile(NAME_PATTERN)
DEFAULT_LEASE = timedelta(minutes=30)
MAX_ANNOTATORS_PER_ITEM = 100
_BATCH = 500
TRACES_TEAM = "team"  # in a trace queue's filter: whose traces it holds (absent: everyone's)


def _now() -> datetime:
    return datetime.now(UTC)


class AnnotationService:
    def __init__(self, engine: Engine, datasets: DatasetService) -> None:
        self._engine = engine
        self._datasets = datasets  # as this service's team sees them

    @property
    def team(self) -> TeamScope:
        return self._datasets.team

    def for_team(self, team: TeamScope) -> AnnotationService:
        """The queues a caller of ``team`` sees (:data:`ALL_TEAMS`: all of them)."""
        if team == self.team:
            return self
        return AnnotationService(self._engine, self._datasets.for_team(team))

    def _sees(self, queue: Any, connection: Connection) -> bool:
        """Whether this service's team sees a queue's row (read on the caller's connection)."""
        if self.team == ALL_TEAMS:
            return True
        if queue.source != "dataset":
            trace_filter = queue.trace_filter or {}
            return TRACES_TEAM in trace_filter and trace_filter[TRACES_TEAM] == self.team
        owner = connection.execute(select(datasets.c.team_id).where(datasets.c.name == queue.dataset)).first()
        return owner is not None and sees(self.team, owner.team_id)

    # -- queues ----------------------------------------------------------------------------------

    def create_queue(
        self,
        name: str,
        schema: LabelSchema,
        *,
        dataset: str | None = None,
        traces: TraceSelection | None = None,
        annotators_per_item: int = 1,
        author: str | None = None,
    ) -> Queue:
        """A queue over a dataset version (``dataset="qa@2"``; ``"qa"`` is the latest) or over traces."""
        if not _NAME.fullmatch(name):
            raise InvalidQueue(
                f"invalid queue name {name!r}: letters, digits, '.', '_' and '-', at most 200", param="name"
            )
        if (dataset is None) == (traces is None):
            raise InvalidQueue("a queue takes its items from a dataset version or from traces (one of them)")
        if not 1 <= annotators_per_item <= MAX_ANNOTATORS_PER_ITEM:
            raise InvalidQueue(
                f"annotators_per_item must be 1..{MAX_ANNOTATORS_PER_ITEM}", param="annotators_per_item"
            )
        values: dict[str, Any] = {
            "name": name,
            "label_schema": schema.as_dict(),
            "annotators_per_item": annotators_per_item,
            "instructions": schema.instructions,
            "status": "open",
            "created_by": author,
            "created_at": _now(),
        }
        self._insert_queue(values, self._source(values, dataset, traces))
        return self.get_queue(name)

    def _source(
        self, values: dict[str, Any], dataset: str | None, traces: TraceSelection | None
    ) -> Iterable[tuple[str | None, str | None, Row]]:
        """``(row_hash, trace_id, row)`` of the items to be, and the queue's source columns in ``values``."""
        if dataset is not None:
            version = self._datasets.resolve(dataset)
            values.update(source="dataset", dataset=version.dataset, dataset_version=version.number)
            return ((digest, None, row) for _, digest, row in self._datasets.iter_rows(version))
        assert traces is not None
        from llmops.datasets.traces_source import select_trace_rows

        trace_filter = traces.to_params()
        if self.team != ALL_TEAMS:
            trace_filter[TRACES_TEAM] = self.team
        values.update(source="traces", trace_filter=trace_filter)
        found = select_trace_rows(self._engine, traces, team=self.team)
        return ((row_hash(row), trace_id, row) for trace_id, row in found)

    def _insert_queue(
        self, values: dict[str, Any], sourced: Iterable[tuple[str | None, str | None, Row]]
    ) -> None:
        """The queue row first (status ``creating``: nothing is handed out), then items a batch per
        transaction (a large source never holds SQLite's write lock for long), then ``open``; on any
        failure the queue and its items are removed."""
        name = values["name"]
        try:
            with self._engine.begin() as connection:
                connection.execute(insert(annotation_queues).values(**{**values, "status": "creating"}))
        except IntegrityError:
            raise QueueConflict(f"an annotation queue named {name!r} exists", param="name") from None
        try:
            if self._insert_items(name, sourced) == 0:
                what = "the dataset version has no rows" if values.get("dataset") else "no trace matches"
                raise InvalidQueue(f"nothing to annotate: {what}")
            with self._engine.begin() as connection:
                connection.execute(
                    update(annotation_queues).where(annotation_queues.c.name == name).values(status="open")
                )
        except BaseException:
            self._remove(name)
            raise

    def _insert_items(self, queue: str, sourced: Iterable[tuple[str | None, str | None, Row]]) -> int:
        count = 0
        batch: list[dict[str, Any]] = []
        for digest, trace_id, row in sourced:
            batch.append(
                {
                    "id": new_id(),
                    "queue": queue,
                    "position": count,
                    "row_hash": digest,
                    "trace_id": trace_id,
                    "data": row,
                }
            )
            count += 1
            if len(batch) >= _BATCH:
                self._write_batch(batch)
                batch = []
        if batch:
            self._write_batch(batch)
        return count

    def _write_batch(self, batch: list[dict[str, Any]]) -> None:
        with self._engine.begin() as connection:
            connection.execute(insert(annotation_items), batch)

    def get_queue(self, name: str) -> Queue:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(annotation_queues).where(annotation_queues.c.name == name)
            ).first()
            if row is None or not self._sees(row, connection):
                raise QueueNotFound(f"no annotation queue named {name!r}", param="queue")
            count = connection.execute(
                select(func.count()).select_from(annotation_items).where(annotation_items.c.queue == name)
            ).scalar_one()
        return queue_from_row(row, int(count))

    def list_queues(self) -> list[Queue]:
        """Every queue, by name, with its number of items."""
        counts = (
            select(annotation_items.c.queue, func.count().label("item_count"))
            .group_by(annotation_items.c.queue)
            .subquery()
        )
        query = (
            select(annotation_queues, counts.c.item_count)
            .outerjoin(counts, counts.c.queue == annotation_queues.c.name)
            .order_by(annotation_queues.c.name)
        )
        with self._engine.connect() as connection:
            rows = [row for row in connection.execute(query).all() if self._sees(row, connection)]
        return [queue_from_row(row, int(row.item_count or 0)) for row in rows]

    def close(self, name: str) -> Queue:
        """Stop handing out items and taking answers (accepting still works)."""
        with self._engine.begin() as connection:
            self._lock(connection, name)
            connection.execute(
                update(annotation_queues).where(annotation_queues.c.name == name).values(status="closed")
            )
        return self.get_queue(name)

    # -- annotating ------------------------------------------------------------------------------

    def _lock(self, connection: Connection, name: str, *, open_only: bool = False) -> Any:
        """The queue's row, after an UPDATE that serialises every writer of the queue (see the docstring)."""
        touched = connection.execute(
            update(annotation_queues)
            .where(annotation_queues.c.name == name)
            .values(status=annotation_queues.c.status)
        )
        if touched.rowcount == 0:
            raise QueueNotFound(f"no annotation queue named {name!r}", param="queue")
        queue = connection.execute(select(annotation_queues).where(annotation_queues.c.name == name)).one()
        if not self._sees(queue, connection):
            raise QueueNotFound(f"no annotation queue named {name!r}", param="queue")
        if open_only and queue.status != "open":
            raise QueueConflict(f"annotation queue {name!r} is {queue.status}, not open")
        return queue

    def next_item(self, queue: str, annotator: str, *, lease: timedelta = DEFAULT_LEASE) -> Item | None:
        """The item to annotate now, leased to ``annotator`` until ``lease`` from now; None when done."""
        now = _now()
        with self._engine.begin() as connection:
            found = self._lock(connection, queue, open_only=True)
            held = connection.execute(held_item(queue, annotator, now)).first()
            if held is not None:
                connection.execute(
                    update(annotation_assignments)
                    .where(
                        annotation_assignments.c.item_id == held.id,
                        annotation_assignments.c.annotator == annotator,
                    )
                    .values(expires_at=now + lease)
                )
                return item_from_row(held, now + lease)
            free = connection.execute(free_item(queue, annotator, now, found.annotators_per_item)).first()
            if free is None:
                return None
            connection.execute(
                insert(annotation_assignments).values(
                    item_id=free.id, annotator=annotator, queue=queue, assigned_at=now, expires_at=now + lease
                )
            )
            return item_from_row(free, now + lease)

    def submit(
        self,
        queue: str,
        item_id: str,
        annotator: str,
        *,
        label: str | None = None,
        score: float | None = None,
        correction: str | None = None,
        comment: str | None = None,
    ) -> Submitted:
        """Store ``annotator``'s answer on an item (replacing theirs, if any); checked against the schema."""
        now = _now()
        values = {"label": label, "score": score, "correction": correction, "comment": comment}
        with self._engine.begin() as connection:
            found = self._lock(connection, queue, open_only=True)
            LabelSchema.from_dict(found.label_schema).check_answer(label, score, correction)
            self._item_row(connection, queue, item_id)
            mine = annotation_answers.c.item_id == item_id, annotation_answers.c.annotator == annotator
            existing = connection.execute(select(annotation_answers.c.id).where(*mine)).scalar()
            if existing is not None:
                connection.execute(update(annotation_answers).where(*mine).values(**values, created_at=now))
            else:
                self._take_slot(connection, found, item_id, annotator, now)
                connection.execute(
                    insert(annotation_answers).values(
                        id=new_id(),
                        item_id=item_id,
                        queue=queue,
                        annotator=annotator,
                        created_at=now,
                        **values,
                    )
                )
            stored = connection.execute(select(annotation_answers).where(*mine)).one()
        return Submitted(answer_from_row(stored), replaced=existing is not None)

    @staticmethod
    def _item_row(connection: Connection, queue: str, item_id: str) -> Any:
        row = connection.execute(
            select(annotation_items).where(
                annotation_items.c.id == item_id, annotation_items.c.queue == queue
            )
        ).first()
        if row is None:
            raise ItemNotFound(f"annotation queue {queue!r} has no item {item_id!r}", param="item")
        return row

    @staticmethod
    def _take_slot(connection: Connection, queue: Any, item_id: str, annotator: str, now: datetime) -> None:
        """Check a first answer has a slot (its lease, or a free one) and mark the item seen."""
        mine = annotation_assignments.c.item_id == item_id, annotation_assignments.c.annotator == annotator
        lease = connection.execute(select(annotation_assignments).where(*mine)).first()
        if lease is not None and lease.skipped_at is None and lease.expires_at > now:
            return
        taken = connection.execute(select(slots_taken(item_id, now))).scalar_one()
        if taken >= queue.annotators_per_item:
            raise QueueConflict(
                f"item {item_id} already has its {queue.annotators_per_item} answer(s) or they are handed "
                "out; ask for the next item"
            )
        if lease is None:
            connection.execute(
                insert(annotation_assignments).values(
                    item_id=item_id, annotator=annotator, queue=queue.name, assigned_at=now, expires_at=now
                )
            )
        else:
            connection.execute(update(annotation_assignments).where(*mine).values(skipped_at=None))

    def skip(self, queue: str, item_id: str, annotator: str) -> None:
        """Pass on an item: its slot is free for others, and it is not handed to ``annotator`` again."""
        now = _now()
        with self._engine.begin() as connection:
            self._lock(connection, queue, open_only=True)
            self._item_row(connection, queue, item_id)
            answered = connection.execute(
                select(annotation_answers.c.id).where(
                    annotation_answers.c.item_id == item_id, annotation_answers.c.annotator == annotator
                )
            ).first()
            if answered is not None:
                raise QueueConflict(f"{annotator} has answered item {item_id}; submit again to change it")
            mine = (
                annotation_assignments.c.item_id == item_id,
                annotation_assignments.c.annotator == annotator,
            )
            if connection.execute(
                update(annotation_assignments).where(*mine).values(skipped_at=now)
            ).rowcount:
                return
            connection.execute(
                insert(annotation_assignments).values(
                    item_id=item_id,
                    annotator=annotator,
                    queue=queue,
                    assigned_at=now,
                    expires_at=now,
                    skipped_at=now,
                )
            )

    # -- reading answers -------------------------------------------------------------------------

    def answers(self, queue: str) -> list[Answer]:
        """Every answer on the queue, oldest first."""
        self.get_queue(queue)
        query = (
            select(annotation_answers)
            .where(annotation_answers.c.queue == queue)
            .order_by(annotation_answers.c.created_at, annotation_answers.c.id)
        )
        with self._engine.connect() as connection:
            return [answer_from_row(row) for row in connection.execute(query)]

    def agreement(self, queue: str) -> AgreementReport:
        found = self.get_queue(queue)
        return agreement_report(self.answers(queue), found.annotators_per_item)

    def status(self, queue: str) -> QueueStatus:
        """Counts (items complete, partly answered, untouched; per annotator) and agreement."""
        found = self.get_queue(queue)
        now = _now()
        with self._engine.connect() as connection:
            per_item: Counter[str] = Counter(
                dict(
                    connection.execute(
                        select(annotation_answers.c.item_id, func.count())
                        .where(annotation_answers.c.queue == queue)
                        .group_by(annotation_answers.c.item_id)
                    ).all()
                )
            )
            skipped: Counter[str] = Counter(
                dict(
                    connection.execute(
                        select(annotation_assignments.c.annotator, func.count())
                        .where(
                            annotation_assignments.c.queue == queue,
                            annotation_assignments.c.skipped_at.is_not(None),
                        )
                        .group_by(annotation_assignments.c.annotator)
                    ).all()
                )
            )
            leased = connection.execute(
                select(func.count())
                .select_from(annotation_assignments)
                .where(annotation_assignments.c.queue == queue, live_leases(now))
            ).scalar_one()
        return queue_status(found.as_dict(), found.items, per_item, skipped, int(leased), self.answers(queue))

    # -- accepting -------------------------------------------------------------------------------

    def accept(
        self,
        queue: str,
        *,
        into: str | None = None,
        include_partial: bool = False,
        author: str | None = None,
        message: str | None = None,
    ) -> Accepted:
        """The queue's answered items as a new version of ``into`` (default: the source dataset's name,
        or the queue's name for a trace queue), each row carrying its outcome (see consensus)."""
        found = self.get_queue(queue)
        target = into or found.dataset or found.name
        needed = 1 if include_partial else found.annotators_per_item
        if self._answered_items(queue, needed) == 0:
            raise QueueConflict(
                f"nothing to accept: no item of {queue!r} has {needed} answer(s)"
                + ("" if include_partial else " (include_partial takes items with fewer)")
            )
        params: dict[str, Any] = {"queue": queue, "items": found.items, "include_partial": include_partial}
        counts = Counter[str]()
        rows = self._accepted_rows(found, needed, counts)
        result = self._datasets.create_version(
            target,
            _counted(rows, params, counts),
            operation="annotate",
            params=params,
            parents=[found.source_ref] if found.source_ref else [],
            message=message,
            author=author,
        )
        with self._engine.begin() as connection:
            connection.execute(
                update(annotation_queues)
                .where(annotation_queues.c.name == queue)
                .values(result_dataset=result.version.dataset, result_version=result.version.number)
            )
        return Accepted(
            result.version, result.created, counts["accepted"], counts["partial"], counts["left_out"]
        )

    def _answered_items(self, queue: str, needed: int) -> int:
        per_item = (
            select(annotation_answers.c.item_id)
            .where(annotation_answers.c.queue == queue)
            .group_by(annotation_answers.c.item_id)
            .having(func.count() >= needed)
            .subquery()
        )
        with self._engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(per_item)).scalar_one())

    def _accepted_rows(self, queue: Queue, needed: int, counts: Counter[str]) -> Iterator[Row]:
        """Rows of the items with ``needed`` answers, in position order, a page of items at a time."""
        after = -1
        while True:
            with self._engine.connect() as connection:
                page = connection.execute(
                    select(annotation_items)
                    .where(annotation_items.c.queue == queue.name, annotation_items.c.position > after)
                    .order_by(annotation_items.c.position)
                    .limit(_BATCH)
                ).all()
                grouped: dict[str, list[Answer]] = {}
                ids = [item.id for item in page]
                for row in connection.execute(
                    select(annotation_answers).where(annotation_answers.c.item_id.in_(ids))
                ):
                    grouped.setdefault(row.item_id, []).append(answer_from_row(row))
            for item in page:
                answers = grouped.get(item.id, [])
                if len(answers) < needed:
                    counts["left_out"] += 1
                    continue
                counts["accepted"] += 1
                counts["partial"] += len(answers) < queue.annotators_per_item
                yield annotated_row(item.data, outcome(answers), queue.name)
            if len(page) < _BATCH:
                return
            after = page[-1].position

    def _remove(self, name: str) -> None:
        """Delete a queue and all that hangs off it (after taking its lock, as every writer does)."""
        with self._engine.begin() as connection:
            self._lock(connection, name)
            for table in (annotation_answers, annotation_assignments, annotation_items):
                connection.execute(delete(table).where(table.c.queue == name))
            connection.execute(delete(annotation_queues).where(annotation_queues.c.name == name))


def _counted(rows: Iterator[Row], params: dict[str, Any], counts: Counter[str]) -> Iterator[Row]:
    """Pass rows on; once all are out, record the counts in the version's params."""
    yield from rows
    params.update(accepted=counts["accepted"], partial=counts["partial"], left_out=counts["left_out"])

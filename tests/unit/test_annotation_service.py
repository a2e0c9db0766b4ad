"""Annotation queues on SQLite and Postgres: snapshots, handing out with leases, answers, skips,
agreement, accepted versions with lineage, and two annotators racing for an item's last slot."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from llmops.annotation.models import InvalidQueue, ItemNotFound, QueueConflict, QueueNotFound
from llmops.annotation.schema import InvalidAnswer, InvalidSchema, LabelSchema
from llmops.annotation.service import AnnotationService
from llmops.annotation.tables import annotation_answers
from llmops.datasets.service import DatasetNotFound, DatasetService
from llmops.datasets.traces_source import TraceSelection
from llmops.store import TraceRepository
from llmops.tracing.record import TraceRecord

GOOD_BAD = LabelSchema(categories=("good", "bad"), score_min=1, score_max=5, correction=True)
ROWS = [
    {"input": "2+2?", "expected": "5"},
    {"input": "capital of France?", "expected": "Paris"},
    {"input": "hello", "expected": "hi", "metadata": {"source": "chat"}},
]
NO_LEASE = timedelta(0)


@pytest.fixture
def datasets(db: Engine) -> DatasetService:
    service = DatasetService(db)
    service.create_version("qa", ROWS, operation="import")
    return service


@pytest.fixture
def service(db: Engine, datasets: DatasetService) -> AnnotationService:
    return AnnotationService(db, datasets)


def _queue(service: AnnotationService, name: str = "review", n: int = 1, **kwargs: Any) -> str:
    service.create_queue(
        name, kwargs.pop("schema", GOOD_BAD), dataset="qa@1", annotators_per_item=n, **kwargs
    )
    return name


def _ids(service: AnnotationService, queue: str, annotator: str, count: int) -> list[str | None]:
    handed = []
    for _ in range(count):
        item = service.next_item(queue, annotator)
        handed.append(item.id if item else None)
        if item:
            service.submit(queue, item.id, annotator, label="good")
    return handed


# -- queues -------------------------------------------------------------------------------------------


def test_a_queue_snapshots_the_dataset_version(service: AnnotationService, datasets: DatasetService) -> None:
    queue = service.create_queue("review", GOOD_BAD, dataset="qa", annotators_per_item=2, author="ana")
    assert (queue.source, queue.source_ref, queue.items, queue.status) == ("dataset", "qa@1", 3, "open")
    assert queue.schema == GOOD_BAD
    assert queue.created_by == "ana"
    datasets.create_version("qa", ROWS[:1], operation="import")  # a later version moves nothing
    first = service.next_item("review", "ana")
    assert first is not None
    assert (first.position, first.data, first.trace_id) == (0, ROWS[0], None)
    stored = [digest for _, digest, _ in datasets.iter_rows(datasets.resolve("qa@1"))]
    assert first.row_hash == stored[0]
    assert [q.name for q in service.list_queues()] == ["review"]
    assert service.list_queues()[0].items == 3


def test_queue_mistakes_are_user_errors(service: AnnotationService) -> None:
    _queue(service)
    with pytest.raises(QueueConflict, match="exists"):
        _queue(service)
    with pytest.raises(DatasetNotFound):
        service.create_queue("other", GOOD_BAD, dataset="nope")
    with pytest.raises(InvalidQueue, match="one of them"):
        service.create_queue("other", GOOD_BAD)
    with pytest.raises(InvalidQueue, match="name"):
        service.create_queue("bad/name", GOOD_BAD, dataset="qa")
    with pytest.raises(InvalidQueue, match="annotators_per_item"):
        service.create_queue("other", GOOD_BAD, dataset="qa", annotators_per_item=0)
    with pytest.raises(QueueNotFound):
        service.get_queue("missing")
    with pytest.raises(QueueNotFound):
        service.next_item("missing", "ana")
    with pytest.raises(InvalidSchema, match="asks for"):
        LabelSchema()
    assert [q.name for q in service.list_queues()] == ["review"]  # failures left nothing behind


# -- handing out --------------------------------------------------------------------------------------


def test_items_are_handed_in_order_and_asking_twice_gives_the_same(service: AnnotationService) -> None:
    queue = _queue(service)
    first = service.next_item(queue, "ana")
    again = service.next_item(queue, "ana")
    assert first is not None
    assert again is not None
    assert again.id == first.id
    assert again.lease_expires_at is not None
    other = service.next_item(queue, "ben")  # one annotator per item: ben gets the second
    assert other is not None
    assert other.position == 1
    handed = _ids(service, queue, "ana", 4)  # her held item, the third, then nothing (ben holds the 2nd)
    assert handed[0] == first.id
    assert handed[2:] == [None, None]
    assert handed[1] not in (first.id, other.id)
    assert service.status(queue).leased == 1  # ben's, still unanswered


def test_with_two_annotators_per_item_each_item_goes_to_two_people(service: AnnotationService) -> None:
    queue = _queue(service, n=2)
    positions = {}
    for annotator in ("ana", "ben", "cy"):
        item = service.next_item(queue, annotator)
        assert item is not None
        positions[annotator] = item.position
    assert positions == {"ana": 0, "ben": 0, "cy": 1}
    handed = _ids(service, queue, "ana", 4)
    assert handed[-1] is None
    assert len([i for i in handed if i]) == 3


def test_an_expired_lease_frees_the_slot_and_a_late_answer_needs_one(service: AnnotationService) -> None:
    queue = _queue(service)
    first = service.next_item(queue, "ana", lease=NO_LEASE)
    assert first is not None
    taken = service.next_item(queue, "ben")
    assert taken is not None
    assert taken.id == first.id
    with pytest.raises(QueueConflict, match="handed out"):
        service.submit(queue, first.id, "ana", label="bad")
    assert not service.submit(queue, first.id, "ben", label="good").replaced
    again = service.next_item(queue, "ana")  # never handed back an item she was given once
    assert again is not None
    assert again.position == 1
    late = service.next_item(queue, "cy", lease=NO_LEASE)
    assert late is not None
    assert late.position == 2
    service.submit(queue, late.id, "cy", label="good")  # expired, but the slot is still free: taken


def test_a_skipped_item_goes_to_someone_else_and_never_back(service: AnnotationService) -> None:
    queue = _queue(service)
    first = service.next_item(queue, "ana")
    assert first is not None
    service.skip(queue, first.id, "ana")
    after = service.next_item(queue, "ana")
    assert after is not None
    assert after.position == 1
    other = service.next_item(queue, "ben")
    assert other is not None
    assert other.id == first.id
    service.submit(queue, after.id, "ana", label="good")
    with pytest.raises(QueueConflict, match="answered"):
        service.skip(queue, after.id, "ana")
    status = service.status(queue)
    assert [(a.annotator, a.answered, a.skipped) for a in status.annotators] == [("ana", 1, 1)]


def test_a_closed_queue_hands_out_nothing(service: AnnotationService) -> None:
    queue = _queue(service)
    item = service.next_item(queue, "ana")
    assert item is not None
    assert service.close(queue).status == "closed"
    with pytest.raises(QueueConflict, match="closed"):
        service.next_item(queue, "ana")
    with pytest.raises(QueueConflict, match="closed"):
        service.submit(queue, item.id, "ana", label="good")


# -- answers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "param"),
    [
        ({"label": "meh"}, "label"),
        ({"score": 6.0}, "score"),
        ({"score": 0.5}, "score"),
        ({"comment": "only a comment"}, None),
        ({}, None),
    ],
)
def test_answers_are_checked_against_the_schema(
    service: AnnotationService, answer: dict[str, Any], param: str | None
) -> None:
    queue = _queue(service)
    item = service.next_item(queue, "ana")
    assert item is not None
    with pytest.raises(InvalidAnswer) as caught:
        service.submit(queue, item.id, "ana", **answer)
    assert caught.value.param == param


def test_a_schema_without_corrections_refuses_one(service: AnnotationService) -> None:
    queue = _queue(service, schema=LabelSchema(categories=("good", "bad")))
    item = service.next_item(queue, "ana")
    assert item is not None
    with pytest.raises(InvalidAnswer, match="no correction"):
        service.submit(queue, item.id, "ana", label="good", correction="better")
    with pytest.raises(InvalidAnswer, match="no score"):
        service.submit(queue, item.id, "ana", score=3)
    with pytest.raises(ItemNotFound):
        service.submit(queue, "0" * 32, "ana", label="good")


def test_a_second_answer_replaces_the_first(db: Engine, service: AnnotationService) -> None:
    queue = _queue(service)
    item = service.next_item(queue, "ana")
    assert item is not None
    first = service.submit(queue, item.id, "ana", label="bad", comment="hmm")
    second = service.submit(queue, item.id, "ana", label="good", score=4)
    assert (first.replaced, second.replaced) == (False, True)
    assert (second.answer.label, second.answer.score, second.answer.comment) == ("good", 4.0, None)
    with db.connect() as connection:
        assert len(connection.execute(select(annotation_answers)).all()) == 1


# -- status, agreement, accept -------------------------------------------------------------------------


def _answer_all(service: AnnotationService, queue: str, answers: dict[str, list[dict[str, Any]]]) -> None:
    for annotator, given in answers.items():
        for answer in given:
            item = service.next_item(queue, annotator)
            assert item is not None
            service.submit(queue, item.id, annotator, **answer)


def test_status_counts_and_agreement(service: AnnotationService) -> None:
    queue = _queue(service, n=2)
    _answer_all(
        service,
        queue,
        {
            "ana": [
                {"label": "good", "score": 4},
                {"label": "bad", "score": 2},
                {"label": "good", "score": 5},
            ],
            "ben": [{"label": "good", "score": 5}, {"label": "good", "score": 2}],
        },
    )
    status = service.status(queue)
    assert (status.items, status.complete, status.partial, status.untouched) == (3, 2, 1, 0)
    assert (status.answers, status.leased) == (5, 0)
    agreement = status.agreement
    assert (agreement.label_items, agreement.label_annotators, agreement.fleiss_items) == (2, 2, 2)
    # two items, ana good/bad, ben good/good: p_o = 1/2, p_e = (1/2)(1) + (1/2)(0) = 1/2, kappa 0
    assert agreement.cohen_kappa == pytest.approx(0.0)
    assert agreement.score_items == 2
    assert agreement.score_alpha is not None
    assert service.agreement(queue) == agreement


def test_accept_writes_a_version_with_lineage_and_outcomes(
    service: AnnotationService, datasets: DatasetService
) -> None:
    queue = _queue(service, n=2)
    _answer_all(
        service,
        queue,
        {
            "ana": [{"label": "bad", "correction": "4", "score": 1}, {"label": "good", "score": 5}],
            "ben": [{"label": "bad", "correction": " 4 ", "score": 2}, {"label": "bad", "score": 4}],
        },
    )
    _queue(service, "empty", n=2)
    with pytest.raises(QueueConflict, match="nothing to accept"):
        service.accept("empty")
    accepted = service.accept(queue, author="lead", message="reviewed")
    version = accepted.version
    assert (accepted.created, accepted.accepted, accepted.partial, accepted.left_out) == (True, 2, 0, 1)
    assert (version.ref, version.parents, version.operation, version.author) == (
        "qa@2",
        ["qa@1"],
        "annotate",
        "lead",
    )
    assert version.params == {
        "queue": "review",
        "items": 3,
        "include_partial": False,
        "accepted": 2,
        "partial": 0,
        "left_out": 1,
    }
    rows = list(datasets.rows(version))
    assert rows[0]["expected"] == "4"
    assert rows[0]["input"] == "2+2?"
    assert rows[0]["metadata"]["annotation"] == {
        "queue": "review",
        "label": "bad",
        "score": 1.5,
        "annotators": ["ana", "ben"],
        "agreement": 1.0,
    }
    # a tie between good (ana, first) and bad (ben): the earliest answer's label wins
    assert rows[1]["metadata"]["annotation"]["label"] == "good"
    assert rows[1]["metadata"]["annotation"]["agreement"] == 0.5
    assert rows[1]["expected"] == "Paris"
    assert service.get_queue(queue).as_dict()["result"] == "qa@2"


def test_accept_with_partial_items_into_another_dataset(
    service: AnnotationService, datasets: DatasetService
) -> None:
    queue = _queue(service, n=2)
    _answer_all(service, queue, {"ana": [{"label": "good"}, {"label": "bad"}]})
    accepted = service.accept(queue, into="qa-reviewed", include_partial=True)
    assert (accepted.version.ref, accepted.version.parents) == ("qa-reviewed@1", ["qa@1"])
    assert (accepted.accepted, accepted.partial, accepted.left_out) == (2, 2, 1)
    rows = list(datasets.rows(accepted.version))
    assert rows[1]["metadata"]["annotation"]["label"] == "bad"
    assert service.accept(queue, into="qa-reviewed", include_partial=True).created is False


# -- traces -------------------------------------------------------------------------------------------


def _trace(n: int, text: str, answer: str, model: str = "model-a") -> dict[str, Any]:
    record = TraceRecord(
        id=f"{n:032x}",
        started_at=(datetime(2026, 5, 1, tzinfo=UTC) + timedelta(hours=n)).timestamp(),
        endpoint="chat.completions",
        requested_model=model,
        stream=False,
        latency_ms=1.0,
    )
    record.request = {"model": model, "messages": [{"role": "user", "content": text}]}
    record.response_text = answer
    return record.to_row()


def test_a_trace_queue_becomes_a_dataset_of_its_own(db: Engine, service: AnnotationService) -> None:
    TraceRepository(db).insert_many(
        [_trace(1, "one", "uno"), _trace(2, "two", "dos", model="model-b"), _trace(3, "three", "tres")]
    )
    queue = service.create_queue(
        "traffic", LabelSchema(correction=True), traces=TraceSelection(model="model-a")
    )
    assert (queue.source, queue.source_ref, queue.items) == ("traces", None, 2)
    assert queue.trace_filter == {"model": "model-a", "status": "ok"}
    item = service.next_item("traffic", "ana")
    assert item is not None
    assert item.trace_id == f"{1:032x}"
    assert item.data["messages"] == [{"role": "user", "content": "one"}]
    assert item.data["expected"] == "uno"
    service.submit("traffic", item.id, "ana", correction="un")
    accepted = service.accept("traffic")
    assert (accepted.version.ref, accepted.version.parents) == ("traffic@1", [])
    with pytest.raises(InvalidQueue, match="nothing to annotate"):
        service.create_queue("none", GOOD_BAD, traces=TraceSelection(model="model-z"))
    with pytest.raises(QueueNotFound):
        service.get_queue("none")


# -- concurrency --------------------------------------------------------------------------------------


def test_a_waiting_next_reads_what_the_first_committed(db: Engine, service: AnnotationService) -> None:
    """While one transaction holds the queue, another `next` waits, then sees its lease."""
    queue = _queue(service)
    results: dict[str, Any] = {}
    with db.begin() as connection:
        service._lock(connection, queue)  # what next_item does first
        worker = threading.Thread(target=lambda: results.update(item=service.next_item(queue, "ben")))
        worker.start()
        worker.join(0.5)
        assert worker.is_alive()  # blocked behind the lock
    worker.join(10)
    assert not worker.is_alive()
    assert results["item"] is not None


def _race(service: AnnotationService, queue: str, annotators: tuple[str, ...]) -> dict[str, int | None]:
    """Each annotator asks for the next item at the same moment, from a thread of its own."""
    barrier = threading.Barrier(len(annotators))
    got: dict[str, int | None] = {}

    def take(annotator: str) -> None:
        barrier.wait()
        item = service.next_item(queue, annotator)
        got[annotator] = item.position if item else None

    workers = [threading.Thread(target=take, args=(name,)) for name in annotators]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    return got


def test_two_annotators_never_both_take_the_last_slot(service: AnnotationService) -> None:
    for round_ in range(8):
        queue = service.create_queue(f"race{round_}", GOOD_BAD, dataset="qa", annotators_per_item=2)
        first = service.next_item(queue.name, "ana")
        assert first is not None  # one slot of item 0 left; ben and cy race for it
        got = _race(service, queue.name, ("ben", "cy"))
        assert sorted(got.values(), key=str) == [0, 1], got  # one took item 0's last slot, the other item 1

"""Dataset versions on SQLite and Postgres: numbering, content hashes, lineage, paging, traces as rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from llmops.datasets.rows import content_hash, row_hash
from llmops.datasets.service import (
    DatasetNotFound,
    DatasetService,
    InvalidDataset,
    parse_ref,
)
from llmops.datasets.tables import dataset_rows, dataset_versions, datasets
from llmops.datasets.traces_source import TraceSelection
from llmops.progress import Cancelled
from llmops.store import KeyRepository, TraceRepository
from llmops.tracing.record import TraceRecord
from llmops.tracing.service import FeedbackInput, TraceService

ROWS = [{"input": f"question {n}", "expected": f"answer {n}"} for n in range(5)]


@pytest.fixture
def service(db: Engine) -> DatasetService:
    return DatasetService(db)


def test_versions_are_numbered_hashed_and_keep_lineage(service: DatasetService) -> None:
    first = service.create_version("qa", ROWS, operation="import", params={"files": ["x"]}, author="ann")
    second = service.create_version(
        "qa", ROWS[:3], operation="clean", parents=[first.version.ref], params={"steps": []}
    )
    assert (first.created, second.created) == (True, True)
    assert (first.version.number, second.version.number) == (1, 2)
    assert first.version.content_hash == content_hash(row_hash(row) for row in ROWS)
    assert second.version.row_count == 3
    assert second.version.parents == ["qa@1"]
    assert service.resolve("qa").number == 2
    assert service.resolve("qa@1").author == "ann"
    assert [v.number for v in service.versions("qa")] == [1, 2]


def test_equal_rows_create_no_new_version(service: DatasetService) -> None:
    first = service.create_version("qa", ROWS, operation="import")
    again = service.create_version("qa", [dict(row) for row in ROWS], operation="import")
    assert again.created is False
    assert again.version == first.version
    assert [v.number for v in service.versions("qa")] == [1]


def test_rows_are_stored_once_across_versions_and_datasets(db: Engine, service: DatasetService) -> None:
    service.create_version("qa", ROWS, operation="import")
    service.create_version("qa", [*ROWS, {"input": "new"}], operation="import")
    service.create_version("other", ROWS + ROWS, operation="import")
    with db.connect() as connection:
        assert connection.execute(select(func.count()).select_from(dataset_rows)).scalar_one() == 6
    assert service.resolve("other").row_count == 10


def test_rows_come_back_in_order_across_pages(service: DatasetService) -> None:
    many = [{"input": f"row {n}", "metadata": {"n": n}} for n in range(2500)]
    version = service.create_version("big", many, operation="import").version
    positions = [position for position, _, _ in service.iter_rows(version)]
    assert positions == list(range(2500))
    page = list(service.iter_rows(version, offset=1499, limit=3))
    assert [row["metadata"]["n"] for _, _, row in page] == [1499, 1500, 1501]
    assert page[0][1] == row_hash(many[1499])


def test_a_failure_while_writing_leaves_nothing(db: Engine, service: DatasetService) -> None:
    def rows() -> Iterator[dict[str, Any]]:
        yield from ROWS
        raise Cancelled("stopped")

    with pytest.raises(Cancelled):
        service.create_version("qa", rows(), operation="import")
    with db.connect() as connection:
        assert connection.execute(select(func.count()).select_from(datasets)).scalar_one() == 0
        assert connection.execute(select(func.count()).select_from(dataset_versions)).scalar_one() == 0
    with pytest.raises(DatasetNotFound):
        service.resolve("qa")


def test_a_failed_new_version_keeps_the_earlier_ones(service: DatasetService) -> None:
    service.create_version("qa", ROWS, operation="import")

    def rows() -> Iterator[dict[str, Any]]:
        yield {"input": "x"}
        raise Cancelled("stopped")

    with pytest.raises(Cancelled):
        service.create_version("qa", rows(), operation="import")
    assert [v.number for v in service.versions("qa")] == [1]
    assert service.create_version("qa", ROWS[:1], operation="import").version.number == 2


@pytest.mark.parametrize(
    ("ref", "expected"),
    [("qa", ("qa", None)), ("qa@3", ("qa", 3)), ("qa@latest", ("qa", None)), ("a.b-c_d@12", ("a.b-c_d", 12))],
)
def test_references(ref: str, expected: tuple[str, int | None]) -> None:
    assert parse_ref(ref) == expected


@pytest.mark.parametrize("ref", ["", "@2", "qa@0", "qa@x", "qa@-1", "bad name", "qa@1@2", "-qa"])
def test_bad_references_are_refused(ref: str) -> None:
    with pytest.raises(InvalidDataset):
        parse_ref(ref)


def test_unknown_dataset_and_version(service: DatasetService) -> None:
    with pytest.raises(DatasetNotFound, match="no dataset named 'nope'"):
        service.resolve("nope")
    service.create_version("qa", ROWS, operation="import")
    with pytest.raises(DatasetNotFound, match="has no version 9"):
        service.resolve("qa@9")
    with pytest.raises(DatasetNotFound):
        service.versions("nope")


BASE = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _trace(n: int, **fields: Any) -> dict[str, Any]:
    record = TraceRecord(
        id=f"{n:032x}",
        started_at=(BASE + timedelta(hours=n)).timestamp(),
        endpoint="chat.completions",
        requested_model=fields.pop("requested_model", "model-a"),
        stream=False,
        latency_ms=1.0,
    )
    for name, value in fields.items():
        setattr(record, name, value)
    return record.to_row()


def _chat(text: str) -> dict[str, Any]:
    return {"model": "model-a", "messages": [{"role": "user", "content": text}]}


@pytest.fixture
def traced(db: Engine) -> TraceService:
    repository = TraceRepository(db)
    repository.insert_many(
        [
            _trace(1, request=_chat("one"), response_text="first"),
            _trace(2, request=_chat("two"), response_text="second", requested_model="model-b"),
            _trace(3, request=None, response_text=None),  # stored without content
            _trace(4, request=_chat("four"), status_code=500, error_type="upstream_error"),
            _trace(
                5,
                request={"model": "prompt:support", "messages": []},
                response_text="fifth",
                prompt_name="support",
                prompt_version=2,
                attributes={"prompt_variables": {"topic": "billing"}},
            ),
            _trace(6, request={"model": "model-a", "prompt": "complete me"}, response_text="done"),
        ]
    )
    service = TraceService(repository, KeyRepository(db))
    service.add_feedback(f"{1:032x}", FeedbackInput(thumb="up", score=0.9))
    service.add_feedback(f"{2:032x}", FeedbackInput(thumb="down", label="wrong"))
    return service


def test_traces_become_rows_with_their_origin(service: DatasetService, traced: TraceService) -> None:
    result, counts = service.import_traces("prod", TraceSelection())
    rows = list(service.rows(result.version))
    assert counts.matched == 5
    assert counts.skipped_without_content == 1
    assert rows[0]["messages"] == [{"role": "user", "content": "one"}]
    assert rows[0]["expected"] == "first"
    assert rows[0]["metadata"]["trace_id"] == f"{1:032x}"
    assert rows[0]["metadata"]["feedback"] == [{"thumb": "up", "score": 0.9}]
    assert rows[2]["variables"] == {"topic": "billing"}
    assert rows[2]["metadata"]["prompt"] == "support"
    assert rows[2]["metadata"]["prompt_version"] == 2
    assert rows[3]["input"] == "complete me"
    assert result.version.operation == "from_traces"
    assert result.version.params == {"status": "ok"}


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (TraceSelection(model="model-b"), ["two"]),
        (TraceSelection(feedback="up"), ["one"]),
        (TraceSelection(label="wrong"), ["two"]),
        (TraceSelection(min_score=0.5), ["one"]),
        (TraceSelection(prompt="support", prompt_version=2), [None]),
        (TraceSelection(since=BASE + timedelta(minutes=90), until=BASE + timedelta(hours=5)), ["two"]),
        (TraceSelection(status="error"), ["four"]),
        (TraceSelection(status=None, limit=2), ["one", "two"]),
    ],
)
def test_trace_filters(
    service: DatasetService, traced: TraceService, selection: TraceSelection, expected: list[str | None]
) -> None:
    result, _ = service.import_traces("prod", selection)
    texts = [
        (row.get("messages") or [{"content": None}])[0]["content"] for row in service.rows(result.version)
    ]
    assert texts == expected


def test_versions_written_at_once_get_distinct_numbers(service: DatasetService) -> None:
    """Jobs writing versions of one dataset at the same time (found by the schemathesis run on SQLite)."""
    from concurrent.futures import ThreadPoolExecutor

    service.create_version("qa", ROWS, operation="import")

    def write(n: int) -> int:
        rows = [{"input": f"writer {n} row {i}"} for i in range(50)]
        return service.create_version("qa", rows, operation="import").version.number

    with ThreadPoolExecutor(4) as pool:
        numbers = sorted(pool.map(write, range(8)))
    assert numbers == list(range(2, 10))
    assert [version.number for version in service.versions("qa")] == list(range(1, 10))

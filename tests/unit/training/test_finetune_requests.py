"""Fine-tuning requests that cannot run are refused before anything is recorded (SQLite and Postgres)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from llmops.datasets.service import DatasetService
from llmops.errors import NotFoundError, UserError
from llmops.store import open_database
from llmops.training.params import LoraParams
from llmops.training.repository import FinetuneConflict
from llmops.training.service import FinetuneRequest, FinetuneService


def _service(engine: Engine, home: Path) -> FinetuneService:
    datasets = DatasetService(engine)
    datasets.create_version(
        "qa",
        [{"prompt": f"question {n}", "completion": f"answer {n}"} for n in range(6)],
        operation="import",
    )
    datasets.create_version("single", [{"prompt": "q", "completion": "a"}], operation="import")
    return FinetuneService(engine, datasets, home)


@pytest.fixture
def service(db: Engine, tmp_path: Path) -> FinetuneService:
    """On SQLite and Postgres."""
    return _service(db, tmp_path)


@pytest.fixture
def sqlite_service(tmp_path: Path) -> Iterator[FinetuneService]:
    """Checks that do not depend on the database run once."""
    engine = open_database(f"sqlite:///{tmp_path / 'llmops.db'}")
    yield _service(engine, tmp_path)
    engine.dispose()


def _request(**changes: object) -> FinetuneRequest:
    values: dict[str, object] = {"base": "smollm2", "params": LoraParams(), "dataset": "qa"}
    values.update(changes)
    return FinetuneRequest(**values)  # type: ignore[arg-type]


def test_a_good_request_is_recorded_queued(service: FinetuneService, tmp_path: Path) -> None:
    created = service.create(_request(name="first", quantize=("q4_k_m",)), author="ann")
    assert created.status == "queued"
    assert created.dataset_ref == "qa@1"
    assert created.params["rank"] == 8
    assert created.options["quantize"] == ["q4_k_m"]
    assert Path(created.workdir) == tmp_path / "finetune" / created.id
    assert service.get("first").id == created.id
    assert [run.id for run in service.list_runs(status="queued")] == [created.id]
    with pytest.raises(FinetuneConflict, match="exists already"):
        service.create(_request(name="first"), author="ann")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"base": "gpt-17"}, "unknown base model 'gpt-17'"),
        ({"dataset": None}, "name the training data"),
        ({"data_file": "/nowhere.jsonl"}, "name the training data"),
        ({"dataset": None, "data_file": "/nowhere.jsonl"}, "data_file: /nowhere.jsonl is not a file"),
        ({"quantize": ("q3_weird",)}, "unknown quantisation level 'q3_weird'"),
        ({"metrics": ("exact_matsch",)}, "unknown metric 'exact_matsch'"),
        ({"name": "no spaces"}, "invalid run name"),
        ({"register_as": "bad/name"}, "invalid model name"),
        ({"validation_split": 1.5}, "validation_split"),
        ({"params": LoraParams(rank=0)}, "rank must be at least 1"),
        ({"dataset": "single"}, "has 1 rows; fine-tuning needs at least 2"),
    ],
)
def test_requests_that_cannot_run_are_one_line_errors(
    sqlite_service: FinetuneService, changes: dict[str, object], message: str
) -> None:
    service = sqlite_service
    with pytest.raises(UserError, match=message) as caught:
        service.create(_request(**changes), author=None)
    assert "\n" not in caught.value.message
    assert service.list_runs() == []


def test_unknown_dataset_and_run_are_not_found(service: FinetuneService) -> None:
    with pytest.raises(NotFoundError):
        service.create(_request(dataset="nope@3"), author=None)
    with pytest.raises(NotFoundError, match="no fine-tuning run"):
        service.get("nope")


def test_a_finished_run_cannot_be_resumed_or_run_again(service: FinetuneService) -> None:
    created = service.create(_request(), author=None)
    service.repository.update(created.id, status="succeeded")
    with pytest.raises(FinetuneConflict, match="has finished"):
        service.prepare_resume(created.id)
    with pytest.raises(FinetuneConflict, match="is succeeded"):
        service.execute(created.id, sink=None)  # type: ignore[arg-type]


def test_a_run_left_running_by_a_dead_job_is_marked_and_resumable(service: FinetuneService) -> None:
    created = service.create(_request(), author=None)
    service.repository.update(created.id, status="running", job_id="gone")
    found = service.get(created.id)
    assert found.status == "failed"
    assert "interrupted" in (found.error or "")
    assert service.prepare_resume(created.id).status == "queued"

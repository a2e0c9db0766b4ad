"""SQL for fine-tuning runs: one row per run, updated as the run goes.

Errors: :class:`FinetuneNotFound` (404) for an unknown id or name; :class:`FinetuneConflict` (409) for
a name already taken or a run in a state that forbids the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from llmops.errors import ConflictError, NotFoundError
from llmops.training.tables import finetune_runs


class FinetuneNotFound(NotFoundError):
    """No fine-tuning run has this id or name."""


class FinetuneConflict(ConflictError):
    """A run name already taken, or a run in a state that forbids the request."""


@dataclass(frozen=True)
class FinetuneInfo:
    id: str
    name: str | None
    base_model: str
    dataset: str | None
    dataset_version: int | None
    data_file: str | None
    validation_file: str | None
    params: dict[str, Any]
    options: dict[str, Any]
    status: str
    job_id: str | None
    workdir: str
    progress: dict[str, Any] | None
    curves: list[dict[str, Any]] | None
    result: dict[str, Any] | None
    model_version: str | None
    error: str | None
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def dataset_ref(self) -> str | None:
        return None if self.dataset is None else f"{self.dataset}@{self.dataset_version}"

    def to_dict(self, *, curves: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "base_model": self.base_model,
            "dataset": self.dataset_ref,
            "data_file": self.data_file,
            "validation_file": self.validation_file,
            "params": self.params,
            "options": self.options,
            "status": self.status,
            "job_id": self.job_id,
            "workdir": self.workdir,
            "progress": self.progress,
            "result": self.result,
            "model_version": self.model_version,
            "error": self.error,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "started_at": None if self.started_at is None else self.started_at.isoformat(),
            "finished_at": None if self.finished_at is None else self.finished_at.isoformat(),
        }
        if curves:
            data["curves"] = self.curves or []
        return data


class FinetuneRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create(self, values: dict[str, Any]) -> None:
        try:
            with self._engine.begin() as connection:
                connection.execute(insert(finetune_runs).values(**values))
        except IntegrityError as exc:
            raise FinetuneConflict(
                f"a fine-tuning run named {values.get('name')!r} exists already", param="name"
            ) from exc

    def update(self, run_id: str, *, only_status: tuple[str, ...] = (), **values: Any) -> int:
        """Set ``values``; with ``only_status``, only while the run is in one of those states."""
        statement = update(finetune_runs).where(finetune_runs.c.id == run_id)
        if only_status:
            statement = statement.where(finetune_runs.c.status.in_(only_status))
        with self._engine.begin() as connection:
            return connection.execute(statement.values(**values)).rowcount

    def get(self, reference: str) -> FinetuneInfo:
        """A run by id or by name."""
        query = select(finetune_runs).where(
            (finetune_runs.c.id == reference) | (finetune_runs.c.name == reference)
        )
        with self._engine.connect() as connection:
            row = connection.execute(query).first()
        if row is None:
            raise FinetuneNotFound(f"no fine-tuning run with id or name {reference!r}", param="run")
        return FinetuneInfo(**row._mapping)

    def list_runs(self, *, status: str | None = None, limit: int = 50) -> list[FinetuneInfo]:
        query = (
            select(finetune_runs)
            .order_by(finetune_runs.c.created_at.desc(), finetune_runs.c.id.desc())
            .limit(limit)
        )
        if status is not None:
            query = query.where(finetune_runs.c.status == status)
        with self._engine.connect() as connection:
            return [FinetuneInfo(**row._mapping) for row in connection.execute(query)]

"""SQL for evaluation runs: the run row, per-item results written in batches, labels.

Errors: :class:`RunNotFound` (404) for an unknown run, name or label; :class:`RunConflict` (409) for a
name already taken.

A run belongs to the team of the key that created it (``team_id``; None: no team); reads that take a
``team`` scope (:mod:`llmops.store.scope`) leave other teams' runs out.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from llmops.errors import ConflictError, NotFoundError
from llmops.evals.tables import eval_labels, eval_results, eval_runs
from llmops.store.scope import ALL_TEAMS, TeamScope, owned_by, sees

PAGE = 1000


class RunNotFound(NotFoundError):
    """No evaluation run has this id, name or label."""


class RunConflict(ConflictError):
    """A run name already taken, or a run in a state that forbids the request."""


@dataclass(frozen=True)
class RunInfo:
    id: str
    name: str | None
    dataset: str | None
    dataset_version: int | None
    target: dict[str, Any]
    metrics: list[str]
    params: dict[str, Any]
    status: str
    job_id: str | None
    items_total: int | None
    items_done: int
    summary: dict[str, Any] | None
    error: str | None
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    labels: tuple[str, ...] = ()
    team_id: str | None = None

    @property
    def dataset_ref(self) -> str | None:
        return None if self.dataset is None else f"{self.dataset}@{self.dataset_version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "dataset": self.dataset_ref,
            "target": self.target,
            "metrics": self.metrics,
            "params": self.params,
            "status": self.status,
            "job_id": self.job_id,
            "progress": {"done": self.items_done, "total": self.items_total},
            "summary": self.summary,
            "error": self.error,
            "labels": list(self.labels),
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "started_at": None if self.started_at is None else self.started_at.isoformat(),
            "finished_at": None if self.finished_at is None else self.finished_at.isoformat(),
        }


def _run(row: Any, labels: Sequence[str] = ()) -> RunInfo:
    data = dict(row._mapping)
    return RunInfo(**{**data, "params": data["params"] or {}, "labels": tuple(labels)})


class EvalRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- runs ------------------------------------------------------------------------------------

    def create_run(self, values: dict[str, Any]) -> None:
        try:
            with self._engine.begin() as connection:
                connection.execute(insert(eval_runs).values(**values, items_done=0))
        except IntegrityError as exc:
            raise RunConflict(f"a run named {values.get('name')!r} exists already", param="name") from exc

    def update_run(self, run_id: str, **values: Any) -> None:
        with self._engine.begin() as connection:
            connection.execute(update(eval_runs).where(eval_runs.c.id == run_id).values(**values))

    def get(self, reference: str, team: TeamScope = ALL_TEAMS) -> RunInfo:
        """A run by id, by name, or by label (in that order); another team's is not found."""
        visible = owned_by(eval_runs.c.team_id, team)
        with self._engine.connect() as connection:
            row = connection.execute(
                select(eval_runs).where(
                    (eval_runs.c.id == reference) | (eval_runs.c.name == reference), *visible
                )
            ).first()
            if row is None:
                labelled = select(eval_labels.c.run_id).where(eval_labels.c.label == reference)
                row = connection.execute(
                    select(eval_runs).where(eval_runs.c.id == labelled.scalar_subquery(), *visible)
                ).first()
            if row is None:
                raise RunNotFound(f"no evaluation run with id, name or label {reference!r}", param="run")
            labels = connection.execute(
                select(eval_labels.c.label)
                .where(eval_labels.c.run_id == row.id)
                .order_by(eval_labels.c.label)
            ).scalars()
            return _run(row, list(labels))

    def list_runs(
        self,
        *,
        dataset: str | None = None,
        status: str | None = None,
        limit: int = 50,
        team: TeamScope = ALL_TEAMS,
    ) -> list[RunInfo]:
        query = (
            select(eval_runs)
            .where(*owned_by(eval_runs.c.team_id, team))
            .order_by(eval_runs.c.created_at.desc(), eval_runs.c.id.desc())
            .limit(limit)
        )
        if dataset is not None:
            query = query.where(eval_runs.c.dataset == dataset)
        if status is not None:
            query = query.where(eval_runs.c.status == status)
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
            labels: dict[str, list[str]] = {}
            ids = [row.id for row in rows]
            if ids:
                for label, run_id in connection.execute(
                    select(eval_labels.c.label, eval_labels.c.run_id).where(eval_labels.c.run_id.in_(ids))
                ):
                    labels.setdefault(run_id, []).append(label)
        return [_run(row, sorted(labels.get(row.id, []))) for row in rows]

    def set_label(self, label: str, run_id: str, author: str | None, team: TeamScope = ALL_TEAMS) -> bool:
        """Point ``label`` at a run; False (nothing changed) when it points at a run ``team`` does not
        see: labels are shared by every team, and one team does not move another's baseline."""
        now = datetime.now(UTC)
        with self._engine.begin() as connection:
            if team != ALL_TEAMS:
                current = connection.execute(
                    select(eval_runs.c.team_id)
                    .join(eval_labels, eval_labels.c.run_id == eval_runs.c.id)
                    .where(eval_labels.c.label == label)
                ).first()
                if current is not None and not sees(team, current.team_id):
                    return False
            connection.execute(delete(eval_labels).where(eval_labels.c.label == label))
            connection.execute(
                insert(eval_labels).values(label=label, run_id=run_id, updated_by=author, updated_at=now)
            )
        return True

    # -- results ---------------------------------------------------------------------------------

    def done_positions(self, run_id: str) -> set[int]:
        with self._engine.connect() as connection:
            return set(
                connection.execute(
                    select(eval_results.c.position).where(eval_results.c.run_id == run_id)
                ).scalars()
            )

    def add_results(self, rows: Sequence[dict[str, Any]]) -> int:
        """Store results; returns the run's count of stored items afterwards."""
        if not rows:
            return 0
        run_id = rows[0]["run_id"]
        with self._engine.begin() as connection:
            connection.execute(insert(eval_results), list(rows))
            done: int = connection.execute(
                select(func.count()).select_from(eval_results).where(eval_results.c.run_id == run_id)
            ).scalar_one()
            connection.execute(update(eval_runs).where(eval_runs.c.id == run_id).values(items_done=done))
        return done

    def iter_results(
        self, run_id: str, *, offset: int = 0, limit: int | None = None
    ) -> Iterator[dict[str, Any]]:
        start, remaining = offset, limit
        while remaining is None or remaining > 0:
            page = PAGE if remaining is None else min(PAGE, remaining)
            query = (
                select(eval_results)
                .where((eval_results.c.run_id == run_id) & (eval_results.c.position >= start))
                .order_by(eval_results.c.position)
                .limit(page)
            )
            with self._engine.connect() as connection:
                found = [dict(row._mapping) for row in connection.execute(query)]
            yield from found
            if len(found) < page:
                return
            start = found[-1]["position"] + 1
            if remaining is not None:
                remaining -= len(found)

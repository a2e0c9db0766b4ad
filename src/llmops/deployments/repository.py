"""SQL for managed deployments: the state row, compare-and-set changes, and the event history.

Every change goes through :meth:`DeploymentRepository.change`: ``UPDATE ... WHERE name = :n AND
revision = :r`` together with its event, in one transaction. Two replicas that decide the same
transition from the same revision both try; one row is updated, the other gets
:class:`StaleRevision` and does nothing.

Errors: :class:`DeploymentNotFound` (404), :class:`DeploymentConflict` (409), :class:`StaleRevision`
(409, the state changed meanwhile).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from llmops.deployments.tables import deployment_events, deployments
from llmops.errors import ConflictError, NotFoundError
from llmops.ids import new_id

STATUSES = ("stable", "canary", "rolled_back", "undeployed")


class DeploymentNotFound(NotFoundError):
    """No managed deployment has this name."""


class DeploymentConflict(ConflictError):
    """The deployment's state forbids the request (a canary already running, nothing to promote...)."""


class StaleRevision(DeploymentConflict):
    """Someone else changed the deployment since it was read: nothing was applied."""


@dataclass(frozen=True)
class DeploymentInfo:
    """One managed public model name as stored. ``stable`` None: the configured model of that name."""

    name: str
    stable: str | None
    canary: str | None = None
    canary_percent: int = 0
    steps: tuple[int, ...] = ()
    step_index: int = 0
    guards: Mapping[str, Any] = field(default_factory=dict)
    window_seconds: float = 60.0
    step_seconds: float = 300.0
    manual: bool = False
    status: str = "stable"
    revision: int = 0
    step_started_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None

    @property
    def serving(self) -> bool:
        return self.status != "undeployed"

    def refs(self) -> tuple[str, ...]:
        """The registry versions this deployment serves now."""
        return tuple(ref for ref in (self.stable, self.canary) if ref is not None)

    def state(self) -> dict[str, Any]:
        """What an event records as the state before and after it."""
        return {
            "stable": self.stable,
            "canary": self.canary,
            "canary_percent": self.canary_percent,
            "step_index": self.step_index,
            "status": self.status,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "stable": self.stable,
            "canary": self.canary,
            "canary_percent": self.canary_percent,
            "steps": list(self.steps),
            "step_index": self.step_index,
            "guards": dict(self.guards),
            "window_seconds": self.window_seconds,
            "step_seconds": self.step_seconds,
            "manual": self.manual,
            "status": self.status,
            "revision": self.revision,
            "step_started_at": _iso(self.step_started_at),
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "updated_by": self.updated_by,
        }


@dataclass(frozen=True)
class DeploymentEvent:
    id: str
    name: str
    at: datetime
    actor: str | None
    action: str
    revision: int
    from_state: dict[str, Any] | None
    to_state: dict[str, Any] | None
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "revision": self.revision,
            "from": self.from_state,
            "to": self.to_state,
            "reason": self.reason,
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _info(row: Any) -> DeploymentInfo:
    data = dict(row._mapping)
    return DeploymentInfo(
        **{**data, "steps": tuple(int(step) for step in data["steps"] or ()), "guards": data["guards"] or {}}
    )


def _stored(info: DeploymentInfo) -> dict[str, Any]:
    values = {key: getattr(info, key) for key in deployments.columns.keys()}
    values["steps"] = list(info.steps)
    values["guards"] = dict(info.guards)
    return values


class DeploymentRepository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, name: str) -> DeploymentInfo:
        with self.engine.connect() as connection:
            row = connection.execute(select(deployments).where(deployments.c.name == name)).first()
        if row is None:
            raise DeploymentNotFound(f"no deployment named {name!r}", param="name")
        return _info(row)

    def find(self, name: str) -> DeploymentInfo | None:
        try:
            return self.get(name)
        except DeploymentNotFound:
            return None

    def list_deployments(
        self, *, status: str | None = None, include_undeployed: bool = False
    ) -> list[DeploymentInfo]:
        query = select(deployments).order_by(deployments.c.name)
        if status is not None:
            query = query.where(deployments.c.status == status)
        elif not include_undeployed:
            query = query.where(deployments.c.status != "undeployed")
        with self.engine.connect() as connection:
            return [_info(row) for row in connection.execute(query)]

    def signature(self) -> tuple[int, int]:
        """(rows, sum of revisions): changes whenever any deployment changes (rows are never deleted)."""
        query = select(func.count(), func.coalesce(func.sum(deployments.c.revision), 0))
        with self.engine.connect() as connection:
            count, total = connection.execute(query).one()
        return int(count), int(total)

    def create(
        self, info: DeploymentInfo, *, action: str, actor: str | None, reason: str | None
    ) -> DeploymentInfo:
        """Insert a new name (revision 1) with its first event; a name taken meanwhile is a StaleRevision."""
        now = datetime.now(UTC)
        created = replace(info, revision=1, created_at=now, updated_at=now, updated_by=actor)
        try:
            with self.engine.begin() as connection:
                connection.execute(insert(deployments).values(**_stored(created)))
                self._event(connection, created, None, action=action, actor=actor, reason=reason, at=now)
        except IntegrityError as exc:
            raise StaleRevision(f"deployment {info.name!r} was created meanwhile; try again") from exc
        return created

    def change(
        self,
        before: DeploymentInfo,
        after: DeploymentInfo,
        *,
        action: str,
        actor: str | None,
        reason: str | None,
    ) -> DeploymentInfo:
        """Apply ``after`` if the stored revision is still ``before.revision`` (else StaleRevision)."""
        now = datetime.now(UTC)
        changed = replace(
            after,
            revision=before.revision + 1,
            created_at=before.created_at,
            updated_at=now,
            updated_by=actor,
        )
        values = {key: value for key, value in _stored(changed).items() if key not in ("name", "created_at")}
        statement = (
            update(deployments)
            .where(deployments.c.name == before.name, deployments.c.revision == before.revision)
            .values(**values)
        )
        with self.engine.begin() as connection:
            if connection.execute(statement).rowcount != 1:
                raise StaleRevision(
                    f"deployment {before.name!r} changed meanwhile (revision {before.revision} is gone)"
                )
            self._event(connection, changed, before, action=action, actor=actor, reason=reason, at=now)
        return changed

    def _event(
        self,
        connection: Connection,
        after: DeploymentInfo,
        before: DeploymentInfo | None,
        *,
        action: str,
        actor: str | None,
        reason: str | None,
        at: datetime,
    ) -> None:
        connection.execute(
            insert(deployment_events).values(
                id=new_id(),
                name=after.name,
                at=at,
                actor=actor,
                action=action,
                revision=after.revision,
                from_state=None if before is None else before.state(),
                to_state=after.state(),
                reason=reason,
            )
        )

    def events(self, name: str, *, limit: int = 100) -> list[DeploymentEvent]:
        """Newest first."""
        query = (
            select(deployment_events)
            .where(deployment_events.c.name == name)
            .order_by(deployment_events.c.at.desc(), deployment_events.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as connection:
            return [DeploymentEvent(**dict(row._mapping)) for row in connection.execute(query)]

"""Silences: while one matches a rule, its notifications are recorded in the history but not sent.

A silence names rules by a glob (``*`` for all, ``latency-*``) and may require labels (each must equal
the rule's; ``severity`` counts as a label). It holds from ``starts_at`` (default now) until
``ends_at``; ending one early sets its end to now, so the history keeps it (deleting removes it).

Errors: :class:`InvalidSilence` (400), :class:`SilenceNotFound` (404).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, delete, insert, select, update

from llmops.alerts.tables import alert_silences
from llmops.errors import NotFoundError, UserError
from llmops.ids import new_id

if TYPE_CHECKING:
    from llmops.audit import Actor, AuditService

MAX_SILENCE = timedelta(days=366)


class InvalidSilence(UserError):
    """A silence that cannot be stored as asked (times, glob, labels)."""


class SilenceNotFound(NotFoundError):
    """No silence has this id."""


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    rule: str
    starts_at: datetime
    ends_at: datetime
    labels: dict[str, str] = field(default_factory=dict)
    comment: str | None = None
    created_by: str | None = None
    created_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, rule: str, labels: Mapping[str, str]) -> bool:
        return fnmatchcase(rule, self.rule) and all(labels.get(k) == v for k, v in self.labels.items())

    def as_dict(self, now: datetime | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule,
            "labels": self.labels,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "active": self.active(now or datetime.now(UTC)),
            "comment": self.comment,
            "created_by": self.created_by,
            "created_at": self.created_at,
        }


def _silence(row: Any) -> Silence:
    return Silence(
        row.id, row.rule, row.starts_at, row.ends_at, dict(row.labels or {}), row.comment, row.created_by,
        row.created_at,
    )  # fmt: skip


class SilenceService:
    def __init__(self, engine: Engine, audit: AuditService | None = None) -> None:
        self._engine = engine
        self._audit = audit

    def create(
        self,
        rule: str,
        ends_at: datetime,
        *,
        labels: Mapping[str, str] | None = None,
        starts_at: datetime | None = None,
        comment: str | None = None,
        actor: Actor | None = None,
        now: datetime | None = None,
    ) -> Silence:
        now = now or datetime.now(UTC)
        starts_at = starts_at or now
        _check(rule, ends_at, starts_at, now)
        silence = Silence(
            new_id(),
            rule,
            starts_at,
            ends_at,
            dict(labels or {}),
            comment,
            actor.name if actor else None,
            now,
        )
        with self._engine.begin() as connection:
            connection.execute(
                insert(alert_silences).values(
                    id=silence.id,
                    rule=silence.rule,
                    labels=silence.labels or None,
                    starts_at=silence.starts_at,
                    ends_at=silence.ends_at,
                    comment=silence.comment,
                    created_by=silence.created_by,
                    created_at=now,
                )
            )
            self._record(actor, "alert_silence.create", silence.id, None, silence, connection)
        return silence

    def all(self, *, include_ended: bool = False, now: datetime | None = None) -> list[Silence]:
        """Silences newest first; by default only those that have not ended."""
        now = now or datetime.now(UTC)
        query = select(alert_silences).order_by(alert_silences.c.id.desc())
        if not include_ended:
            query = query.where(alert_silences.c.ends_at > now)
        with self._engine.connect() as connection:
            return [_silence(row) for row in connection.execute(query.limit(1000))]

    def get(self, silence_id: str) -> Silence:
        with self._engine.connect() as connection:
            row = connection.execute(select(alert_silences).where(alert_silences.c.id == silence_id)).first()
        if row is None:
            raise SilenceNotFound(f"no silence with id {silence_id!r}", param="silence_id")
        return _silence(row)

    def end(self, silence_id: str, actor: Actor | None = None, now: datetime | None = None) -> Silence:
        """End a silence now (one that has already ended is left as it is)."""
        now = now or datetime.now(UTC)
        before = self.get(silence_id)
        if before.ends_at <= now:
            return before
        after = replace(before, ends_at=max(now, before.starts_at))
        with self._engine.begin() as connection:
            connection.execute(
                update(alert_silences).where(alert_silences.c.id == silence_id).values(ends_at=after.ends_at)
            )
            self._record(actor, "alert_silence.end", silence_id, before, after, connection)
        return after

    def delete(self, silence_id: str, actor: Actor | None = None) -> None:
        """Remove a silence altogether (ending it with :meth:`end` keeps it listed)."""
        before = self.get(silence_id)
        with self._engine.begin() as connection:
            connection.execute(delete(alert_silences).where(alert_silences.c.id == silence_id))
            self._record(actor, "alert_silence.delete", silence_id, before, None, connection)

    def matching(self, rule: str, labels: Mapping[str, str], now: datetime) -> Silence | None:
        """The active silence (the one ending last) that holds back this rule's notifications."""
        active = [
            silence
            for silence in self.active(now)
            if silence.matches(rule, labels)
        ]  # fmt: skip
        return max(active, key=lambda silence: silence.ends_at, default=None)

    def active(self, now: datetime) -> list[Silence]:
        c = alert_silences.c
        query = select(alert_silences).where(c.starts_at <= now, c.ends_at > now)
        with self._engine.connect() as connection:
            return [_silence(row) for row in connection.execute(query)]

    def _record(
        self, actor: Actor | None, action: str, target: str, before: Silence | None, after: Silence | None,
        connection: Any,
    ) -> None:  # fmt: skip
        if self._audit is None or actor is None:
            return
        self._audit.record(
            actor,
            action,
            "alert_silence",
            target,
            before=_audit_view(before),
            after=_audit_view(after),
            connection=connection,
        )


def _audit_view(silence: Silence | None) -> dict[str, Any] | None:
    if silence is None:
        return None
    view = asdict(silence)
    return {name: value.isoformat() if isinstance(value, datetime) else value for name, value in view.items()}


def _check(rule: str, ends_at: datetime, starts_at: datetime, now: datetime) -> None:
    if not rule or len(rule) > 200 or "\x00" in rule:
        raise InvalidSilence("rule: a glob of rule names, 1 to 200 characters", param="rule")
    if ends_at.tzinfo is None or starts_at.tzinfo is None:
        raise InvalidSilence("times need a time zone", param="ends_at")
    if ends_at <= now:
        raise InvalidSilence("ends_at: must be in the future", param="ends_at")
    if ends_at <= starts_at:
        raise InvalidSilence("ends_at: must be after starts_at", param="ends_at")
    if ends_at - now > MAX_SILENCE:
        raise InvalidSilence("ends_at: at most a year from now", param="ends_at")
    if starts_at - now > MAX_SILENCE:
        raise InvalidSilence("starts_at: at most a year from now", param="starts_at")

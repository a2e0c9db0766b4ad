"""Alert rules, their state and history: those of llmops.yaml and those added through the admin API.

:class:`AlertService` stores API rules in the ``alert_rule`` table (a rule is checked before it is
stored: its channels must exist and their options must suit their type) and lists both kinds; a rule
of llmops.yaml is read-only here, the file owns it. It also keeps each rule's state (``alert_state``,
written by the evaluator), the history (``alert_event``) and the silences
(:class:`~llmops.alerts.silences.SilenceService`), measures a rule now, and sends test notifications.

Errors: :class:`AlertNotFound` (404), :class:`AlertConflict` (409: the name is taken, or the rule
belongs to llmops.yaml), :class:`InvalidAlert` and
:class:`~llmops.alerts.channels.base.InvalidChannel` (400).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from llmops.alerts.channels.base import InvalidChannel, Notification
from llmops.alerts.channels.registry import ChannelRegistry, resolve
from llmops.alerts.config import AlertRuleConfig, ChannelConfig, compare
from llmops.alerts.notify import Delivery, Dispatcher
from llmops.alerts.redact import masked_option, redact_rule_json, restore_masked
from llmops.alerts.silences import SilenceService
from llmops.alerts.statistics import Measurement, Measurer
from llmops.alerts.tables import alert_events, alert_rules, alert_states
from llmops.errors import ConflictError, NotFoundError, UserError
from llmops.ids import new_id

if TYPE_CHECKING:
    from llmops.audit import Actor, AuditService

log = logging.getLogger("llmops.alerts")

STATES = ("ok", "pending", "firing", "resolved")
EVENT_KINDS = ("firing", "resolved", "repeat", "test")
MAX_PAGE = 500


class InvalidAlert(UserError):
    """A rule that cannot be used as written (the message names the field)."""


class AlertNotFound(NotFoundError):
    """No alert rule of that name."""


class AlertConflict(ConflictError):
    """The name is taken, or the rule is declared in llmops.yaml (read-only through the API)."""


@dataclass(frozen=True, slots=True)
class RuleState:
    """Where a rule stands: ok → pending (holds, ``for`` not yet elapsed) → firing → resolved."""

    rule: str
    state: str
    since: datetime
    active_at: datetime | None = None  # when the condition began to hold in this episode
    value: float | None = None
    evaluated_at: datetime | None = None
    notified_at: datetime | None = None  # last firing notification sent in this episode
    silence_id: str | None = None  # the silence that held back this episode's firing

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "since": self.since,
            "active_at": self.active_at,
            "value": self.value,
            "evaluated_at": self.evaluated_at,
            "notified_at": self.notified_at,
            "silence_id": self.silence_id,
        }


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One line of the history: a notification sent, or recorded and held back by a silence."""

    id: str
    rule: str
    kind: str  # firing, resolved, repeat, test
    at: datetime
    severity: str
    value: float | None
    threshold: float | None
    condition: str
    message: str
    labels: dict[str, str] = field(default_factory=dict)
    silence_id: str | None = None
    sent: bool = False
    deliveries: tuple[Delivery, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule,
            "kind": self.kind,
            "at": self.at,
            "severity": self.severity,
            "value": self.value,
            "threshold": self.threshold,
            "condition": self.condition,
            "labels": self.labels,
            "silence_id": self.silence_id,
            "sent": self.sent,
            "deliveries": [delivery.as_json() for delivery in self.deliveries],
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class RuleView:
    config: AlertRuleConfig
    source: str  # "config" (llmops.yaml) or "api"
    revision: int | None = None
    updated_at: datetime | None = None
    state: RuleState | None = None

    def as_dict(self) -> dict[str, Any]:
        """As listings show it: the secrets of in-place channels masked (see :mod:`.redact`)."""
        return {
            **redact_rule_json(self.config.as_json()),
            "source": self.source,
            "revision": self.revision,
            "updated_at": self.updated_at,
            "status": self.state.as_dict() if self.state else None,
        }


@dataclass(frozen=True, slots=True)
class TestResult:
    rule: str
    measurement: Measurement
    holds: bool | None  # None: nothing to judge
    deliveries: tuple[Delivery, ...] = ()
    event_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            **self.measurement.as_dict(),
            "holds": self.holds,
            "deliveries": [delivery.as_json() for delivery in self.deliveries],
            "event_id": self.event_id,
        }


def parse_rule(data: Mapping[str, Any]) -> AlertRuleConfig:
    """A rule from JSON or YAML; InvalidAlert with the first problem on one line."""
    try:
        return AlertRuleConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "rule"
        message = first["msg"].removeprefix("Value error, ")
        raise InvalidAlert(f"{where}: {message}" if where != "rule" else message, param=where) from None


def notification_for(
    rule: AlertRuleConfig, status: str, value: float | None, at: datetime, active_since: datetime | None
) -> Notification:
    return Notification(
        rule=rule.name,
        status=status,
        severity=rule.severity,
        statistic=rule.statistic,
        value=value,
        threshold=rule.threshold,
        comparison=rule.comparison,
        window=rule.window,
        at=at,
        active_since=active_since,
        labels=dict(rule.labels),
        filters=rule.filters.given(),
        summary=rule.summary,
        event_id=new_id(),
    )


def rule_labels(rule: AlertRuleConfig) -> dict[str, str]:
    """The labels silences match: the rule's own and its severity."""
    return {**rule.labels, "severity": rule.severity}


class AlertService:
    def __init__(
        self,
        engine: Engine,
        measurer: Measurer,
        *,
        configured: Callable[[], Sequence[AlertRuleConfig]] = tuple,
        channels: Callable[[], Mapping[str, ChannelConfig]] = dict,
        registry: ChannelRegistry | None = None,
        audit: AuditService | None = None,
    ) -> None:
        self._engine = engine
        self.measurer = measurer
        self.configured = configured  # llmops.yaml's rules and channels, as the settings are now
        self.channels = channels
        self._registry = registry
        self._dispatcher: Dispatcher | None = None
        self.silences = SilenceService(engine, audit)
        self._audit = audit

    @property
    def registry(self) -> ChannelRegistry:
        """The channel types (built on first use: reading the entry points takes tens of milliseconds)."""
        if self._registry is None:
            self._registry = ChannelRegistry()
        return self._registry

    @property
    def dispatcher(self) -> Dispatcher:
        if self._dispatcher is None:
            self._dispatcher = Dispatcher(self.registry)
        return self._dispatcher

    @dispatcher.setter
    def dispatcher(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher

    # ---- rules -----------------------------------------------------------------------------------

    def all(self, *, with_state: bool = True) -> list[RuleView]:
        states = self.states() if with_state else {}
        views = [RuleView(rule, "config", state=states.get(rule.name)) for rule in self.configured()]
        with self._engine.connect() as connection:
            rows = connection.execute(select(alert_rules).order_by(alert_rules.c.name)).all()
        for row in rows:
            try:
                config = AlertRuleConfig.model_validate(row.config)
            except ValidationError as exc:  # stored by an older release with other rules: skip, say why
                log.error("stored alert rule %s no longer reads: %s", row.name, exc.errors()[0]["msg"])
                continue
            views.append(RuleView(config, "api", row.revision, row.updated_at, states.get(row.name)))
        return views

    def get(self, name: str) -> RuleView:
        for view in self.all():
            if view.config.name == name:
                return view
        raise AlertNotFound(f"no alert rule named {name!r}", param="name")

    def in_force(self) -> list[AlertRuleConfig]:
        """The enabled rules: the file's, then the stored ones (a stored rule that shares a file rule's
        name, or whose channels no longer build, is skipped and logged)."""
        rules: list[AlertRuleConfig] = []
        names: set[str] = set()
        for view in self.all(with_state=False):
            if view.config.name in names:
                log.warning(
                    "alert %s is in llmops.yaml and the database; the file's is used", view.config.name
                )
                continue
            names.add(view.config.name)
            if not view.config.enabled:
                continue
            if view.source == "api":
                try:
                    self.check(view.config)
                except UserError as exc:
                    log.error("alert %s cannot be used, skipped: %s", view.config.name, exc.message)
                    continue
            rules.append(view.config)
        return rules

    def create(self, config: AlertRuleConfig, actor: Actor | None = None) -> RuleView:
        self.check(config)
        _refuse_masks(config)
        taken = AlertConflict(f"an alert rule named {config.name!r} exists already", param="name")
        if any(view.config.name == config.name for view in self.all(with_state=False)):
            raise taken
        now = datetime.now(UTC)
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    insert(alert_rules).values(
                        name=config.name, config=config.as_json(), revision=1, created_at=now, updated_at=now
                    )
                )
                self._record(actor, "alert.create", config.name, None, config, connection)
        except IntegrityError:  # stored meanwhile, or a stored row that no longer reads (not listed)
            raise taken from None
        return self.get(config.name)

    def replace(self, name: str, config: AlertRuleConfig, actor: Actor | None = None) -> RuleView:
        before = self._stored_view(name)
        if config.name != name:
            raise InvalidAlert("the name in the body differs from the one in the path", param="name")
        config = restore_masked(config, before.config)  # a listing's rule sent back keeps its secrets
        self.check(config)
        _refuse_masks(config)
        with self._engine.begin() as connection:
            connection.execute(
                update(alert_rules)
                .where(alert_rules.c.name == name)
                .values(
                    config=config.as_json(),
                    revision=alert_rules.c.revision + 1,
                    updated_at=datetime.now(UTC),
                )
            )
            self._record(actor, "alert.update", name, before.config, config, connection)
        return self.get(name)

    def delete(self, name: str, actor: Actor | None = None) -> None:
        before = self._stored_view(name)
        with self._engine.begin() as connection:
            connection.execute(delete(alert_rules).where(alert_rules.c.name == name))
            connection.execute(delete(alert_states).where(alert_states.c.rule == name))
            self._record(actor, "alert.delete", name, before.config, None, connection)

    def check(self, config: AlertRuleConfig) -> None:
        """Its channels exist and build: an unknown name or type, or a bad option, is refused here."""
        for position, (name, channel) in enumerate(self.channels_of(config)):
            where = f"channels.{position}" if isinstance(config.channels[position], ChannelConfig) else name
            self.registry.options(channel, where)

    def check_configured(self) -> None:
        """Every rule and named channel of llmops.yaml builds (at start: a bad one stops it, one line)."""
        for name, channel in self.channels().items():
            self.registry.options(channel, f"alert_channels.{name}")
        for rule in self.configured():
            try:
                self.check(rule)
            except UserError as exc:
                raise InvalidAlert(f"alert {rule.name!r}: {exc.message}", param=exc.param) from None

    def channels_of(self, rule: AlertRuleConfig) -> list[tuple[str, ChannelConfig]]:
        return resolve(rule.channels, self.channels())

    # ---- state and history (written by the evaluator) ------------------------------------------------

    def states(self) -> dict[str, RuleState]:
        with self._engine.connect() as connection:
            rows = connection.execute(select(alert_states)).all()
        return {
            row.rule: RuleState(
                row.rule, row.state, row.since, row.active_at, row.value, row.evaluated_at, row.notified_at,
                row.silence_id,
            )
            for row in rows
        }  # fmt: skip

    def save_round(
        self,
        states: Iterable[RuleState],
        events: Iterable[AlertEvent],
        keep: set[str],
        fence: Callable[[Connection], bool] | None = None,
    ) -> bool:
        """One evaluation's outcome in one transaction: the states, the new events; states of rules no
        longer in force (``keep`` lists those that are) are dropped. With ``fence`` (the evaluator's
        lease, checked in the same transaction) a replica that lost the lease records its events but
        leaves the states to the new leader; False then."""
        rows = [
            {
                "rule": state.rule, "state": state.state, "since": state.since, "active_at": state.active_at,
                "value": state.value, "evaluated_at": state.evaluated_at or state.since,
                "notified_at": state.notified_at, "silence_id": state.silence_id,
            }
            for state in states
        ]  # fmt: skip
        with self._engine.begin() as connection:
            if fence is not None and not fence(connection):
                self._insert_events(connection, list(events))
                return False
            known = set(connection.execute(select(alert_states.c.rule)).scalars())
            gone = known - keep
            if gone:
                connection.execute(delete(alert_states).where(alert_states.c.rule.in_(sorted(gone))))
            for row in rows:
                if row["rule"] in known:
                    connection.execute(
                        update(alert_states).where(alert_states.c.rule == row["rule"]).values(**row)
                    )
                else:
                    connection.execute(insert(alert_states).values(**row))
            self._insert_events(connection, list(events))
        return True

    def record_event(self, event: AlertEvent) -> None:
        with self._engine.begin() as connection:
            self._insert_events(connection, [event])

    def history(
        self,
        *,
        rule: str | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[AlertEvent], str | None]:
        """Events newest first, a page at a time; the cursor is the last id of the previous page."""
        if kind is not None and kind not in EVENT_KINDS:
            raise InvalidAlert(f"kind: expected one of {', '.join(EVENT_KINDS)}, got {kind!r}", param="kind")
        limit = max(1, min(limit, MAX_PAGE))
        c = alert_events.c
        query = select(alert_events).order_by(c.id.desc()).limit(limit + 1)
        if rule is not None:
            query = query.where(c.rule == rule)
        if kind is not None:
            query = query.where(c.kind == kind)
        if since is not None:
            query = query.where(c.at >= since)
        if cursor is not None:
            query = query.where(c.id < cursor)
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        events = [_event(row) for row in rows[:limit]]
        return events, (events[-1].id if len(rows) > limit else None)

    # ---- now ---------------------------------------------------------------------------------------

    def measure(self, rule: AlertRuleConfig, now: datetime | None = None) -> Measurement:
        return self.measurer.measure(rule, now)

    async def test(self, name: str, *, send: bool) -> TestResult:
        """Measure the rule now; with ``send``, send a test notification through its channels (one
        attempt each) and record it in the history."""
        import asyncio

        rule = (await asyncio.to_thread(self.get, name)).config  # database reads: off the event loop
        measurement = await asyncio.to_thread(self.measure, rule)
        value = measurement.value
        holds = None if value is None else compare(value, rule.comparison, rule.threshold)
        if not send:
            return TestResult(name, measurement, holds)
        await asyncio.to_thread(self.check, rule)  # may read the channel entry points the first time
        notification = notification_for(rule, "test", value, measurement.until, None)
        deliveries = await self.dispatcher.deliver(notification, self.channels_of(rule), attempts=1)
        event = AlertEvent(
            notification.event_id or new_id(), rule.name, "test", notification.at, rule.severity, value,
            rule.threshold, rule.condition(), notification.text, dict(rule.labels),
            sent=any(delivery.ok for delivery in deliveries), deliveries=tuple(deliveries),
        )  # fmt: skip
        await asyncio.to_thread(self.record_event, event)
        return TestResult(name, measurement, holds, tuple(deliveries), event.id)

    # ---- helpers -----------------------------------------------------------------------------------

    def _insert_events(self, connection: Any, events: list[AlertEvent]) -> None:
        if not events:
            return
        connection.execute(
            insert(alert_events),
            [
                {
                    "id": event.id, "rule": event.rule, "kind": event.kind, "at": event.at,
                    "severity": event.severity, "value": event.value, "threshold": event.threshold,
                    "condition": event.condition[:300], "labels": event.labels or None,
                    "silence_id": event.silence_id, "sent": event.sent,
                    "deliveries": [delivery.as_json() for delivery in event.deliveries] or None,
                    "message": event.message,
                }
                for event in events
            ],
        )  # fmt: skip

    def _stored_view(self, name: str) -> RuleView:
        view = self.get(name)
        if view.source != "api":
            raise AlertConflict(
                f"the alert rule {name!r} is declared in llmops.yaml; change it there", param="name"
            )
        return view

    def _record(
        self, actor: Actor | None, action: str, name: str, before: AlertRuleConfig | None,
        after: AlertRuleConfig | None, connection: Any,
    ) -> None:  # fmt: skip
        if self._audit is None or actor is None:
            return
        self._audit.record(
            actor,
            action,
            "alert",
            name,
            before=redact_rule_json(before.as_json()) if before else None,
            after=redact_rule_json(after.as_json()) if after else None,
            connection=connection,
        )


def _refuse_masks(config: AlertRuleConfig) -> None:
    where = masked_option(config)
    if where is not None:
        raise InvalidAlert(f"{where}: a masked value, as listings show it; give the full value", param=where)


def _event(row: Any) -> AlertEvent:
    deliveries = tuple(
        Delivery(d["channel"], d["type"], d["ok"], d["attempts"], d.get("error"), d.get("ms", 0.0))
        for d in row.deliveries or ()
    )
    return AlertEvent(
        row.id, row.rule, row.kind, row.at, row.severity, row.value, row.threshold, row.condition,
        row.message, dict(row.labels or {}), row.silence_id, row.sent, deliveries,
    )  # fmt: skip


__all__ = [
    "AlertConflict",
    "AlertEvent",
    "AlertNotFound",
    "AlertService",
    "InvalidAlert",
    "InvalidChannel",
    "RuleState",
    "RuleView",
    "TestResult",
    "parse_rule",
]

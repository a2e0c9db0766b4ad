"""The background evaluator: every ``alert_eval_seconds`` the replica that holds the lease measures
each rule in force, moves it through its states and sends what there is to send.

States: ok → pending (the condition holds, ``for`` has not elapsed; with ``for: 0s`` it fires at once)
→ firing → resolved (then ok again when it next holds). :func:`advance` is the whole state machine.
Notifications, de-duplicated per episode:

- **firing**: once, when the rule starts firing. If every channel failed it is tried again at later
  rounds (at most every :data:`RETRY_SECONDS`), each try recorded; while a silence matches it is
  recorded once and not sent, and sent when the silence ends if the rule still fires.
- **repeat**: while firing, again every ``repeat_interval`` after the last sent one.
- **resolved**: when a firing rule no longer holds (or has no data), if its firing was sent.

State lives in ``alert_state``, so a replica that takes the lease over carries on (no second firing
message for an episode already told). A round can outlast the lease (channels that time out, a drift
check that embeds prompts): the lease is renewed while it runs, so no other replica starts telling the
same episodes; a replica that lost it anyway (paused longer than the lease) sends nothing and leaves the
states alone. A failure (database, channel) is logged; the loop carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from llmops.alerts.config import AlertRuleConfig, compare
from llmops.alerts.leader import LeaseElector
from llmops.alerts.notify import Delivery
from llmops.alerts.service import (
    AlertEvent,
    AlertService,
    RuleState,
    notification_for,
    rule_labels,
)
from llmops.alerts.silences import Silence
from llmops.alerts.statistics import Measurement

log = logging.getLogger("llmops.alerts")

LEASE = "alert-evaluator"
RETRY_SECONDS = 60.0  # a firing message no channel took is tried again at most this often
STOP_SECONDS = 20.0  # how long a stop waits for a round under way (channels time out before)


def advance(
    previous: RuleState, rule: AlertRuleConfig, value: float | None, now: datetime
) -> tuple[RuleState, str | None]:
    """The rule's next state and what to tell: ``firing``, ``repeat``, ``resolved`` or None."""
    holds = value is not None and compare(value, rule.comparison, rule.threshold)
    state = previous
    if holds:
        if state.state in ("ok", "resolved"):
            started = replace(state, active_at=now, notified_at=None, silence_id=None)
            if rule.for_seconds == 0:
                return replace(started, state="firing", since=now), "firing"
            return replace(started, state="pending", since=now), None
        if state.state == "pending":
            active_at = state.active_at or state.since
            if now - active_at >= timedelta(seconds=rule.for_seconds):
                return replace(state, state="firing", since=now), "firing"
            return state, None
        if state.notified_at is None:
            return state, "firing"  # not told yet: silenced, or every channel failed
        repeat = rule.repeat_seconds
        if repeat is not None and now - state.notified_at >= timedelta(seconds=repeat):
            return state, "repeat"
        return state, None
    if state.state == "pending":
        return replace(state, state="ok", since=now, active_at=None), None
    if state.state == "firing":
        return replace(state, state="resolved", since=now), "resolved"
    return state, None


@dataclass(slots=True)
class _Plan:
    rule: AlertRuleConfig
    state: RuleState
    previous: RuleState
    action: str
    measurement: Measurement


class AlertEvaluator:
    def __init__(
        self,
        service: AlertService,
        elector: LeaseElector,
        *,
        interval_seconds: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.service = service
        self.elector = elector
        self.interval = interval_seconds
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._failed_at: dict[str, datetime] = {}  # rule -> last firing try that no channel took
        self.rounds = 0

    def start(self) -> None:
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="AlertEvaluator")

    async def stop(self) -> None:
        """Let a round under way finish (its notifications and states stored: nothing is told twice),
        then stop and give the lease up, so that another replica takes over at once."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout=STOP_SECONDS)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.elector.leading:
            try:
                await asyncio.to_thread(self.elector.release)
            except Exception as exc:  # boundary: the lease then runs out by itself
                log.warning("alerts: could not release the evaluator lease: %s", exc)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                if await asyncio.to_thread(self.elector.acquire):
                    await self._lead()
            except Exception as exc:  # boundary: a bad round (database down) must not end the loop
                log.warning("alerts: evaluation failed, trying again next round: %s", exc)
            with contextlib.suppress(TimeoutError):
                wait = max(0.0, self.interval - (time.monotonic() - started))
                await asyncio.wait_for(self._stopping.wait(), timeout=wait)

    async def _lead(self) -> None:
        """One round, renewing the lease while it runs."""
        renewing = asyncio.create_task(self._renew_lease(), name="AlertEvaluator lease")
        try:
            await self.run_once(fenced=True)
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing

    async def _renew_lease(self) -> None:
        while True:
            await asyncio.sleep(self.elector.ttl_seconds / 3)
            try:
                if not await asyncio.to_thread(self.elector.acquire):
                    log.warning("alerts: the evaluator lease was taken over during a round")
                    return
            except Exception as exc:  # boundary: the next renewal (or the fence) decides
                log.warning("alerts: could not renew the evaluator lease: %s", exc)

    async def run_once(self, now: datetime | None = None, *, fenced: bool = False) -> list[AlertEvent]:
        """One round over every rule in force; returns the events it recorded. ``fenced``: only while
        this replica holds the lease (checked before sending and when the states are written)."""
        now = now or self._clock()
        rules, states, silences = await asyncio.to_thread(self._read, now)
        plans: list[_Plan] = []
        next_states: list[RuleState] = []
        for rule, measurement in await asyncio.to_thread(self._measure_all, rules, now):
            previous = states.get(rule.name) or RuleState(rule.name, "ok", now)
            if measurement is None:  # could not be measured this round: keep the state as it is
                next_states.append(previous)
                continue
            state, action = advance(previous, rule, measurement.value, now)
            state = replace(state, value=measurement.value, evaluated_at=now)
            if action is not None:
                plans.append(_Plan(rule, state, previous, action, measurement))
            else:
                next_states.append(state)
        if fenced and plans and not await asyncio.to_thread(self.elector.holds):
            log.warning("alerts: the evaluator lease was lost during the round; another replica tells")
            return []
        results = await asyncio.gather(*(self._notify(plan, silences, now) for plan in plans))
        events = [event for _, event in results if event is not None]
        next_states.extend(state for state, _ in results)
        fence = self.elector.holds if fenced else None
        saved = await asyncio.to_thread(
            self.service.save_round, next_states, events, {rule.name for rule in rules}, fence
        )
        if not saved:
            log.warning("alerts: the evaluator lease was lost during the round; its states were not kept")
        self.rounds += 1
        return events

    def _read(self, now: datetime) -> tuple[list[AlertRuleConfig], dict[str, RuleState], list[Silence]]:
        return self.service.in_force(), self.service.states(), self.service.silences.active(now)

    def _measure_all(
        self, rules: list[AlertRuleConfig], now: datetime
    ) -> list[tuple[AlertRuleConfig, Measurement | None]]:
        measured: list[tuple[AlertRuleConfig, Measurement | None]] = []
        for rule in rules:
            try:
                measured.append((rule, self.service.measure(rule, now)))
            except Exception as exc:  # boundary: one rule's failure (a bad filter) spares the others
                log.warning("alert %s: cannot measure %s: %s", rule.name, rule.statistic, exc)
                measured.append((rule, None))
        return measured

    async def _notify(
        self, plan: _Plan, silences: list[Silence], now: datetime
    ) -> tuple[RuleState, AlertEvent | None]:
        rule, state, action = plan.rule, plan.state, plan.action
        if action == "resolved":
            state = replace(state, active_at=None, notified_at=None, silence_id=None)
            self._failed_at.pop(rule.name, None)
            if plan.previous.notified_at is None:  # its firing was never sent: nothing to resolve
                return state, None
        silence = next((s for s in silences if s.matches(rule.name, rule_labels(rule))), None)
        if silence is not None:
            if action != "resolved" and state.silence_id == silence.id:
                return state, None  # this silence's hold is recorded already
            event = self._event(plan, now, silence_id=silence.id)
            if action != "resolved":
                state = replace(state, silence_id=silence.id)
            return state, event
        failed_at = self._failed_at.get(rule.name)
        if action == "firing" and failed_at and (now - failed_at).total_seconds() < RETRY_SECONDS:
            return state, None
        notification = notification_for(rule, action, plan.measurement.value, now, _active_since(plan))
        try:
            channels = self.service.channels_of(rule)
        except Exception as exc:  # boundary: a channel named in the rule was removed from the file
            log.error("alert %s: %s", rule.name, exc)
            channels = []
        deliveries = await self.service.dispatcher.deliver(notification, channels)
        sent = any(delivery.ok for delivery in deliveries)
        if action != "resolved":
            if sent or not channels:
                state = replace(state, notified_at=now, silence_id=None)
                self._failed_at.pop(rule.name, None)
            else:
                self._failed_at[rule.name] = now
        event = self._event(
            plan, now, sent=sent, deliveries=tuple(deliveries), event_id=notification.event_id
        )
        return state, event

    @staticmethod
    def _event(
        plan: _Plan,
        now: datetime,
        *,
        silence_id: str | None = None,
        sent: bool = False,
        deliveries: tuple[Delivery, ...] = (),
        event_id: str | None = None,
    ) -> AlertEvent:
        rule = plan.rule
        notification = notification_for(rule, plan.action, plan.measurement.value, now, _active_since(plan))
        text = notification.text + (f" (silenced by {silence_id})" if silence_id else "")
        return AlertEvent(
            event_id or notification.event_id or "", rule.name, plan.action, now, rule.severity,
            plan.measurement.value, rule.threshold, rule.condition(), text, dict(rule.labels), silence_id,
            sent, deliveries,
        )  # fmt: skip


def _active_since(plan: _Plan) -> datetime | None:
    return plan.previous.active_at or plan.state.active_at

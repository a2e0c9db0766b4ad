"""The evaluator's states and notifications: ok → pending → firing → resolved, one firing message per
episode, repeats, silences, failed channels retried and recorded, a new leader carrying on.

The statistics come from a small in-test window source (the totals a test sets); notifications go to a
real webhook receiver on 127.0.0.1; states and events are stored in the real database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from alert_support import WebhookReceiver
from llmops.alerts.config import AlertRuleConfig, ChannelConfig
from llmops.alerts.evaluator import LEASE, RETRY_SECONDS, AlertEvaluator, advance
from llmops.alerts.leader import LeaseElector
from llmops.alerts.notify import Dispatcher
from llmops.alerts.service import AlertService, RuleState, parse_rule
from llmops.alerts.statistics import Measurer

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@dataclass
class Window:
    """The totals a window source answers (the fields of monitoring.stats.StatsRow that alerts read)."""

    requests: int = 0
    errors: int = 0
    cost: float = 0.0
    cache_lookups: int = 0
    cache_hits: int = 0
    thumbs_up: int = 0
    thumbs_down: int = 0
    latency_ms: dict[str, float | None] = field(
        default_factory=lambda: {"p50": None, "p95": None, "p99": None}
    )
    ttft_ms: dict[str, float | None] = field(default_factory=lambda: {"p50": None, "p95": None, "p99": None})


@dataclass
class Traffic:
    """A window source whose answer the test sets; it remembers what it was asked."""

    now: Window = field(default_factory=Window)
    asked: list[tuple[datetime, datetime, dict[str, str]]] = field(default_factory=list)

    def window(self, since: datetime, until: datetime, filters: Mapping[str, str]) -> Window:
        self.asked.append((since, until, dict(filters)))
        return self.now

    def errors(self, errors: int, requests: int = 100) -> None:
        self.now = Window(requests=requests, errors=errors)


def _rule(**fields: Any) -> AlertRuleConfig:
    return parse_rule({"name": "errors", "statistic": "error_rate", "threshold": 0.1, **fields})


def _setup(db: Engine, rules: list[AlertRuleConfig], hook: str) -> tuple[AlertEvaluator, Traffic]:
    traffic = Traffic()
    hook_channel = ChannelConfig(type="webhook", url=hook)
    service = AlertService(
        db,
        Measurer(traffic),
        configured=lambda: [rule.model_copy(update={"channels": ("hook",)}) for rule in rules],
        channels=lambda: {"hook": hook_channel},
    )
    service.dispatcher = Dispatcher(service.registry, backoff_seconds=0.0)
    evaluator = AlertEvaluator(service, LeaseElector(db, LEASE, ttl_seconds=30), interval_seconds=1)
    return evaluator, traffic


def test_advance_walks_the_states() -> None:
    rule = _rule(**{"for": "2m", "repeat_interval": "1h"})
    state = RuleState("errors", "ok", T0)
    state, action = advance(state, rule, 0.5, T0)
    assert (state.state, state.active_at, action) == ("pending", T0, None)
    state, action = advance(state, rule, 0.5, T0 + timedelta(minutes=1))
    assert (state.state, action) == ("pending", None)
    state, action = advance(state, rule, 0.5, T0 + timedelta(minutes=2))
    assert (state.state, state.since, action) == ("firing", T0 + timedelta(minutes=2), "firing")
    state = RuleState(**{**_fields(state), "notified_at": T0 + timedelta(minutes=2)})
    assert advance(state, rule, 0.5, T0 + timedelta(minutes=30))[1] is None
    assert advance(state, rule, 0.5, T0 + timedelta(minutes=62))[1] == "repeat"
    state, action = advance(state, rule, 0.01, T0 + timedelta(minutes=70))
    assert (state.state, action) == ("resolved", "resolved")
    state, action = advance(state, rule, None, T0 + timedelta(minutes=71))
    assert (state.state, action) == ("resolved", None)
    # pending that stops holding goes back to ok without a word
    pending, _ = advance(RuleState("errors", "ok", T0), rule, 0.5, T0)
    back, action = advance(pending, rule, 0.0, T0 + timedelta(minutes=1))
    assert (back.state, back.active_at, action) == ("ok", None, None)
    # no data while firing resolves it
    firing, _ = advance(RuleState("errors", "ok", T0), _rule(), 0.5, T0)
    assert advance(firing, _rule(), None, T0)[0].state == "resolved"
    # comparisons
    below = _rule(comparison="<=", threshold=5)
    assert advance(RuleState("errors", "ok", T0), below, 5.0, T0)[1] == "firing"
    assert advance(RuleState("errors", "ok", T0), below, 5.1, T0)[1] is None


def _fields(state: RuleState) -> dict[str, Any]:
    return {name: getattr(state, name) for name in RuleState.__slots__}


async def test_one_firing_message_per_episode_then_resolved(db: Engine) -> None:
    with WebhookReceiver() as receiver:
        evaluator, traffic = _setup(db, [_rule(labels={"team": "search"})], receiver.url)
        traffic.errors(2)
        assert await evaluator.run_once(T0) == []
        traffic.errors(30)
        [fired] = await evaluator.run_once(T0 + timedelta(seconds=30))
        assert (fired.kind, fired.sent, fired.value) == ("firing", True, 0.3)
        assert await evaluator.run_once(T0 + timedelta(seconds=60)) == []
        assert await evaluator.run_once(T0 + timedelta(seconds=90)) == []
        traffic.errors(1)
        [resolved] = await evaluator.run_once(T0 + timedelta(seconds=120))
        assert resolved.kind == "resolved"
        assert resolved.sent
        assert await evaluator.run_once(T0 + timedelta(seconds=150)) == []
        bodies = receiver.bodies()
    assert [body["status"] for body in bodies] == ["firing", "resolved"]
    assert bodies[0]["value"] == 0.3
    assert bodies[0]["labels"] == {"team": "search"}
    assert bodies[0]["active_since"] == (T0 + timedelta(seconds=30)).isoformat()
    assert bodies[1]["value"] == 0.01
    service = evaluator.service
    state = service.states()["errors"]
    assert (state.state, state.since, state.notified_at) == ("resolved", T0 + timedelta(seconds=120), None)
    events, _ = service.history()
    assert [event.kind for event in events] == ["resolved", "firing"]
    assert [event.kind for event in service.history(kind="firing")[0]] == ["firing"]
    assert events[1].deliveries[0].channel == "hook"
    assert events[1].deliveries[0].ok


async def test_for_duration_and_repeat_interval(db: Engine) -> None:
    rule = _rule(**{"for": "2m", "repeat_interval": "10m"})
    with WebhookReceiver() as receiver:
        evaluator, traffic = _setup(db, [rule], receiver.url)
        traffic.errors(50)
        for minute in (0, 1):
            assert await evaluator.run_once(T0 + timedelta(minutes=minute)) == []
        assert evaluator.service.states()["errors"].state == "pending"
        [fired] = await evaluator.run_once(T0 + timedelta(minutes=2))
        assert fired.kind == "firing"
        for minute in range(3, 12):
            assert await evaluator.run_once(T0 + timedelta(minutes=minute)) == []
        [repeated] = await evaluator.run_once(T0 + timedelta(minutes=12))
        assert repeated.kind == "repeat"
        bodies = receiver.bodies()
    assert [(body["status"], body["repeat"]) for body in bodies] == [("firing", False), ("firing", True)]
    assert bodies[0]["active_since"] == T0.isoformat()


async def test_a_silenced_alert_is_recorded_once_not_sent_and_sent_when_the_silence_ends(db: Engine) -> None:
    with WebhookReceiver() as receiver:
        evaluator, traffic = _setup(db, [_rule(severity="critical")], receiver.url)
        silences = evaluator.service.silences
        other = silences.create("errors", T0 + timedelta(hours=1), labels={"severity": "info"}, now=T0)
        silence = silences.create("err*", T0 + timedelta(minutes=5), now=T0)
        traffic.errors(50)
        [held] = await evaluator.run_once(T0 + timedelta(minutes=1))
        assert (held.kind, held.sent, held.silence_id, held.deliveries) == ("firing", False, silence.id, ())
        assert held.silence_id != other.id
        assert await evaluator.run_once(T0 + timedelta(minutes=2)) == []
        assert receiver.bodies() == []
        [fired] = await evaluator.run_once(T0 + timedelta(minutes=6))  # the silence has ended
        assert (fired.kind, fired.sent, fired.silence_id) == ("firing", True, None)
        traffic.errors(0)
        [resolved] = await evaluator.run_once(T0 + timedelta(minutes=7))
        assert resolved.sent
    assert [body["status"] for body in receiver.bodies()] == ["firing", "resolved"]


async def test_an_episode_silenced_throughout_resolves_without_a_message(db: Engine) -> None:
    with WebhookReceiver() as receiver:
        evaluator, traffic = _setup(db, [_rule()], receiver.url)
        evaluator.service.silences.create("*", T0 + timedelta(hours=1), now=T0)
        traffic.errors(50)
        [held] = await evaluator.run_once(T0 + timedelta(minutes=1))
        traffic.errors(0)
        assert await evaluator.run_once(T0 + timedelta(minutes=2)) == []
    assert held.silence_id
    assert receiver.bodies() == []
    assert evaluator.service.states()["errors"].state == "resolved"


async def test_failed_sends_are_recorded_and_retried_later_never_crashing_the_round(db: Engine) -> None:
    with WebhookReceiver(fail_first=5) as receiver:
        evaluator, traffic = _setup(db, [_rule()], receiver.url)
        traffic.errors(50)
        [failed] = await evaluator.run_once(T0)
        assert (failed.sent, failed.deliveries[0].attempts) == (False, 3)
        assert "answered 500" in (failed.deliveries[0].error or "")
        assert evaluator.service.states()["errors"].notified_at is None
        assert await evaluator.run_once(T0 + timedelta(seconds=RETRY_SECONDS / 2)) == []  # not hammered
        [sent] = await evaluator.run_once(T0 + timedelta(seconds=RETRY_SECONDS))
        assert (sent.kind, sent.sent, sent.deliveries[0].attempts) == ("firing", True, 3)
        assert await evaluator.run_once(T0 + timedelta(seconds=RETRY_SECONDS + 30)) == []
    assert [body["status"] for body in receiver.bodies()] == ["firing"]
    assert [event.sent for event in evaluator.service.history()[0]] == [True, False]


async def test_a_new_leader_carries_on_without_telling_the_same_episode_twice(db: Engine) -> None:
    with WebhookReceiver() as receiver:
        first, traffic = _setup(db, [_rule()], receiver.url)
        traffic.errors(50)
        [fired] = await first.run_once(T0)
        second, _ = _setup(db, [_rule()], receiver.url)
        second.service.measurer = first.service.measurer
        assert await second.run_once(T0 + timedelta(minutes=1)) == []
        traffic.errors(0)
        [resolved] = await second.run_once(T0 + timedelta(minutes=2))
    assert (fired.kind, resolved.kind) == ("firing", "resolved")
    assert [body["status"] for body in receiver.bodies()] == ["firing", "resolved"]


async def test_rules_without_enough_requests_or_data_are_not_judged(db: Engine) -> None:
    with WebhookReceiver() as receiver:
        rules = [
            _rule(min_requests=20),
            parse_rule({"name": "slow", "statistic": "p95_latency_ms", "threshold": 1000}),
        ]
        evaluator, traffic = _setup(db, rules, receiver.url)
        traffic.errors(5, requests=10)  # 50% errors, but on ten requests
        assert await evaluator.run_once(T0) == []
        states = evaluator.service.states()
        assert (states["errors"].state, states["errors"].value) == ("ok", None)
        assert (states["slow"].state, states["slow"].value) == ("ok", None)  # no latency sketch
        traffic.now = Window(requests=40, errors=20, latency_ms={"p50": 100.0, "p95": 1500.0, "p99": 2000.0})
        fired = await evaluator.run_once(T0 + timedelta(minutes=1))
    assert sorted(event.rule for event in fired) == ["errors", "slow"]


async def test_the_window_asked_for_is_aligned_to_the_rollups(db: Engine) -> None:
    with WebhookReceiver() as receiver:
        rules = [
            _rule(window="5m", filters={"model": "gpt-4o"}),
            parse_rule({"name": "team", "statistic": "requests", "threshold": 1, "window": "15m",
                        "filters": {"deployment": "d1"}}),
        ]  # fmt: skip
        evaluator, traffic = _setup(db, rules, receiver.url)
        now = T0 + timedelta(minutes=7, seconds=20)
        await evaluator.run_once(now)
    assert traffic.asked == [
        (T0 + timedelta(minutes=2), now, {"model": "gpt-4o"}),  # whole minutes by model
        (T0 - timedelta(minutes=10), now, {"deployment": "d1"}),  # five minutes otherwise
    ]


async def test_deleted_rules_lose_their_state_and_the_loop_survives_a_broken_source(db: Engine) -> None:
    with WebhookReceiver() as receiver:
        rules = [_rule()]
        evaluator, traffic = _setup(db, rules, receiver.url)
        traffic.errors(50)
        await evaluator.run_once(T0)
        rules.clear()
        await evaluator.run_once(T0 + timedelta(minutes=1))
        assert evaluator.service.states() == {}

        class Broken:
            def window(self, *_: object) -> Window:
                raise RuntimeError("database is down")

        rules.append(_rule())
        evaluator.service.measurer = Measurer(Broken())
        assert await evaluator.run_once(T0 + timedelta(minutes=2)) == []  # logged, state kept


async def test_the_loop_evaluates_while_leading_and_gives_the_lease_up(db: Engine) -> None:
    with WebhookReceiver() as receiver:
        evaluator, traffic = _setup(db, [_rule()], receiver.url)
        evaluator.interval = 0.05
        traffic.errors(50)
        evaluator.start()
        try:
            await asyncio.to_thread(receiver.wait_for, 1, "firing", 10)
        finally:
            await evaluator.stop()
    assert evaluator.rounds >= 1
    other = LeaseElector(db, LEASE, ttl_seconds=30)
    assert other.acquire()  # released at stop: no waiting for the ttl


async def test_a_round_longer_than_the_lease_keeps_it_so_no_other_replica_tells_the_same_episode(
    db: Engine,
) -> None:
    """A channel slower than the lease (a webhook timing out, three tries) must not let a second
    replica take the lease over mid-round: it would find the episode untold and send it again."""
    from llmops.alerts.channels.base import Channel, Notification

    started = asyncio.Event()

    class SlowChannel(Channel):
        kind = "slow"

        async def send(self, notification: Notification) -> None:
            started.set()
            await asyncio.sleep(2.0)

    traffic = Traffic()
    service = AlertService(
        db,
        Measurer(traffic),
        configured=lambda: [_rule(channels=[{"type": "slow"}])],
    )
    service.registry.register("slow", SlowChannel)
    evaluator = AlertEvaluator(service, LeaseElector(db, LEASE, ttl_seconds=0.9), interval_seconds=60)
    other = LeaseElector(db, LEASE, ttl_seconds=0.9)
    traffic.errors(50)
    evaluator.start()
    try:
        await asyncio.wait_for(started.wait(), timeout=10)
        await asyncio.sleep(1.4)  # past the lease's end: had it not been renewed, it would be free
        assert not await asyncio.to_thread(other.acquire)
    finally:
        await evaluator.stop()
    assert [event.kind for event in service.history()[0]] == ["firing"]


async def test_a_replica_that_lost_the_lease_sends_nothing_and_leaves_the_states(db: Engine) -> None:
    with WebhookReceiver() as receiver:
        evaluator, traffic = _setup(db, [_rule()], receiver.url)
        assert await asyncio.to_thread(evaluator.elector.acquire)
        await asyncio.to_thread(evaluator.elector.release)  # as when its lease ran out while it paused
        assert await asyncio.to_thread(LeaseElector(db, LEASE, ttl_seconds=30).acquire)
        traffic.errors(50)
        assert await evaluator.run_once(T0, fenced=True) == []
        assert receiver.bodies() == []
    assert evaluator.service.states() == {}
    assert evaluator.service.history()[0] == []


async def test_states_are_not_written_by_a_replica_whose_lease_ended_mid_round(db: Engine) -> None:
    with WebhookReceiver() as receiver:
        evaluator, traffic = _setup(db, [_rule()], receiver.url)
        leader = evaluator.elector
        assert await asyncio.to_thread(leader.acquire)
        successor = LeaseElector(db, LEASE, ttl_seconds=30)
        service = evaluator.service
        traffic.errors(50)
        saved = service.save_round([RuleState("errors", "firing", T0)], [], {"errors"}, leader.holds)
        assert saved
        await asyncio.to_thread(leader.release)
        assert await asyncio.to_thread(successor.acquire)
        stale = service.save_round([RuleState("errors", "ok", T0)], [], {"errors"}, leader.holds)
    assert not stale
    assert service.states()["errors"].state == "firing"

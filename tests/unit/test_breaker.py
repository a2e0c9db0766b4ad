"""The circuit breaker on its own: opening, cooling down, the half-open probe, closing."""

from __future__ import annotations

from llmops.gateway.breaker import BreakerState, CircuitBreaker
from llmops.model_config import CircuitBreakerConfig


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _breaker(clock: Clock, **config: float) -> CircuitBreaker:
    settings = {"consecutive_failures": 3, "cooldown_seconds": 10.0, "min_calls": 10, "window_seconds": 30.0}
    settings.update(config)
    return CircuitBreaker(CircuitBreakerConfig.model_validate(settings), clock)


def test_opens_after_consecutive_failures_and_refuses_calls() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(2):
        assert breaker.acquire()
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allows()
    assert not breaker.acquire()
    assert breaker.retry_in() == 10.0
    assert breaker.times_opened == 1


def test_a_success_resets_the_consecutive_count() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(5):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0


def test_error_rate_over_the_window_opens_it() -> None:
    clock = Clock()
    breaker = _breaker(clock, consecutive_failures=100, error_rate=0.5, min_calls=10)
    for _ in range(4):  # alternate: never 2 failures in a row, but half the calls fail
        breaker.record_success()
        clock.now += 0.5
        breaker.record_failure()
        clock.now += 0.5
    assert breaker.state is BreakerState.CLOSED  # 8 calls: fewer than min_calls
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN


def test_the_window_forgets_old_calls() -> None:
    clock = Clock()
    breaker = _breaker(clock, consecutive_failures=100, error_rate=0.5, min_calls=4, window_seconds=10)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    clock.now += 11  # those three fell out of the window
    breaker.record_success()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_success()
    assert breaker.error_rate() == 0.25
    assert breaker.state is BreakerState.CLOSED


def test_too_few_calls_never_trip_the_rate() -> None:
    clock = Clock()
    breaker = _breaker(clock, consecutive_failures=100, error_rate=0.1, min_calls=10)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_half_open_lets_one_probe_through_and_closes_on_success() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 9.9
    assert breaker.state is BreakerState.OPEN
    clock.now += 0.2
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allows()
    assert breaker.acquire()  # the probe
    assert not breaker.allows()  # nobody else while it runs
    assert not breaker.acquire()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.acquire()
    assert breaker.acquire()


def test_a_failed_probe_opens_it_again_for_a_new_cooldown() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 10
    assert breaker.acquire()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.times_opened == 2
    clock.now += 5
    assert not breaker.allows()
    clock.now += 5
    assert breaker.allows()


def test_a_probe_without_verdict_frees_the_slot() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 10
    assert breaker.acquire()
    breaker.release()  # e.g. the client went away, or answered 400
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.acquire()


def test_state_labels_and_gauge_values() -> None:
    assert [(state.label, int(state)) for state in BreakerState] == [
        ("closed", 0),
        ("half-open", 1),
        ("open", 2),
    ]

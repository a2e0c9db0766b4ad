"""A circuit breaker per deployment: stop sending traffic to an upstream that keeps failing.

Closed (normal) → open after ``consecutive_failures`` failures in a row, or once the calls of the
last ``window_seconds`` (at least ``min_calls`` of them) failed at ``error_rate`` or more. Open for
``cooldown_seconds``, then half-open: one probe call goes through; its success closes the breaker,
its failure opens it again. Only failures that are the deployment's fault count (overload, 5xx,
timeouts, refused connections); a 400 the client caused is neutral.

Everything runs on the event loop's thread: plain attributes, no locks.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from enum import IntEnum

from llmops.model_config import CircuitBreakerConfig


class BreakerState(IntEnum):
    """The value of the ``llmops_deployment_circuit_state`` gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


class CircuitBreaker:
    def __init__(self, config: CircuitBreakerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._state = BreakerState.CLOSED
        self.consecutive_failures = 0
        self.opened_at = 0.0
        self.times_opened = 0
        self._probing = False
        # per-second buckets [second, calls, failures] over the window, with running totals
        self._buckets: deque[list[int]] = deque()
        self._calls = 0
        self._failures = 0

    @property
    def state(self) -> BreakerState:
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self.opened_at >= self.config.cooldown_seconds
        ):
            self._state = BreakerState.HALF_OPEN
            self._probing = False
        return self._state

    def allows(self) -> bool:
        """Could a call go to this deployment now (without claiming the half-open probe)?"""
        state = self.state
        return state is BreakerState.CLOSED or (state is BreakerState.HALF_OPEN and not self._probing)

    def acquire(self) -> bool:
        """Claim the right to call: always when closed, once per probe when half-open."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when it already would)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self.opened_at + self.config.cooldown_seconds - self._clock())

    def record_success(self) -> None:
        self.consecutive_failures = 0
        self._count(failed=False)
        if self._state is not BreakerState.CLOSED:
            self._close()

    def record_failure(self) -> None:
        self.consecutive_failures += 1
        self._count(failed=True)
        if self._state is BreakerState.HALF_OPEN:
            self._open()
        elif self._state is BreakerState.CLOSED and self._tripped():
            self._open()

    def release(self) -> None:
        """A call ended with no verdict (cancelled, or a client error): free the probe slot."""
        self._probing = False

    def error_rate(self) -> float:
        self._expire(int(self._clock()))
        return self._failures / self._calls if self._calls else 0.0

    def _tripped(self) -> bool:
        config = self.config
        if self.consecutive_failures >= config.consecutive_failures:
            return True
        return self._calls >= config.min_calls and self._failures >= config.error_rate * self._calls

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self.opened_at = self._clock()
        self.times_opened += 1
        self._probing = False

    def _close(self) -> None:
        self._state = BreakerState.CLOSED
        self._probing = False
        self._buckets.clear()
        self._calls = self._failures = 0

    def _count(self, *, failed: bool) -> None:
        second = int(self._clock())
        self._expire(second)
        buckets = self._buckets
        if not buckets or buckets[-1][0] != second:
            buckets.append([second, 0, 0])
        bucket = buckets[-1]
        bucket[1] += 1
        self._calls += 1
        if failed:
            bucket[2] += 1
            self._failures += 1

    def _expire(self, second: int) -> None:
        oldest = second - self.config.window_seconds
        buckets = self._buckets
        while buckets and buckets[0][0] <= oldest:
            _, calls, failures = buckets.popleft()
            self._calls -= calls
            self._failures -= failures

"""Where the counters live: :class:`LimitBackend`, and :class:`MemoryBackend` for one process.

A backend evaluates a :class:`~llmops.limits.plan.Plan` atomically (every check passes and all are
committed, or nothing changes) and settles it later. Windows are exact sliding logs: an entry
leaves 60 s after it was admitted, so no 60-second span ever holds more than the limit. The
memory backend runs on the event loop only: admission is synchronous code, hence atomic.

Errors: backends raise what their client raises (the Redis backend: ``redis.exceptions.RedisError``
and ``OSError``); the :class:`~llmops.limits.limiter.Limiter` applies the failure policy.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable

from llmops.limits.plan import (
    WINDOW_SECONDS,
    BudgetState,
    Outcome,
    Plan,
    RateCheck,
    RateState,
    SpendKey,
)

# what a settlement gives back: the spend after it per budget of the shape (-1: no counter), or the error
Settled = Callable[[list[int] | BaseException], None]


class LimitBackend:
    name = ""
    errors: tuple[type[BaseException], ...] = ()  # what a failure of its store raises

    async def admit(self, plan: Plan) -> Outcome:
        raise NotImplementedError

    def settle(self, plan: Plan, tokens: int, nano: int, done: Settled) -> None:
        """Replace the request's token estimate by ``tokens``, release its reservations and add
        ``nano`` to the spend counters it checked; ``done`` gets the new spend (now or later)."""
        raise NotImplementedError

    async def seed(self, values: dict[SpendKey, int]) -> None:
        """Set spend counters that do not exist yet (a counter that exists is left as it is)."""
        raise NotImplementedError

    def sweep(self, current: set[str]) -> None:
        """Forget what no window or period needs any more (``current``: the buckets in use)."""

    async def flush(self) -> None:
        """Wait until every settlement handed over so far has been applied."""

    async def aclose(self) -> None:
        """Release connections."""


class _Window:
    """Admitted entries ``[time, amount]`` of the last 60 s, oldest first, and their sum."""

    __slots__ = ("entries", "total")

    def __init__(self) -> None:
        self.entries: deque[list[float]] = deque()
        self.total = 0

    def purge(self, cutoff: float) -> None:
        entries = self.entries
        while entries and entries[0][0] <= cutoff:
            self.total -= int(entries.popleft()[1])

    def wait(self, now: float, need: int) -> float:
        """Seconds until ``need`` more fits (entries leave oldest first); 0 when it fits now."""
        if need <= 0:
            return 0.0
        freed = 0
        for entry in self.entries:
            freed += int(entry[1])
            if freed >= need:
                return entry[0] + WINDOW_SECONDS - now
        return WINDOW_SECONDS

    def reset(self, now: float) -> float:
        """Seconds until the oldest entry leaves (a full window if there is none)."""
        return self.entries[0][0] + WINDOW_SECONDS - now if self.entries else WINDOW_SECONDS


class _Reservations:
    """Requests under way of one scope: member → (deadline, nano), in deadline order."""

    __slots__ = ("held", "total")

    def __init__(self) -> None:
        self.held: dict[str, tuple[float, int]] = {}
        self.total = 0

    def purge(self, now: float) -> None:
        held = self.held
        while held:
            member, (deadline, amount) = next(iter(held.items()))
            if deadline > now:
                return
            del held[member]
            self.total -= amount

    def release(self, member: str) -> None:
        found = self.held.pop(member, None)
        if found is not None:
            self.total -= found[1]


class MemoryBackend(LimitBackend):
    """Counters of this process; exact for one replica, and what a server without Redis uses."""

    name = "memory"

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[tuple[str, str, str], _Window] = {}
        self._reservations: dict[tuple[str, str], _Reservations] = {}
        self._spent: dict[SpendKey, int] = {}
        self._open: dict[str, list[tuple[_Window, list[float]]]] = {}  # member → its tpm entries

    async def admit(self, plan: Plan) -> Outcome:
        return self.admit_now(plan)

    def admit_now(self, plan: Plan) -> Outcome:
        shape, spent = plan.shape, self._spent
        missing = [check.spend_key for check in shape.budgets if check.spend_key not in spent]
        if missing:
            return Outcome(False, missing=tuple(dict.fromkeys(missing)))
        now = self._clock()
        cutoff = now - WINDOW_SECONDS
        rates: list[RateState] = []
        windows: list[_Window] = []
        for check in shape.rates:
            window = self._window(check)
            window.purge(cutoff)
            used, amount = window.total, plan.amount(check)
            ok = used + amount <= check.limit
            wait = window.reset(now) if ok else window.wait(now, used + amount - check.limit)
            rates.append(RateState(check, used, ok, wait, amount))
            windows.append(window)
        reserved: dict[tuple[str, str], int] = {}
        for reservation in shape.reservations:
            held = self._held(reservation.scope, reservation.scope_id)
            held.purge(now)
            reserved[(reservation.scope, reservation.scope_id)] = held.total
        budgets: list[BudgetState] = []
        for budget in shape.budgets:
            already = reserved.get((budget.scope, budget.scope_id), 0)
            current = spent[budget.spend_key]
            ok = current + already + plan.nano <= budget.limit
            budgets.append(BudgetState(budget, current, already, ok, plan.nano))
        admitted = all(state.ok for state in rates) and all(state.ok for state in budgets)
        if admitted:
            self._commit(plan, now, windows)
        return Outcome(admitted, tuple(rates), tuple(budgets))

    def _commit(self, plan: Plan, now: float, windows: list[_Window]) -> None:
        opened: list[tuple[_Window, list[float]]] = []
        for check, window in zip(plan.shape.rates, windows, strict=True):
            amount = plan.amount(check)
            entry = [now, float(amount)]
            window.entries.append(entry)
            window.total += amount
            if check.kind == "tpm":
                opened.append((window, entry))
        if opened:
            self._open[plan.member] = opened
        deadline = now + plan.hold_seconds
        for reservation in plan.shape.reservations:
            held = self._held(reservation.scope, reservation.scope_id)
            held.held[plan.member] = (deadline, plan.nano)
            held.total += plan.nano

    def settle(self, plan: Plan, tokens: int, nano: int, done: Settled) -> None:
        cutoff = self._clock() - WINDOW_SECONDS
        for window, entry in self._open.pop(plan.member, ()):
            if entry[0] > cutoff:  # still in the window: the actual count replaces the estimate
                window.total += tokens - int(entry[1])
                entry[1] = float(tokens)
        for reservation in plan.shape.reservations:
            self._held(reservation.scope, reservation.scope_id).release(plan.member)
        after: list[int] = []
        for budget in plan.shape.budgets:
            key = budget.spend_key
            if key in self._spent:
                self._spent[key] += nano
                after.append(self._spent[key])
            else:
                after.append(-1)
        done(after)

    async def seed(self, values: dict[SpendKey, int]) -> None:
        for key, value in values.items():
            self._spent.setdefault(key, value)

    def sweep(self, current: set[str]) -> None:
        now = self._clock()
        cutoff = now - WINDOW_SECONDS
        for name, window in list(self._windows.items()):
            window.purge(cutoff)
            if not window.entries:
                del self._windows[name]
        for scope, held in list(self._reservations.items()):
            held.purge(now)
            if not held.held:
                del self._reservations[scope]
        for member, opened in list(self._open.items()):
            if all(entry[0] <= cutoff for _, entry in opened):
                del self._open[member]
        for key in [key for key in self._spent if key[3] not in current]:
            del self._spent[key]

    def _window(self, check: RateCheck) -> _Window:
        name = (check.scope, check.scope_id, check.kind)
        window = self._windows.get(name)
        if window is None:
            window = self._windows[name] = _Window()
        return window

    def _held(self, scope: str, scope_id: str) -> _Reservations:
        held = self._reservations.get((scope, scope_id))
        if held is None:
            held = self._reservations[(scope, scope_id)] = _Reservations()
        return held

    def counters(self) -> Iterable[tuple[SpendKey, int]]:
        """The spend counters held (for tests and the sweep)."""
        return self._spent.items()

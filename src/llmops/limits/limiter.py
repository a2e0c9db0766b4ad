"""The limiter: what the gateway calls to admit a request against its key's and team's limits, and
to settle it once answered.

:meth:`Limiter.admit` builds the request's :class:`~llmops.limits.plan.Plan` (rpm, tpm, one
reservation per budgeted scope and the budgets of the current UTC day, month and total; the
caller's :class:`~llmops.limits.plan.Shape` is built at its first request of the day and reused),
has the backend check and commit it atomically, and answers a :class:`Ticket` carrying OpenAI's
``x-ratelimit-*`` headers, or raises a 429 (:mod:`llmops.limits.answers`). :meth:`Limiter.settle`
replaces the estimate by what the request really used (exactly once per ticket) and hands the
spend to the :class:`~llmops.limits.spend.SpendLedger`. A spend counter the backend does not hold
yet is seeded first from the ``spend`` table, plus what this process settled and has not written.

When the backend fails, ``rate_limit_on_redis_error`` and ``budget_on_redis_error`` decide:
``fail_open`` admits without counting, ``fail_closed`` answers 503 ``limits_unavailable``. Failures
are counted in /metrics and logged at most once per :data:`LOG_EVERY_SECONDS`.

Errors: :class:`~llmops.gateway.errors.GatewayError` (429 ``rate_limit_exceeded`` or
``insufficient_quota``, 503 ``limits_unavailable``) from :meth:`Limiter.admit`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from sqlalchemy.exc import SQLAlchemyError

from llmops.gateway.errors import GatewayError
from llmops.ids import new_id
from llmops.limits.answers import duration_text, ratelimit_headers, refusal
from llmops.limits.backends import LimitBackend
from llmops.limits.periods import buckets, describe, period_end, to_nano, usd_text
from llmops.limits.plan import BudgetCheck, Demand, Plan, RateCheck, Reservation, Scope, Shape, SpendKey
from llmops.limits.policy import PERIODS, Limits
from llmops.limits.spend import SpendLedger
from llmops.throttled_log import ThrottledLog
from llmops.tracing.metrics import LimitMetrics

log = logging.getLogger("llmops.limits")

FailMode = Literal["fail_open", "fail_closed"]
LOG_EVERY_SECONDS = 10.0
_SEED_ATTEMPTS = 3
_MAX_ALERTED = 10_000
_MAX_SHAPES = 10_000  # callers whose shapes are kept (all dropped at once when full)
_DAY = 86_400.0

__all__ = ["Caller", "Demand", "Limiter", "LimiterOptions", "SeedFailed", "Ticket", "duration_text"]


class SeedFailed(Exception):
    """Spend counters stayed missing after seeding (something deletes them as fast as they are set)."""


class Caller(Protocol):
    """What the limiter reads of a caller (:class:`llmops.gateway.auth.Principal` has it)."""

    @property
    def key_id(self) -> str | None: ...
    @property
    def name(self) -> str: ...
    @property
    def team_id(self) -> str | None: ...
    @property
    def team_name(self) -> str | None: ...
    @property
    def limits(self) -> Limits: ...
    @property
    def team_limits(self) -> Limits: ...


@dataclass(frozen=True, slots=True)
class LimiterOptions:
    alert_fraction: float = 0.8
    rate_on_error: FailMode = "fail_open"
    budget_on_error: FailMode = "fail_closed"
    hold_seconds: float = 900.0
    flush_seconds: float = 2.0


class Ticket:
    """One admitted request: settle it once with :meth:`Limiter.settle`; ``headers`` go on its answer."""

    __slots__ = ("plan", "headers", "backed", "settled")

    def __init__(self, plan: Plan, headers: list[tuple[bytes, bytes]], *, backed: bool = True) -> None:
        self.plan = plan
        self.headers = headers
        self.backed = backed  # False: admitted without the backend (fail_open), nothing to settle there
        self.settled = False


class Limiter:
    def __init__(
        self,
        backend: LimitBackend,
        ledger: SpendLedger,
        metrics: LimitMetrics,
        options: LimiterOptions | None = None,
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.backend = backend
        self.ledger = ledger
        self._metrics = metrics
        self.options = options or LimiterOptions()
        self._wall = wall
        self._errors: tuple[type[BaseException], ...] = (*backend.errors, SQLAlchemyError, SeedFailed)
        self._shapes: dict[tuple[object, ...], Shape] = {}
        self._alerted: set[SpendKey] = set()
        self._log = ThrottledLog(log, LOG_EVERY_SECONDS)  # one warning per kind: admit, settle, flush
        self._task: asyncio.Task[None] | None = None

    # --- admission ------------------------------------------------------------------------------

    async def admit(self, caller: Caller, demand: Demand) -> Ticket:
        """Count the request against every limit of its key and team, or raise GatewayError (429/503)."""
        plan = Plan(self._shape(caller), new_id(), demand.tokens, demand.nano, self.options.hold_seconds)
        try:
            outcome = await self.backend.admit(plan)
            attempts = 1
            while outcome.missing:
                if attempts == _SEED_ATTEMPTS:
                    raise SeedFailed(f"spend counters still missing after seeding: {outcome.missing}")
                await self._seed(outcome.missing)
                outcome = await self.backend.admit(plan)
                attempts += 1
        except self._errors as exc:
            return self._unavailable(plan, exc)
        if not outcome.admitted:
            raise refusal(outcome, self._wall(), self._metrics)
        return Ticket(plan, ratelimit_headers(outcome))

    def _shape(self, caller: Caller) -> Shape:
        """The caller's counters today: built at its first request of the day, then reused."""
        now = self._wall()
        cache_key = (
            caller.key_id,
            caller.name,
            caller.limits,
            caller.team_id,
            caller.team_name,
            caller.team_limits,
        )
        shape = self._shapes.get(cache_key)
        if shape is None or not (shape.valid_until - _DAY <= now < shape.valid_until):
            if len(self._shapes) >= _MAX_SHAPES:
                self._shapes.clear()
            shape = self._shapes[cache_key] = _build_shape(caller, now)
        return shape

    async def _seed(self, missing: tuple[SpendKey, ...]) -> None:
        stored = await asyncio.to_thread(self.ledger.repository.read, missing)
        await self.backend.seed({key: value + self.ledger.pending(key) for key, value in stored.items()})

    def _unavailable(self, plan: Plan, exc: BaseException) -> Ticket:
        options, shape = self.options, plan.shape
        closed = (bool(shape.budgets) and options.budget_on_error == "fail_closed") or (
            bool(shape.rates) and options.rate_on_error == "fail_closed"
        )
        self._metrics.backend_errors.inc(("admit",))
        outcome = "refused" if closed else "admitted"
        self._metrics.error_decisions.inc((outcome,))
        self._log.warning(
            "admit",
            "limits: the %s backend failed (%s: %s); requests are %s (rate_limit_on_redis_error=%s, "
            "budget_on_redis_error=%s)",
            self.backend.name,
            type(exc).__name__,
            exc,
            outcome,
            options.rate_on_error,
            options.budget_on_error,
        )
        if closed:
            raise GatewayError(
                503,
                "rate limits and budgets cannot be checked right now; retry shortly",
                code="limits_unavailable",
                headers=[(b"retry-after", b"1")],
            )
        return Ticket(plan, [], backed=False)

    # --- settlement -----------------------------------------------------------------------------

    def settle(self, ticket: Ticket, tokens: int, nano: int) -> None:
        """What the request really used; the first call counts, later ones do nothing."""
        if ticket.settled:
            return
        ticket.settled = True
        plan = ticket.plan
        shape = plan.shape
        if nano > 0:
            for key in shape.spend_keys:
                self.ledger.add(key, nano)
        if not ticket.backed or not (shape.reservations or shape.has_tpm):
            return

        def settled(result: list[int] | BaseException) -> None:
            self._settled(plan, nano, result)

        self.backend.settle(plan, tokens, nano, settled)

    def _settled(self, plan: Plan, nano: int, result: list[int] | BaseException) -> None:
        if isinstance(result, BaseException):
            self._metrics.backend_errors.inc(("settle",))
            self._log.warning(
                "settle",
                "limits: settling on the %s backend failed (%s: %s); the spend still goes to the database "
                "and the reservation lapses after %.0fs",
                self.backend.name,
                type(result).__name__,
                result,
                plan.hold_seconds,
            )
            return
        if nano <= 0:
            return
        fraction = self.options.alert_fraction
        for check, after in zip(plan.shape.budgets, result, strict=False):
            threshold = check.limit * fraction
            if after >= 0 and after - nano < threshold <= after:
                self._alert(check, after)

    def _alert(self, check: BudgetCheck, spent: int) -> None:
        key = check.spend_key
        if key in self._alerted:
            return
        if len(self._alerted) >= _MAX_ALERTED:
            self._alerted.clear()
        self._alerted.add(key)
        self._metrics.budget_alerts.inc((check.scope, check.period))
        share = spent / check.limit if check.limit else 1.0
        log.warning(
            "budget alert: %s %r has spent %s of its %s budget %s (%.0f%%, alert at %.0f%%)",
            check.scope,
            check.name,
            usd_text(spent),
            usd_text(check.limit),
            describe(check.period),
            share * 100,
            self.options.alert_fraction * 100,
        )

    # --- lifetime -------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._maintain(), name="llmops-limits-flush")

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(self.options.flush_seconds)
            await self.flush()
            self.backend.sweep(set(buckets(self._wall()).values()))

    async def flush(self) -> None:
        """Write the spend settled so far to the database (failures are logged, counted and retried)."""
        try:
            await self.ledger.flush()
        except SQLAlchemyError as exc:
            self._metrics.backend_errors.inc(("flush",))
            self._log.warning(
                "flush",
                "limits: could not write spend to the database (%s: %s); kept for the next try",
                type(exc).__name__,
                exc,
            )

    async def stop(self) -> None:
        """Apply the settlements under way, write the spend, close the backend."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):  # the cancellation asked for just above
                await self._task
            self._task = None
        try:
            await asyncio.wait_for(self.backend.flush(), timeout=5)
        except TimeoutError:
            log.warning("limits: settlements still under way at shutdown were left to lapse")
        await self.flush()
        await self.backend.aclose()


def _build_shape(caller: Caller, now: float) -> Shape:
    """Every counter of the caller's key and team for the UTC day of ``now``."""
    current = buckets(now)
    rates: list[RateCheck] = []
    reservations: list[Reservation] = []
    budgets: list[BudgetCheck] = []
    spend_keys: list[SpendKey] = []
    scopes: tuple[tuple[Scope, str | None, str | None, Limits], ...] = (
        ("key", caller.key_id, caller.name, caller.limits),
        ("team", caller.team_id, caller.team_name, caller.team_limits),
    )
    for scope, scope_id, name, limits in scopes:
        if scope_id is None or limits.empty:
            continue
        label = name or scope_id
        if limits.rpm is not None:
            rates.append(RateCheck(scope, scope_id, label, "rpm", limits.rpm))
        if limits.tpm is not None:
            rates.append(RateCheck(scope, scope_id, label, "tpm", limits.tpm))
        spend_keys += [(scope, scope_id, period, current[period]) for period in PERIODS]
        scope_budgets = limits.budgets()
        if scope_budgets:
            reservations.append(Reservation(scope, scope_id))
            for period, usd in scope_budgets.items():
                ends = period_end(period, now)
                budgets.append(
                    BudgetCheck(scope, scope_id, label, period, current[period], to_nano(usd), ends)
                )
    return Shape(
        tuple(rates),
        tuple(reservations),
        tuple(budgets),
        tuple(spend_keys),
        valid_until=period_end("day", now) or math.inf,
    )

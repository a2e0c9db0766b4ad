"""What one admission asks of a backend, and what the backend answers.

A :class:`Shape` lists every counter a caller's requests touch, for its key and for its key's
team: sliding windows (``rpm`` counts 1 per request, ``tpm`` the request's tokens), one
reservation per scope that has a budget, and the spend counter of each budget period. It depends
only on the caller and the day, so the limiter builds it once and reuses it (backends keep what
they derive from it, such as Redis commands, in :attr:`Shape.compiled`). A :class:`Plan` is one
request: a shape, a unique member id, and the request's tokens and nano-USD. A backend checks every
counter and commits all or none; both backends (memory, Redis) read the same structures, so they
share their tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from llmops.limits.policy import Period

Scope = Literal["key", "team", "deployment"]
RateKind = Literal["rpm", "tpm"]
SpendKey = tuple[str, str, str, str]  # scope, scope id, period, bucket: one row of the spend table

WINDOW_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class RateCheck:
    """A sliding 60-second window: at most ``limit`` admitted in any 60 s."""

    scope: Scope
    scope_id: str
    name: str  # the key's or team's name, for messages
    kind: RateKind
    limit: int


@dataclass(frozen=True, slots=True)
class Reservation:
    """What a request may cost at most, held against every budget of its scope until it settles."""

    scope: Scope
    scope_id: str


@dataclass(frozen=True, slots=True)
class BudgetCheck:
    """Settled spend of the period's bucket + all reservations of the scope + this one <= limit."""

    scope: Scope
    scope_id: str
    name: str
    period: Period
    bucket: str
    limit: int  # nano-USD
    ends_at: float | None  # epoch seconds; None for the total

    @property
    def spend_key(self) -> SpendKey:
        return (self.scope, self.scope_id, self.period, self.bucket)


@dataclass(eq=False, slots=True)
class Shape:
    """The counters of one caller on one day. Budgets follow their scope's reservation, in order."""

    rates: tuple[RateCheck, ...] = ()
    reservations: tuple[Reservation, ...] = ()
    budgets: tuple[BudgetCheck, ...] = ()
    spend_keys: tuple[SpendKey, ...] = ()  # every period of every limited scope (for the spend table)
    valid_until: float = float("inf")  # epoch seconds: the day's buckets change then
    has_tpm: bool = False
    compiled: dict[str, Any] = field(default_factory=dict)  # backend name → what it derived

    def __post_init__(self) -> None:
        self.has_tpm = any(check.kind == "tpm" for check in self.rates)


@dataclass(frozen=True, slots=True)
class Demand:
    """What a request may use at most: prompt + completion tokens (tpm) and cost in nano-USD (budgets)."""

    tokens: int = 0
    nano: int = 0


@dataclass(slots=True)
class Plan:
    shape: Shape
    member: str  # the request's unique id in every window and reservation
    tokens: int = 0  # what each tpm window counts for it
    nano: int = 0  # what it reserves against each budget
    hold_seconds: float = 900.0  # a reservation nobody settles (a crashed replica) lapses after this

    def amount(self, check: RateCheck) -> int:
        return 1 if check.kind == "rpm" else self.tokens


@dataclass(frozen=True, slots=True)
class RateState:
    check: RateCheck
    used: int  # in the window before this request
    ok: bool
    wait_seconds: float  # refused: until it would fit; admitted: until the oldest entry leaves
    amount: int  # what this request counts


@dataclass(frozen=True, slots=True)
class BudgetState:
    check: BudgetCheck
    spent: int  # settled in the bucket
    reserved: int  # held by requests under way (this one not included)
    ok: bool
    amount: int  # what this request reserves


@dataclass(frozen=True, slots=True)
class Outcome:
    admitted: bool
    rates: tuple[RateState, ...] = ()
    budgets: tuple[BudgetState, ...] = ()
    missing: tuple[SpendKey, ...] = ()  # spend counters the backend does not hold yet: seed and retry

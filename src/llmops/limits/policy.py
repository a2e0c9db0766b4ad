"""What a key or a team may use per minute and spend per period: the values stored with it.

A :class:`Limits` is read from the ``limits`` JSON column of a key or a team and written back by
:meth:`Limits.to_json`; the CLI and API parse budgets such as ``10/day`` with :func:`parse_budget`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from llmops.errors import UserError

Period = Literal["day", "month", "total"]
PERIODS: tuple[Period, ...] = ("day", "month", "total")


MAX_COUNT = 10**9
"""The largest rpm or tpm (far above any real limit)."""
MAX_USD = 1_000_000.0
"""The largest budget: counted in nano-USD, it stays exact in Redis's Lua numbers (2**53)."""


class InvalidLimits(UserError):
    """A limit or budget that cannot be used (the message says which and why)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Requests and tokens per minute, and USD budgets per day, month and in total (None: no limit)."""

    rpm: int | None = None
    tpm: int | None = None
    budget_day: float | None = None
    budget_month: float | None = None
    budget_total: float | None = None

    @property
    def empty(self) -> bool:
        # read on every request of every key (Principal.limited): plain attribute tests, no dicts
        return (
            self.rpm is None
            and self.tpm is None
            and self.budget_day is None
            and self.budget_month is None
            and self.budget_total is None
        )

    def budget(self, period: Period) -> float | None:
        value: float | None = getattr(self, f"budget_{period}")
        return value

    def budgets(self) -> dict[Period, float]:
        return {period: value for period in PERIODS if (value := self.budget(period)) is not None}

    def with_budget(self, period: Period, usd: float | None) -> Limits:
        if period == "day":
            return replace(self, budget_day=usd)
        if period == "month":
            return replace(self, budget_month=usd)
        return replace(self, budget_total=usd)

    def to_json(self) -> dict[str, Any]:
        fields = {
            "rpm": self.rpm,
            "tpm": self.tpm,
            "budget_day": self.budget_day,
            "budget_month": self.budget_month,
            "budget_total": self.budget_total,
        }
        return {name: value for name, value in fields.items() if value is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Limits:
        if not data:
            return NO_LIMITS
        return cls(
            rpm=_positive_int(data.get("rpm"), "rpm"),
            tpm=_positive_int(data.get("tpm"), "tpm"),
            budget_day=_usd(data.get("budget_day"), "budget_day"),
            budget_month=_usd(data.get("budget_month"), "budget_month"),
            budget_total=_usd(data.get("budget_total"), "budget_total"),
        )


NO_LIMITS = Limits()


def parse_budget(text: str) -> tuple[Period, float]:
    """``10/day``, ``250/month``, ``1000/total`` or ``1000`` (total) → (period, USD)."""
    amount, _, period = text.strip().partition("/")
    period = period.strip() or "total"
    if period not in PERIODS:
        raise InvalidLimits(f"budget {text!r}: the period must be one of {', '.join(PERIODS)}")
    try:
        usd = float(amount.strip().lstrip("$"))
    except ValueError:
        raise InvalidLimits(f"budget {text!r}: expected an amount in USD such as 10/day") from None
    return period, _usd(usd, f"budget {text!r}") or 0.0


def _positive_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
        raise InvalidLimits(f"{name}: expected a whole number from 1 to {MAX_COUNT:,}, got {value!r}")
    return value


def _usd(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_USD:
        raise InvalidLimits(f"{name}: expected an amount in USD from 0 to {MAX_USD:,.0f}, got {value!r}")
    return float(value)

"""Budget periods on the UTC calendar, and money as whole nano-USD.

A budget period has one instance at a time, its *bucket*: ``2026-11-26`` for a day, ``2026-11``
for a month, ``all`` for the total. Counters and ``spend`` rows are keyed by bucket, so a new day
starts from zero without anything being reset. Amounts are integers in nano-USD (1e-9 USD) so
that sums over millions of requests stay exact.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from llmops.limits.policy import PERIODS, Period

PERIOD_NAMES: dict[str, Period] = {period: period for period in PERIODS}  # a stored name → Period
NANO_PER_USD = 1_000_000_000
TOTAL_BUCKET = "all"


def to_nano(usd: float) -> int:
    return round(usd * NANO_PER_USD)


def to_usd(nano: int) -> float:
    return nano / NANO_PER_USD


def cost_nano(prompt_tokens: int, completion_tokens: int, input_per_1m: float, output_per_1m: float) -> int:
    """The most a request may cost, rounded up (prices are USD per million tokens)."""
    return math.ceil((prompt_tokens * input_per_1m + completion_tokens * output_per_1m) * 1000)


def bucket(period: Period, now: float) -> str:
    if period == "total":
        return TOTAL_BUCKET
    moment = datetime.fromtimestamp(now, UTC)
    return moment.strftime("%Y-%m-%d" if period == "day" else "%Y-%m")


def buckets(now: float) -> dict[Period, str]:
    return {period: bucket(period, now) for period in PERIODS}


def period_end(period: Period, now: float) -> float | None:
    """Epoch seconds at which the current instance of ``period`` ends (None: the total never ends)."""
    if period == "total":
        return None
    moment = datetime.fromtimestamp(now, UTC)
    start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return (start + timedelta(days=1)).timestamp()
    month = start.replace(day=1)
    following = (
        month.replace(year=month.year + 1, month=1)
        if month.month == 12
        else month.replace(month=month.month + 1)
    )
    return following.timestamp()


def describe(period: Period) -> str:
    return {"day": "per day (UTC)", "month": "per month (UTC)", "total": "in total"}[period]


def usd_text(nano: int) -> str:
    """``$1.00``, ``$0.05``, ``$0.0042``: cents, or as many digits as a small amount needs (up to 6)."""
    usd = to_usd(nano)
    if abs(usd) >= 1:
        return f"${usd:,.2f}"
    whole, _, digits = f"{usd:.6f}".partition(".")
    return f"${whole}.{digits.rstrip('0').ljust(2, '0')}"

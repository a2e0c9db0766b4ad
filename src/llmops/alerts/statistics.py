"""The value of a rule's statistic now: read from the trace rollups over the rule's window (through
:meth:`llmops.monitoring.stats.StatsService.window`), from the spend table for ``budget_use``, or from
the drift checks for ``drift_score`` (:meth:`llmops.drift.service.DriftService.score`: a stored check
younger than :data:`DRIFT_MAX_AGE` is reused, else one runs, which embeds sampled prompts).

A value of None means "nothing to judge" (no requests in the window, fewer than ``min_requests``, no
feedback, an unknown key or team); a rule is never true on None. The window ends now and starts at
``now - window`` rounded down to the rollups' buckets (a minute, or five minutes when the rule filters
by more than the model), so the current, partial minute counts and rates per hour divide by the time
actually covered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from llmops.alerts.config import AlertRuleConfig

if TYPE_CHECKING:
    from llmops.limits.spend import SpendRepository
    from llmops.store.keys import KeyRepository
    from llmops.teams.repository import TeamRepository


class WindowRow(Protocol):
    """The totals of a window, as :class:`~llmops.monitoring.stats.StatsRow` has them."""

    requests: int
    errors: int
    cost: float
    cache_lookups: int
    cache_hits: int
    thumbs_up: int
    thumbs_down: int

    @property
    def latency_ms(self) -> Mapping[str, float | None]: ...

    @property
    def ttft_ms(self) -> Mapping[str, float | None]: ...


class WindowSource(Protocol):
    def window(self, since: datetime, until: datetime, filters: Mapping[str, str]) -> WindowRow: ...


class DriftScore(Protocol):
    @property
    def score(self) -> float: ...


class DriftScorer(Protocol):
    """What :class:`llmops.drift.service.DriftService` offers alert rules."""

    def score(
        self,
        *,
        model: str | None = ...,
        prompt: str | None = ...,
        reference: str | None = ...,
        current: str = ...,
        dataset: str | None = ...,
        max_age: timedelta | None = ...,
        now: datetime | None = ...,
    ) -> DriftScore: ...


DRIFT_MAX_AGE = timedelta(minutes=15)
"""A drift check younger than this is reused by ``drift_score`` rules (a check embeds prompts)."""


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


STATISTIC_OF: dict[str, Callable[[WindowRow, float], float | None]] = {
    "error_rate": lambda row, _: _ratio(row.errors, row.requests),
    "p95_latency_ms": lambda row, _: row.latency_ms.get("p95"),
    "p99_latency_ms": lambda row, _: row.latency_ms.get("p99"),
    "ttft_p95_ms": lambda row, _: row.ttft_ms.get("p95"),
    "requests": lambda row, _: float(row.requests),
    "cost_per_hour": lambda row, hours: row.cost / hours,
    "thumbs_down_rate": lambda row, _: _ratio(row.thumbs_down, row.thumbs_up + row.thumbs_down),
    "cache_hit_rate": lambda row, _: _ratio(row.cache_hits, row.cache_lookups),
}
"""Statistic name -> its value from a window's totals and the hours the window covers."""


@dataclass(frozen=True, slots=True)
class Measurement:
    value: float | None
    requests: int | None
    since: datetime | None
    until: datetime
    note: str | None = None  # why there is no value

    def as_dict(self) -> dict[str, object]:
        return {
            "value": self.value,
            "requests": self.requests,
            "since": self.since,
            "until": self.until,
            "note": self.note,
        }


Lookup = Callable[[str], str | None]
"""A key's or team's id from its id or name (None: unknown)."""
BudgetUse = Callable[[str, str], float | None]
"""(scope "key" or "team", id) -> the highest spend / budget of its budget periods (None: no budget)."""


class Measurer:
    def __init__(
        self,
        source: WindowSource,
        *,
        find_key: Lookup = lambda value: value,
        find_team: Lookup = lambda value: value,
        budget_use: BudgetUse | None = None,
    ) -> None:
        self._source = source
        self._find_key = find_key
        self._find_team = find_team
        self._budget_use = budget_use
        self._drift: DriftScorer | None = None

    def use_drift(self, scorer: DriftScorer) -> None:
        """Where ``drift_score`` comes from (the store's drift service)."""
        self._drift = scorer

    def measure(self, rule: AlertRuleConfig, now: datetime | None = None) -> Measurement:
        now = now or datetime.now(UTC)
        filters = rule.filters.given()
        for name, find in (("key", self._find_key), ("team", self._find_team)):
            if name in filters:
                found = find(filters[name])
                if found is None:
                    return Measurement(None, None, None, now, f"no {name} named {filters[name]!r}")
                filters[name] = found
        if rule.statistic == "budget_use":
            return self._budget(filters, now)
        if rule.statistic == "drift_score":
            return self._drift_score(rule, filters, now)
        step = 60 if set(filters) <= {"model"} else 300
        start = int(now.timestamp() - rule.window_seconds) // step * step
        since = datetime.fromtimestamp(start, UTC)
        row = self._source.window(since, now, filters)
        if row.requests < rule.min_requests:
            note = f"{row.requests} requests in the window, fewer than min_requests {rule.min_requests}"
            return Measurement(None, row.requests, since, now, note)
        hours = max((now - since).total_seconds(), 1.0) / 3600
        value = STATISTIC_OF[rule.statistic](row, hours)
        return Measurement(value, row.requests, since, now, None if value is not None else "no data")

    def _drift_score(self, rule: AlertRuleConfig, filters: dict[str, str], now: datetime) -> Measurement:
        from llmops.errors import UserError

        if self._drift is None:
            return Measurement(None, None, None, now, "drift checks are not available here")
        reference = rule.reference or "7d..1d"
        dataset = reference.removeprefix("dataset:") if reference.startswith("dataset:") else None
        try:
            found = self._drift.score(
                model=filters.get("model"),
                prompt=filters.get("prompt"),
                reference=None if dataset else reference,
                current=rule.window,
                dataset=dataset,
                max_age=DRIFT_MAX_AGE,
                now=now,
            )
        except UserError as exc:  # a dataset that is gone, a window with nothing in it
            return Measurement(None, None, None, now, exc.message)
        return Measurement(found.score, None, None, now)

    def _budget(self, filters: dict[str, str], now: datetime) -> Measurement:
        scope = "key" if "key" in filters else "team"
        if self._budget_use is None:
            return Measurement(None, None, None, now, "budgets are not available here")
        value = self._budget_use(scope, filters[scope])
        return Measurement(
            value, None, None, now, None if value is not None else f"the {scope} has no budget"
        )


def budget_reader(keys: KeyRepository, teams: TeamRepository, spend: SpendRepository) -> BudgetUse:
    """``budget_use`` from the spend table (settled spend, written every ``spend_flush_seconds``)."""
    from llmops.limits.policy import Limits

    def use(scope: str, scope_id: str) -> float | None:
        if scope == "key":
            key = keys.get(scope_id)
            stored = key.limits if key is not None else None
        else:
            team = teams.find(scope_id)
            stored = team.limits if team is not None else None
        budgets = Limits.from_json(stored).budgets()
        if not budgets:
            return None
        spent = spend.current(scope, [scope_id])[scope_id]
        return max(
            spent[period] / usd if usd > 0 else float(spent[period] > 0) for period, usd in budgets.items()
        )

    return use


def key_finder(keys: KeyRepository) -> Lookup:
    def find(value: str) -> str | None:
        row = keys.find_active(value)
        return row.id if row is not None else None

    return find


def team_finder(teams: TeamRepository) -> Lookup:
    def find(value: str) -> str | None:
        row = teams.find(value)
        return row.id if row is not None else None

    return find

"""Dashboard numbers from the rollups: requests, errors, latency and TTFT percentiles, tokens, cost, cache
hit rate and feedback, over a time range, in buckets, grouped by model, deployment, key, team, prompt or
prompt version.

:meth:`StatsService.query` reads the rollup rows of the coarsest level that fits the bucket (an hour, five
minutes or a minute; see :mod:`llmops.monitoring.rollups`) and merges them: counts add up and latency
sketches merge exactly, so the answer takes as long for ten million traces as for ten thousand; it grows
with the number of buckets and of dimension combinations instead. The range is aligned to whole buckets
(the answer says which). :meth:`StatsService.window` gives the totals of one range (what alerts read).

Errors: :class:`StatsQueryError` (400) for a bad bucket, grouping, range or filter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Engine, Text, cast, select

from llmops.errors import UserError
from llmops.monitoring.rollups import ALL, GRANULARITIES
from llmops.monitoring.sketch import QuantileSketch
from llmops.monitoring.tables import trace_rollups
from llmops.store.scope import ALL_TEAMS, TeamScope

BUCKETS: dict[str, int] = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "6h": 21600, "1d": 86400}
GROUPS = ("model", "deployment", "key", "team", "prompt", "version")
MAX_POINTS = 5000  # buckets in one answer
_COLUMN_OF = {"model": "model", "deployment": "deployment", "key": "api_key_id", "prompt": "prompt_name"}


class StatsQueryError(UserError):
    """A stats query that cannot be answered as asked (bucket, grouping, range)."""


@dataclass(slots=True)
class StatsRow:
    """The aggregates of one bucket (or of a whole window) for one group."""

    requests: int = 0
    errors: int = 0
    errors_by_type: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    cache_lookups: int = 0
    cache_hits: int = 0
    guardrail_triggers: int = 0
    feedback_count: int = 0
    feedback_score_sum: float = 0.0
    feedback_scored: int = 0
    thumbs_up: int = 0
    thumbs_down: int = 0
    latency: QuantileSketch = field(default_factory=QuantileSketch)
    ttft: QuantileSketch = field(default_factory=QuantileSketch)

    def add(self, row: Any, latency: bytes | str | None, ttft: bytes | str | None) -> None:
        self.requests += row.requests
        self.errors += row.errors
        if row.errors_by_type:
            for kind, count in row.errors_by_type.items():
                self.errors_by_type[kind] = self.errors_by_type.get(kind, 0) + count
        self.prompt_tokens += row.prompt_tokens
        self.completion_tokens += row.completion_tokens
        self.cost += row.cost
        self.cache_lookups += row.cache_lookups
        self.cache_hits += row.cache_hits
        self.guardrail_triggers += row.guardrail_triggers
        self.feedback_count += row.feedback_count
        self.feedback_score_sum += row.feedback_score_sum
        self.feedback_scored += row.feedback_scored
        self.thumbs_up += row.thumbs_up
        self.thumbs_down += row.thumbs_down
        for sketch, text in ((self.latency, latency), (self.ttft, ttft)):
            data = orjson.loads(text) if text else None  # a JSON null when the bucket had none
            if data:
                sketch.merge_json(data)

    def _quantiles(self, sketch: QuantileSketch) -> dict[str, float | None]:
        return {name: _round(sketch.quantile(q)) for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))}

    @property
    def latency_ms(self) -> dict[str, float | None]:
        return self._quantiles(self.latency)

    @property
    def ttft_ms(self) -> dict[str, float | None]:
        return self._quantiles(self.ttft)

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def cache_hit_rate(self) -> float | None:
        return self.cache_hits / self.cache_lookups if self.cache_lookups else None

    @property
    def thumbs_down_rate(self) -> float | None:
        thumbs = self.thumbs_up + self.thumbs_down
        return self.thumbs_down / thumbs if thumbs else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": _round(self.error_rate, 6),
            "errors_by_type": dict(sorted(self.errors_by_type.items())),
            "latency_ms": self.latency_ms,
            "ttft_ms": self.ttft_ms,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost": round(self.cost, 9),
            "cache_hit_rate": _round(self.cache_hit_rate, 6),
            "guardrail_triggers": self.guardrail_triggers,
            "feedback": {
                "count": self.feedback_count,
                "mean_score": _round(self.feedback_score_sum / self.feedback_scored, 6)
                if self.feedback_scored
                else None,
                "thumbs_up": self.thumbs_up,
                "thumbs_down": self.thumbs_down,
                "thumbs_down_rate": _round(self.thumbs_down_rate, 6),
            },
        }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True, slots=True)
class StatsQuery:
    since: datetime
    until: datetime
    bucket: str = "5m"
    group_by: tuple[str, ...] = ()
    filters: Mapping[str, str] = field(default_factory=dict)  # model, deployment, key, team, prompt
    team: TeamScope = ALL_TEAMS  # whose traces the caller sees


@dataclass(slots=True)
class Series:
    group: dict[str, str]
    points: list[StatsRow]
    total: StatsRow


@dataclass(slots=True)
class StatsResult:
    since: datetime
    until: datetime
    bucket: str
    level: str
    group_by: tuple[str, ...]
    series: list[Series]
    rows_read: int

    def as_dict(self) -> dict[str, Any]:
        step = timedelta(seconds=BUCKETS[self.bucket])
        return {
            "since": self.since,
            "until": self.until,
            "bucket": self.bucket,
            "group_by": list(self.group_by),
            "series": [
                {
                    "group": series.group,
                    "total": series.total.as_dict(),
                    "points": [
                        {"t": self.since + step * index, **point.as_dict()}
                        for index, point in enumerate(series.points)
                    ],
                }
                for series in self.series
            ],
        }


KeyTeams = Callable[[], Mapping[str, tuple[str | None, str | None]]]
"""key id -> (team id, team name), read when a query needs teams."""


class StatsService:
    def __init__(self, engine: Engine, key_teams: KeyTeams) -> None:
        self._engine = engine
        self._key_teams = key_teams

    def query(self, query: StatsQuery) -> StatsResult:
        bucket_seconds = _bucket_seconds(query.bucket)
        for name in query.group_by:
            if name not in GROUPS:
                raise StatsQueryError(
                    f"group_by: {name!r} is not one of {', '.join(GROUPS)}", param="group_by"
                )
        by_model = _by_model(query)
        level = next(
            name for name, seconds in reversed(GRANULARITIES.items()) if bucket_seconds % seconds == 0
        )
        if level == "m" and not by_model:
            raise StatsQueryError(
                "1m buckets are kept per model only: group by model (or nothing) without other filters,"
                " or use 5m",
                param="bucket",
            )
        since, until = _aligned(query.since, query.until, bucket_seconds)
        count = int((until - since).total_seconds()) // bucket_seconds
        if count > MAX_POINTS:
            raise StatsQueryError(
                f"{count} buckets of {query.bucket} is more than {MAX_POINTS}: "
                "use a larger bucket or a shorter range",
                param="bucket",
            )
        teams = self._key_teams() if _needs_teams(query) else {}
        groups: dict[tuple[str, ...], list[StatsRow]] = {}
        read = 0
        for row in self._rows(level, since, until, query, by_model):
            team_id, team_name = teams.get(row.api_key_id, (None, None)) if teams else (None, None)
            if not _in_team(query, row.api_key_id, team_id):
                continue
            read += 1
            key = tuple(_dimension(name, row, team_name) for name in query.group_by)
            points = groups.get(key)
            if points is None:
                points = groups[key] = [StatsRow() for _ in range(count)]
            index = int((row.bucket_start - since).total_seconds()) // bucket_seconds
            points[index].add(row, row.latency_text, row.ttft_text)
        series = []
        for key, points in sorted(groups.items()):
            total = StatsRow()
            for point in points:
                _merge(total, point)
            series.append(Series(dict(zip(query.group_by, key, strict=True)), points, total))
        return StatsResult(since, until, query.bucket, level, query.group_by, series, read)

    def window(self, since: datetime, until: datetime, filters: Mapping[str, str] | None = None) -> StatsRow:
        """The totals of [since, until) over everything that passes ``filters`` (widened to whole
        minutes, or five minutes when filtered by more than the model)."""
        bucket = "1m" if set(filters or {}) <= {"model"} else "5m"
        result = self.query(StatsQuery(since, until, bucket, (), filters or {}))
        return result.series[0].total if result.series else StatsRow()

    def _rows(self, level: str, since: datetime, until: datetime, query: StatsQuery, by_model: bool) -> Any:
        table = trace_rollups.c
        conditions = [table.granularity == level, table.bucket_start >= since, table.bucket_start < until]
        if by_model:  # the per-model rows answer it (see rollups.BY_MODEL)
            conditions.append(table.api_key_id == ALL)
        else:
            conditions.append(table.api_key_id != ALL)
        for name, value in query.filters.items():
            if name == "team":
                continue  # through the keys (see _in_team)
            if name == "version":
                prompt, _, version = value.rpartition("@")
                if not version.isdigit():
                    raise StatsQueryError("version: expected PROMPT@NUMBER", param="version")
                conditions += [table.prompt_name == prompt, table.prompt_version == int(version)]
                continue
            if name not in _COLUMN_OF:
                raise StatsQueryError(f"unknown filter {name!r}", param=name)
            conditions.append(table[_COLUMN_OF[name]] == value)
        columns = [
            table[name]
            for name in (
                "bucket_start", "model", "deployment", "api_key_id", "prompt_name", "prompt_version",
                "requests", "errors", "errors_by_type", "prompt_tokens", "completion_tokens", "cost",
                "cache_lookups", "cache_hits", "guardrail_triggers", "feedback_count", "feedback_score_sum",
                "feedback_scored", "thumbs_up", "thumbs_down",
            )
        ]  # fmt: skip
        statement = select(
            *columns,
            cast(table.latency_sketch, Text).label("latency_text"),
            cast(table.ttft_sketch, Text).label("ttft_text"),
        ).where(*conditions)
        with self._engine.connect() as connection:
            yield from connection.execute(statement)


def _bucket_seconds(bucket: str) -> int:
    if bucket not in BUCKETS:
        raise StatsQueryError(f"bucket: expected one of {', '.join(BUCKETS)}, got {bucket!r}", param="bucket")
    return BUCKETS[bucket]


def _aligned(since: datetime, until: datetime, seconds: int) -> tuple[datetime, datetime]:
    """[since, until) widened to whole buckets (UTC, from the epoch)."""
    if since.tzinfo is None or until.tzinfo is None:
        raise StatsQueryError("since and until need a time zone")
    if until <= since:
        raise StatsQueryError("until must be after since", param="until")
    start = int(since.timestamp()) // seconds * seconds
    end = -(-int(until.timestamp()) // seconds) * seconds
    if end == start:
        end += seconds
    try:
        return datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
    except (ValueError, OverflowError, OSError):
        raise StatsQueryError("the range reaches beyond the years 1 to 9999", param="until") from None


def _by_model(query: StatsQuery) -> bool:
    """Whether the per-model rows answer the query (grouped by model or nothing, filtered by model)."""
    return set(query.group_by) <= {"model"} and set(query.filters) <= {"model"} and query.team == ALL_TEAMS


def _needs_teams(query: StatsQuery) -> bool:
    return "team" in query.group_by or "team" in query.filters or query.team != ALL_TEAMS


def _in_team(query: StatsQuery, key_id: str, team_id: str | None) -> bool:
    if query.team != ALL_TEAMS and team_id != query.team:
        return False
    wanted = query.filters.get("team")
    return wanted is None or team_id == wanted


def _dimension(name: str, row: Any, team_name: str | None) -> str:
    if name == "team":
        return team_name or ""
    if name == "version":
        return f"{row.prompt_name}@{row.prompt_version}" if row.prompt_name else ""
    return str(getattr(row, _COLUMN_OF[name]))


def _merge(total: StatsRow, point: StatsRow) -> None:
    for name in (
        "requests", "errors", "prompt_tokens", "completion_tokens", "cost", "cache_lookups",
        "cache_hits", "guardrail_triggers", "feedback_count", "feedback_score_sum", "feedback_scored",
        "thumbs_up", "thumbs_down",
    ):  # fmt: skip
        setattr(total, name, getattr(total, name) + getattr(point, name))
    for kind, count in point.errors_by_type.items():
        total.errors_by_type[kind] = total.errors_by_type.get(kind, 0) + count
    total.latency.merge(point.latency)
    total.ttft.merge(point.ttft)


__all__ = ["BUCKETS", "GROUPS", "StatsQuery", "StatsQueryError", "StatsResult", "StatsRow", "StatsService"]

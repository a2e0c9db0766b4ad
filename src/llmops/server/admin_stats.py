"""``GET /api/stats``: dashboard aggregates over a time range, in buckets, by group, from the rollups.

A team's key sees its team's traffic only (the rollups of its team's keys).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from llmops.monitoring.stats import BUCKETS, GROUPS, StatsQuery, StatsQueryError
from llmops.server.admin_auth import Caller, team_scope
from llmops.server.admin_schema import NO_NUL, error_responses
from llmops.services import Services
from llmops.tracing.service import parse_since

Bucket = Literal["1m", "5m", "15m", "1h", "6h", "1d"]
Group = Literal["model", "deployment", "key", "team", "prompt", "version"]
_TEXT = Annotated[str | None, Query(min_length=1, max_length=200, pattern=NO_NUL)]


class Quantiles(BaseModel):
    p50: float | None
    p95: float | None
    p99: float | None


class FeedbackStats(BaseModel):
    count: int
    mean_score: float | None
    thumbs_up: int
    thumbs_down: int
    thumbs_down_rate: float | None


class Aggregates(BaseModel):
    requests: int
    errors: int
    error_rate: float | None
    errors_by_type: dict[str, int]
    latency_ms: Quantiles
    ttft_ms: Quantiles
    prompt_tokens: int
    completion_tokens: int
    cost: float
    cache_hit_rate: float | None
    guardrail_triggers: int = Field(description="Requests on which a guardrail blocked, redacted or flagged.")
    feedback: FeedbackStats


class Point(Aggregates):
    t: Any = Field(description="Start of the bucket (UTC).")


class SeriesOut(BaseModel):
    group: dict[str, str] = Field(description="The group's values, one per group_by dimension.")
    total: Aggregates
    points: list[Point]


class StatsOut(BaseModel):
    since: Any = Field(description="Start of the first bucket (the range is aligned to whole buckets).")
    until: Any = Field(description="End of the last bucket.")
    bucket: str
    group_by: list[str]
    series: list[SeriesOut]


def stats_routes(services: Services) -> APIRouter:
    router = APIRouter(tags=["stats"])
    store = services.store

    @router.get(
        "/api/stats",
        operation_id="get_stats",
        response_model=StatsOut,
        responses=error_responses(400),
    )
    def get_stats(
        principal: Caller,
        since: Annotated[
            str, Query(description="30m, 24h, 7d (ago), or an ISO 8601 time", pattern=NO_NUL)
        ] = "24h",
        until: Annotated[str | None, Query(description="Default: now", pattern=NO_NUL)] = None,
        bucket: Bucket = "5m",
        group_by: Annotated[
            list[Group] | None, Query(description="Dimensions to group by (repeat, or comma-separate)")
        ] = None,
        model: _TEXT = None,
        deployment: _TEXT = None,
        key: Annotated[
            str | None, Query(description="API key id or name", min_length=1, max_length=200, pattern=NO_NUL)
        ] = None,
        team: Annotated[
            str | None, Query(description="Team id or name", min_length=1, max_length=200, pattern=NO_NUL)
        ] = None,
        prompt: _TEXT = None,
        version: Annotated[
            str | None, Query(description="PROMPT@VERSION", min_length=3, max_length=200, pattern=NO_NUL)
        ] = None,
    ) -> dict[str, Any]:
        """Requests, errors by type, latency and TTFT percentiles, tokens, cost, cache hit rate, guardrail
        triggers and feedback per bucket and group, answered from rollups (not by scanning traces)."""
        filters = {
            name: value
            for name, value in (
                ("model", model),
                ("deployment", deployment),
                ("prompt", prompt),
                ("version", version),
            )
            if value is not None
        }
        if key is not None:
            filters["key"] = _key_id(services, key)
        if team is not None:
            found = store.team_repository.find(team)
            if found is None:
                raise StatsQueryError(f"team: no team with id or name {team!r}", param="team")
            filters["team"] = found.id
        query = StatsQuery(
            parse_since(since),
            parse_since(until) if until is not None else _now(),
            bucket,
            tuple(dict.fromkeys(group_by or ())),
            filters,
            team_scope(principal),
        )
        answer: dict[str, Any] = store.stats.query(query).as_dict()
        return answer

    return router


def _key_id(services: Services, key: str) -> str:
    for row in services.store.key_repository.list(include_revoked=True):
        if key in (row.id, row.name):
            return row.id
    raise StatsQueryError(f"key: no API key with id or name {key!r}", param="key")


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


__all__ = ["BUCKETS", "GROUPS", "stats_routes"]

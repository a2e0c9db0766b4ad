"""What each version of a managed deployment did over the recent window, read from the stored traces.

For the requests of one public model name (``trace.requested_model``), per deployment id: calls, errors,
latency of successful calls and thumbs from feedback. A request that needed more than one upstream
call lists every call in ``attributes["attempts"]``; those are counted one by one, so a canary call
that failed and was answered by the stable version still counts as a canary error. An error is a
server-side failure (5xx: upstream errors, timeouts, refused connections); 4xx answers are the
client's doing and count as calls, not errors. Cache hits called no upstream and are not counted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, select

from llmops.store.tables import feedback, traces

SERVER_ERROR = 500
_CACHE_HITS = ("hit", "semantic-hit")


@dataclass
class VersionFigures:
    """One deployment id's figures over the window."""

    deployment: str
    calls: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    thumbs_up: int = 0
    thumbs_down: int = 0

    @property
    def error_rate(self) -> float | None:
        return None if self.calls == 0 else self.errors / self.calls

    @property
    def p95_ms(self) -> float | None:
        return percentile(self.latencies_ms, 0.95)

    @property
    def thumbs_down_rate(self) -> float | None:
        rated = self.thumbs_up + self.thumbs_down
        return None if rated == 0 else self.thumbs_down / rated

    def counts(self) -> dict[str, int]:
        """The counts behind the rates, by name (what guard messages quote)."""
        return {
            "calls": self.calls,
            "errors": self.errors,
            "answers": len(self.latencies_ms),
            "thumbs_up": self.thumbs_up,
            "thumbs_down": self.thumbs_down,
            "rated": self.thumbs_up + self.thumbs_down,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "calls": self.calls,
            "errors": self.errors,
            "error_rate": _rounded(self.error_rate),
            "p95_ms": _rounded(self.p95_ms),
            "thumbs_up": self.thumbs_up,
            "thumbs_down": self.thumbs_down,
            "thumbs_down_rate": _rounded(self.thumbs_down_rate),
        }


@dataclass(frozen=True)
class Window:
    """The figures of one model name between ``start`` and ``end``."""

    model: str
    start: datetime
    end: datetime
    requests: int
    versions: Mapping[str, VersionFigures]

    def of(self, deployment: str | None) -> VersionFigures:
        found = self.versions.get(deployment or "")
        return found if found is not None else VersionFigures(deployment or "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "seconds": round((self.end - self.start).total_seconds(), 3),
            "requests": self.requests,
            "versions": {name: figures.to_dict() for name, figures in sorted(self.versions.items())},
        }


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def read_window(engine: Engine, model: str, start: datetime, end: datetime) -> Window:
    """The figures of ``model``'s requests that started in [start, end]."""
    in_window = and_(
        traces.c.requested_model == model, traces.c.started_at >= start, traces.c.started_at <= end
    )
    calls = select(
        traces.c.deployment,
        traces.c.status_code,
        traces.c.latency_ms,
        traces.c.attributes,
        traces.c.cache_status,
    ).where(in_window)
    thumbs = (
        select(traces.c.deployment, feedback.c.thumb)
        .select_from(feedback.join(traces, feedback.c.trace_id == traces.c.id))
        .where(in_window, feedback.c.thumb.is_not(None))
    )
    with engine.connect() as connection:
        call_rows = connection.execute(calls).all()
        thumb_rows = connection.execute(thumbs).all()
    versions: dict[str, VersionFigures] = {}
    requests = 0
    for deployment, status_code, latency_ms, attributes, cache_status in call_rows:
        requests += 1
        if cache_status in _CACHE_HITS:
            continue
        _count_calls(versions, model, deployment, status_code, latency_ms, attributes)
    for deployment, thumb in thumb_rows:
        if deployment is None:
            continue
        figures = _figures(versions, deployment)
        if thumb == "down":
            figures.thumbs_down += 1
        elif thumb == "up":
            figures.thumbs_up += 1
    return Window(model, start, end, requests, versions)


def _figures(versions: dict[str, VersionFigures], deployment: str) -> VersionFigures:
    found = versions.get(deployment)
    if found is None:
        found = versions[deployment] = VersionFigures(deployment)
    return found


def _count_calls(
    versions: dict[str, VersionFigures],
    model: str,
    deployment: str | None,
    status_code: int,
    latency_ms: float,
    attributes: Mapping[str, Any] | None,
) -> None:
    attempts = (attributes or {}).get("attempts")
    if attempts:
        for attempt in _own(attempts, model):
            _add(_figures(versions, str(attempt["deployment"])), int(attempt["status"]), float(attempt["ms"]))
    elif deployment is not None:
        _add(_figures(versions, deployment), status_code, latency_ms)


def _own(attempts: Iterable[Any], model: str) -> Iterable[Mapping[str, Any]]:
    """The attempts on ``model``'s own deployments (not those of a fallback model)."""
    for attempt in attempts:
        if isinstance(attempt, Mapping) and attempt.get("model") == model and "deployment" in attempt:
            yield attempt


def _add(figures: VersionFigures, status: int, ms: float) -> None:
    figures.calls += 1
    if status >= SERVER_ERROR:
        figures.errors += 1
    elif status < 400:
        figures.latencies_ms.append(ms)

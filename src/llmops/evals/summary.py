"""A run's summary: per metric the count, mean, median, spread and pass rate; per run the errors,
latency, tokens and cost. Computed from the stored results when a run ends, and stored with it."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def summarize(
    results: Iterable[Mapping[str, Any]],
    metrics: Sequence[str],
    higher_is_better: Mapping[str, bool],
    thresholds: Mapping[str, float | None],
) -> dict[str, Any]:
    values: dict[str, list[float]] = {metric: [] for metric in metrics}
    latencies: list[float] = []
    items = errors = tokens = 0
    cost = 0.0
    for result in results:
        items += 1
        if result.get("error"):
            errors += 1
        for metric in metrics:
            value = (result.get("scores") or {}).get(metric)
            if value is not None:
                values[metric].append(float(value))
        if result.get("latency_ms") is not None:
            latencies.append(float(result["latency_ms"]))
        tokens += (result.get("prompt_tokens") or 0) + (result.get("completion_tokens") or 0)
        cost += result.get("cost") or 0.0
    return {
        "items": items,
        "errors": errors,
        "latency_ms": _spread(latencies),
        "tokens": tokens,
        "cost": round(cost, 10),
        "metrics": {
            metric: _metric(
                values[metric], items - errors, higher_is_better.get(metric, True), thresholds.get(metric)
            )
            for metric in metrics
        },
    }


def _metric(values: list[float], scored: int, higher: bool, threshold: float | None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "n": len(values),
        "missing": scored - len(values),
        "higher_is_better": higher,
        "threshold": threshold,
        **_spread(values),
    }
    if threshold is not None and values:
        passed = sum(1 for value in values if (value >= threshold if higher else value <= threshold))
        found["pass_rate"] = passed / len(values)
    else:
        found["pass_rate"] = None
    return found


def _spread(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "median": None, "stdev": None, "min": None, "max": None, "p95": None}
    ordered = sorted(values)
    return {
        "mean": statistics.fmean(ordered),
        "median": statistics.median(ordered),
        "stdev": statistics.stdev(ordered) if len(ordered) > 1 else 0.0,
        "min": ordered[0],
        "max": ordered[-1],
        "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
    }

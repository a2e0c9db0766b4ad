"""The tree of an OTel trace: the traces and spans sharing a trace's OTel trace id, nested by parent.

A node whose parent is not stored (the caller's own span, sent nowhere, or not yet) is a root, so a
tree may have several roots. At most :data:`MAX_NODES` traces and as many spans are read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmops.store.scope import ALL_TEAMS, TeamScope
from llmops.store.traces import TraceRepository
from llmops.tracing.otel.conventions import span_name
from llmops.tracing.otel.spans import SpanRepository
from llmops.tracing.otel.traceparent import gateway_span_id

MAX_NODES = 1000


class TraceTree:
    def __init__(self, traces: TraceRepository, spans: SpanRepository) -> None:
        self._traces = traces
        self._spans = spans

    def of(self, trace: Mapping[str, Any], team: TeamScope = ALL_TEAMS) -> list[dict[str, Any]]:
        """The roots of the tree ``trace`` belongs to (a trace with no OTel parent: itself alone)."""
        otel_trace_id = trace.get("otel_trace_id")
        if not otel_trace_id:
            return [_trace_node(trace, trace["id"])]
        nodes = [_trace_node(row, trace["id"]) for row in self._traces.family(otel_trace_id, team, MAX_NODES)]
        nodes += [_span_node(row) for row in self._spans.of_trace(otel_trace_id, team, MAX_NODES)]
        return nest(nodes)


def _trace_node(row: Mapping[str, Any], current: str) -> dict[str, Any]:
    otel = (row.get("attributes") or {}).get("otel") if row.get("endpoint") == "otlp" else None
    name = otel.get("name") if isinstance(otel, dict) else None
    return {
        "kind": "trace",
        "trace_id": row["id"],
        "span_id": row.get("otel_span_id") or gateway_span_id(row["id"]),
        "parent_span_id": row.get("otel_parent_span_id"),
        "name": name or span_name(row["endpoint"], row["requested_model"]),
        "service": otel.get("service") if isinstance(otel, dict) else "llmops",
        "started_at": row["started_at"],
        "duration_ms": row["latency_ms"],
        "status": row["status"],
        "model": row["requested_model"] or None,
        "prompt_tokens": row.get("prompt_tokens"),
        "completion_tokens": row.get("completion_tokens"),
        "cost": row.get("cost"),
        "current": row["id"] == current,
        "children": [],
    }


def _span_node(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "kind": "span",
        "trace_id": None,
        "span_id": row["span_id"],
        "parent_span_id": row["parent_span_id"],
        "name": row["name"],
        "service": row["service_name"],
        "started_at": row["started_at"],
        "duration_ms": row["duration_ms"],
        "status": row["status"],
        "model": None,
        "prompt_tokens": None,
        "completion_tokens": None,
        "cost": None,
        "current": False,
        "children": [],
    }


def nest(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Hang each node under its parent (by span id), children in start order; the rest are roots.
    A cycle of parents (a broken sender) is cut where it is first met."""
    nodes.sort(key=lambda node: (node["started_at"], node["span_id"]))
    by_span: dict[str, dict[str, Any]] = {}
    for node in nodes:
        by_span.setdefault(node["span_id"], node)
    roots = []
    for node in nodes:
        parent = by_span.get(node["parent_span_id"] or "")
        if parent is None or parent is node:
            roots.append(node)
        else:
            parent["children"].append(node)
    reached: set[int] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        reached.add(id(node))
        stack.extend(node["children"])
    for node in nodes:  # in a cycle: no root leads there; make its first node a root
        if id(node) not in reached:
            parent = by_span[node["parent_span_id"]]
            parent["children"].remove(node)
            roots.append(node)
            stack = [node]
            while stack:
                item = stack.pop()
                reached.add(id(item))
                stack.extend(item["children"])
    roots.sort(key=lambda node: (node["started_at"], node["span_id"]))
    return roots

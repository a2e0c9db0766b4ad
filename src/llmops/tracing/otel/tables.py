"""The ``span`` table (migration 0011): ingested OpenTelemetry spans that are not model calls.

A span that describes a model call (``gen_ai.*`` or OpenInference ``llm.*`` attributes) becomes a
row of ``trace`` (endpoint ``otlp``), counted by the stats like any request; every other span of an
instrumented application (its agent steps, tools, retrievers, HTTP handlers) is kept here, so that a
trace's tree (``GET /api/traces/{id}``) is whole. Keyed by the span's own OTel ids: an exporter that
sends a span again (a retry) stores it once.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, String, Table, Text

from llmops.store.tables import JsonValue, UtcDateTime, metadata

spans = Table(
    "span",
    metadata,
    Column("otel_trace_id", String(32), primary_key=True),
    Column("span_id", String(16), primary_key=True),
    Column("parent_span_id", String(16), nullable=True),
    Column("name", String(300), nullable=False),
    Column("kind", String(10), nullable=False),  # internal | server | client | producer | consumer
    Column("service_name", String(200), nullable=True),
    Column("scope_name", String(200), nullable=True),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("ended_at", UtcDateTime(), nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("status", String(10), nullable=False),  # ok | error | unset
    Column("status_message", Text, nullable=True),
    Column("attributes", JsonValue, nullable=True),
    Column("events", JsonValue, nullable=True),
    Column("api_key_id", String(40), nullable=True),  # the key that sent it (its team sees it)
    Column("received_at", UtcDateTime(), nullable=False),
    Index("ix_span_started_at", "started_at"),
)

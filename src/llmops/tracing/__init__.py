"""Tracing: the trace record, the batched background writer, metrics, and the read service."""

from llmops.tracing.metrics import GatewayMetrics, Gauge, MetricsRegistry
from llmops.tracing.record import TraceRecord
from llmops.tracing.service import (
    FeedbackInput,
    InvalidQuery,
    TraceNotFound,
    TracePage,
    TraceService,
    parse_since,
)
from llmops.tracing.writer import TraceWriter

__all__ = [
    "FeedbackInput",
    "Gauge",
    "GatewayMetrics",
    "InvalidQuery",
    "MetricsRegistry",
    "TraceNotFound",
    "TracePage",
    "TraceRecord",
    "TraceService",
    "TraceWriter",
    "parse_since",
]

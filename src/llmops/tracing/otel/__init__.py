"""OpenTelemetry in and out: OTLP export of traces, OTLP ingest of spans, W3C traceparent, trace trees.

- :mod:`~llmops.tracing.otel.traceparent`: the caller's ``traceparent`` on a /v1 request (hot path).
- :mod:`~llmops.tracing.otel.conventions`: GenAI semantic conventions, both ways (plain Python).
- :mod:`~llmops.tracing.otel.export`: :class:`OtlpExporter`, batched OTLP/HTTP export off the request path.
- :mod:`~llmops.tracing.otel.ingest`: :class:`OtlpIngest`, what ``POST /otlp/v1/traces`` stores.
- :mod:`~llmops.tracing.otel.tree`: :class:`TraceTree`, the traces and spans of one OTel trace, nested.
- :mod:`~llmops.tracing.otel.wire`: the protobuf / OTLP JSON bodies (the only module that imports
  ``opentelemetry-proto``; imported lazily, so importing llmops loads no protobuf).

Errors: those of :mod:`~llmops.tracing.otel.ingest` (bad bodies, unsupported media types); export
never raises into its caller (failures are logged and counted in ``llmops_otlp_spans_dropped_total``).
"""

from llmops.tracing.otel.traceparent import gateway_span_id, link_caller, parse_traceparent

__all__ = ["gateway_span_id", "link_caller", "parse_traceparent"]

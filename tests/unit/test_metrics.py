"""Prometheus metrics: the text exposition parses with the reference parser and adds up."""

from __future__ import annotations

import math
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmops.tracing.metrics import Counter, GatewayMetrics, Gauge, Histogram, MetricsRegistry


def _families(registry: MetricsRegistry) -> dict[str, Any]:
    text = registry.render().decode()
    assert text.endswith("\n")
    return {family.name: family for family in text_string_to_metric_families(text)}


def _samples(family: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}


def test_counter_renders_and_parses() -> None:
    registry = MetricsRegistry()
    counter = Counter("llmops_things_total", "Things counted.", ("model", "status"))
    registry.add(counter)
    counter.inc(("a", "200"))
    counter.inc(("a", "200"))
    counter.inc(("b", "500"), 2.5)
    assert counter.value(("a", "200")) == 2
    assert counter.value(("c", "200")) == 0
    families = _families(registry)
    family = families["llmops_things"]
    assert family.type == "counter"
    assert family.documentation == "Things counted."
    assert _samples(family) == {
        ("llmops_things_total", (("model", "a"), ("status", "200"))): 2.0,
        ("llmops_things_total", (("model", "b"), ("status", "500"))): 2.5,
    }


def test_counter_without_labels() -> None:
    registry = MetricsRegistry()
    counter = Counter("llmops_plain_total", "Plain.")
    registry.add(counter)
    assert b"# TYPE llmops_plain_total counter\n" in registry.render()
    assert not [line for line in registry.render().splitlines() if not line.startswith(b"#")]
    counter.inc(amount=3)
    assert b"\nllmops_plain_total 3\n" in registry.render()
    assert _samples(_families(registry)["llmops_plain"]) == {("llmops_plain_total", ()): 3.0}


def test_histogram_buckets_are_cumulative() -> None:
    registry = MetricsRegistry()
    histogram = Histogram("llmops_wait_seconds", "Waits.", ("model",), buckets=(0.1, 1, 10))
    registry.add(histogram)
    for value in (0.05, 0.1, 0.5, 1, 2, 50):
        histogram.observe(("m",), value)
    histogram.observe(("other",), 0.01)
    assert histogram.count(("m",)) == 6
    assert histogram.count(("absent",)) == 0
    family = _families(registry)["llmops_wait_seconds"]
    assert family.type == "histogram"
    samples = _samples(family)

    def sample(name: str, **labels: str) -> float:
        return samples[(f"llmops_wait_seconds_{name}", tuple(sorted(labels.items())))]

    assert sample("bucket", model="m", le="0.1") == 2  # le is inclusive
    assert sample("bucket", model="m", le="1") == 4
    assert sample("bucket", model="m", le="10") == 5
    assert sample("bucket", model="m", le="+Inf") == 6
    assert sample("count", model="m") == 6
    assert sample("sum", model="m") == pytest.approx(53.65)
    assert sample("bucket", model="other", le="0.1") == 1
    assert sample("bucket", model="other", le="+Inf") == 1
    assert sample("count", model="other") == 1
    text = registry.render().decode()
    assert 'llmops_wait_seconds_bucket{model="m",le="+Inf"} 6' in text
    assert 'llmops_wait_seconds_bucket{model="m",le="1"} 4' in text


def test_histogram_buckets_never_decrease() -> None:
    registry = MetricsRegistry()
    histogram = Histogram("llmops_latency_seconds", "Latency.", ("model",))
    registry.add(histogram)
    for index in range(200):
        histogram.observe(("m",), (index % 37) * 0.37)
    buckets = [
        sample.value
        for sample in _families(registry)["llmops_latency_seconds"].samples
        if sample.name.endswith("_bucket")
    ]
    assert buckets == sorted(buckets)
    assert buckets[-1] == 200


@pytest.mark.parametrize(
    "value",
    ['say "hi"', "back\\slash", "two\nlines", 'all \\ " \n at once', "unicode é 🎉", "trailing\\"],
)
def test_label_values_are_escaped(value: str) -> None:
    registry = MetricsRegistry()
    counter = Counter("llmops_escaped_total", "Escaping.", ("model",))
    histogram = Histogram("llmops_escaped_seconds", "Escaping.", ("model",), buckets=(1,))
    registry.add(counter)
    registry.add(histogram)
    counter.inc((value,))
    histogram.observe((value,), 0.5)
    text = registry.render().decode()
    assert len([line for line in text.splitlines() if line.startswith("llmops_escaped_total")]) == 1
    families = _families(registry)
    (sample,) = families["llmops_escaped"].samples
    assert sample.labels == {"model": value}
    assert sample.value == 1
    assert {s.labels["model"] for s in families["llmops_escaped_seconds"].samples} == {value}


def test_gauge_reads_its_callback_at_scrape_time() -> None:
    registry = MetricsRegistry()
    depth = [3]
    registry.add(Gauge("llmops_queue_depth", "Queue depth.", lambda: depth[0]))
    assert _samples(_families(registry)["llmops_queue_depth"]) == {("llmops_queue_depth", ()): 3.0}
    depth[0] = 42
    family = _families(registry)["llmops_queue_depth"]
    assert family.type == "gauge"
    assert _samples(family) == {("llmops_queue_depth", ()): 42.0}
    depth[0] = 0.5  # type: ignore[call-overload]
    assert b"llmops_queue_depth 0.5\n" in registry.render()


def test_duplicate_registration_raises() -> None:
    registry = MetricsRegistry()
    registry.add(Counter("llmops_twice_total", "Once."))
    with pytest.raises(ValueError, match="llmops_twice_total registered twice"):
        registry.add(Counter("llmops_twice_total", "Twice."))
    with pytest.raises(ValueError, match="registered twice"):
        registry.add(Gauge("llmops_twice_total", "As a gauge.", lambda: 1))
    GatewayMetrics(MetricsRegistry())  # one gateway set per registry is fine
    shared = MetricsRegistry()
    GatewayMetrics(shared)
    with pytest.raises(ValueError, match="registered twice"):
        GatewayMetrics(shared)


def test_gateway_metrics_render_and_parse() -> None:
    registry = MetricsRegistry()
    metrics = GatewayMetrics(registry)
    metrics.requests.inc(("gpt", "openai", "200"))
    metrics.latency.observe(("gpt", "openai"), 0.2)
    metrics.ttft.observe(("gpt", "openai"), 0.05)
    metrics.tokens.inc(("gpt", "prompt"), 11)
    metrics.tokens.inc(("gpt", "completion"), 7)
    metrics.cost.inc(("gpt",), 0.000123)
    metrics.traces_written.inc(amount=5)
    metrics.traces_dropped.inc(("queue_full",))
    families = _families(registry)
    assert set(families) == {
        "llmops_upstream_calls",
        "llmops_fallbacks",
        "llmops_cache_requests",
        "llmops_requests",
        "llmops_request_duration_seconds",
        "llmops_time_to_first_token_seconds",
        "llmops_tokens",
        "llmops_cost_usd",
        "llmops_traces_written",
        "llmops_traces_dropped",
        "llmops_trace_backpressure_waits",
    }
    tokens = _samples(families["llmops_tokens"])
    assert tokens[("llmops_tokens_total", (("direction", "prompt"), ("model", "gpt")))] == 11
    cost = _samples(families["llmops_cost_usd"])
    assert math.isclose(cost[("llmops_cost_usd_total", (("model", "gpt"),))], 0.000123)
    written = _samples(families["llmops_traces_written"])
    assert written == {("llmops_traces_written_total", ()): 5.0}
    latency = _samples(families["llmops_request_duration_seconds"])
    labels = (("le", "0.25"), ("model", "gpt"), ("provider", "openai"))
    assert latency[("llmops_request_duration_seconds_bucket", labels)] == 1

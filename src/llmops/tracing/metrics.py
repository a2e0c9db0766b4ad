"""Prometheus metrics kept as plain counters in the event loop's thread.

Every update runs on the event loop (one thread), so no locks are needed: an update is a
dict lookup and an addition, cheap enough for the gateway's hot path. ``render()`` writes
the Prometheus text exposition format (version 0.0.4).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable

LabelValues = tuple[str, ...]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: tuple[str, ...], values: LabelValues, extra: str = "") -> str:
    parts = [f'{name}="{_escape(value)}"' for name, value in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, labelnames: tuple[str, ...] = ()) -> None:
        self.name = name
        self.help_text = help_text
        self.labelnames = labelnames

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help_text}", f"# TYPE {self.name} {self.kind}"]

    def lines(self) -> Iterable[str]:
        raise NotImplementedError


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str, labelnames: tuple[str, ...] = ()) -> None:
        super().__init__(name, help_text, labelnames)
        self.values: dict[LabelValues, float] = {}

    def inc(self, labels: LabelValues = (), amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def value(self, labels: LabelValues = ()) -> float:
        return self.values.get(labels, 0.0)

    def lines(self) -> Iterable[str]:
        for labels, value in sorted(self.values.items()):
            yield f"{self.name}{_labels(self.labelnames, labels)} {_number(value)}"


class Gauge(_Metric):
    """A value read when scraped (queue depth and the like)."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        super().__init__(name, help_text)
        self._read = read

    def lines(self) -> Iterable[str]:
        yield f"{self.name} {_number(self._read())}"


class GaugeFamily(_Metric):
    """Labelled values read when scraped, e.g. one circuit-breaker state per deployment."""

    kind = "gauge"

    def __init__(
        self,
        name: str,
        help_text: str,
        labelnames: tuple[str, ...],
        read: Callable[[], Iterable[tuple[LabelValues, float]]],
    ) -> None:
        super().__init__(name, help_text, labelnames)
        self._read = read

    def lines(self) -> Iterable[str]:
        for labels, value in sorted(self._read()):
            yield f"{self.name}{_labels(self.labelnames, labels)} {_number(value)}"


class Histogram(_Metric):
    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        labelnames: tuple[str, ...] = (),
        buckets: tuple[float, ...] = LATENCY_BUCKETS,
    ) -> None:
        super().__init__(name, help_text, labelnames)
        self.buckets = buckets
        self._counts: dict[LabelValues, list[int]] = {}
        self._sums: dict[LabelValues, float] = {}

    def observe(self, labels: LabelValues, value: float) -> None:
        counts = self._counts.get(labels)
        if counts is None:
            counts = self._counts[labels] = [0] * (len(self.buckets) + 1)
            self._sums[labels] = 0.0
        counts[bisect_left(self.buckets, value)] += 1
        self._sums[labels] += value

    def count(self, labels: LabelValues) -> int:
        return sum(self._counts.get(labels, ()))

    def lines(self) -> Iterable[str]:
        for labels, counts in sorted(self._counts.items()):
            cumulative = 0
            for bound, count in zip((*self.buckets, float("inf")), counts, strict=True):
                cumulative += count
                le = "+Inf" if bound == float("inf") else _number(bound)
                bucket_labels = _labels(self.labelnames, labels, 'le="' + le + '"')
                yield f"{self.name}_bucket{bucket_labels} {cumulative}"
            yield f"{self.name}_sum{_labels(self.labelnames, labels)} {_number(self._sums[labels])}"
            yield f"{self.name}_count{_labels(self.labelnames, labels)} {cumulative}"


class MetricsRegistry:
    def __init__(self) -> None:
        self._metrics: list[_Metric] = []

    def add(self, metric: _Metric) -> None:
        if any(existing.name == metric.name for existing in self._metrics):
            raise ValueError(f"metric {metric.name} registered twice")
        self._metrics.append(metric)

    def render(self) -> bytes:
        lines: list[str] = []
        for metric in self._metrics:
            lines.extend(metric.header())
            lines.extend(metric.lines())
        return ("\n".join(lines) + "\n").encode()


class GatewayMetrics:
    """The gateway's metric set, registered on one registry per server."""

    def __init__(self, registry: MetricsRegistry) -> None:
        model_provider = ("model", "provider")
        self.requests = Counter(
            "llmops_requests_total",
            "Requests answered, by model, provider and HTTP status.",
            (*model_provider, "status"),
        )
        self.latency = Histogram(
            "llmops_request_duration_seconds", "Time to the whole answer.", model_provider
        )
        self.ttft = Histogram(
            "llmops_time_to_first_token_seconds", "Time to the first streamed chunk.", model_provider
        )
        self.tokens = Counter(
            "llmops_tokens_total", "Tokens in (prompt) and out (completion).", ("model", "direction")
        )
        self.cost = Counter("llmops_cost_usd_total", "Cost in USD at the configured prices.", ("model",))
        self.traces_written = Counter("llmops_traces_written_total", "Traces stored in the database.")
        self.traces_dropped = Counter(
            "llmops_traces_dropped_total", "Traces lost, by reason (queue_full, invalid).", ("reason",)
        )
        self.trace_backpressure_waits = Counter(
            "llmops_trace_backpressure_waits_total",
            "Requests that waited for room in the full trace queue (trace_overflow=block).",
        )
        self.upstream_calls = Counter(
            "llmops_upstream_calls_total",
            "Calls to upstream deployments (retries included), by model, deployment and HTTP status.",
            ("model", "deployment", "status"),
        )
        self.fallbacks = Counter(
            "llmops_fallbacks_total", "Requests handed to a fallback model.", ("model", "fallback")
        )
        self.cache = Counter(
            "llmops_cache_requests_total",
            "Response-cache lookups, by model and result (hit, semantic-hit, miss).",
            ("model", "result"),
        )
        for metric in (
            self.requests,
            self.latency,
            self.ttft,
            self.tokens,
            self.cost,
            self.upstream_calls,
            self.fallbacks,
            self.cache,
        ):
            registry.add(metric)
        registry.add(self.traces_written)
        registry.add(self.traces_dropped)
        registry.add(self.trace_backpressure_waits)


class DeploymentMetrics:
    """Managed deployments: each version's share of its model's traffic, and the transitions made here.

    The traffic share is read from ``traffic`` when scraped (what this server routes by now); the
    transitions are those this server applied (its controller's and its admin API's), by action.
    """

    def __init__(
        self, registry: MetricsRegistry, traffic: Callable[[], Iterable[tuple[LabelValues, float]]]
    ) -> None:
        self.traffic = GaugeFamily(
            "llmops_deployment_traffic_percent",
            "Share of a managed model's traffic routed to each deployment (a registry version), in percent.",
            ("model", "deployment"),
            traffic,
        )
        self.transitions = Counter(
            "llmops_deployment_transitions_total",
            "Deployment changes applied by this server (deploy, promote, auto-promote, rollback, "
            "auto-rollback, undeploy), by model and action.",
            ("model", "action"),
        )
        registry.add(self.traffic)
        registry.add(self.transitions)


class LimitMetrics:
    """Rate limits and budgets (issue 9): refusals, soft-limit alerts, and limiter backend failures."""

    def __init__(self, registry: MetricsRegistry) -> None:
        self.rejections = Counter(
            "llmops_ratelimit_rejections_total",
            "Requests refused with 429, by scope (key, team) and limit (rpm, tpm, budget_day, "
            "budget_month, budget_total).",
            ("scope", "limit"),
        )
        self.budget_alerts = Counter(
            "llmops_budget_alerts_total",
            "Budgets whose settled spend crossed the alert fraction (once per scope, period and bucket).",
            ("scope", "period"),
        )
        self.backend_errors = Counter(
            "llmops_limiter_errors_total",
            "Failures of the limits backend (Redis) or the spend table, by operation (admit, settle, "
            "seed, flush).",
            ("operation",),
        )
        self.error_decisions = Counter(
            "llmops_limiter_error_decisions_total",
            "Requests decided without the limits backend, by outcome: admitted (fail_open) or refused "
            "(fail_closed).",
            ("outcome",),
        )
        for metric in (self.rejections, self.budget_alerts, self.backend_errors, self.error_decisions):
            registry.add(metric)


GUARDRAIL_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5
)  # fmt: skip


class GuardrailMetrics:
    """Guardrails (issue 12): every decision by rule, stage and action, and how long checks take."""

    def __init__(self, registry: MetricsRegistry) -> None:
        self.decisions = Counter(
            "llmops_guardrail_decisions_total",
            "Guardrail decisions, by guardrail (rule name), stage (input, output) and action "
            "(pass, block, redact, redact_trace, flag).",
            ("guardrail", "stage", "action"),
        )
        self.seconds = Histogram(
            "llmops_guardrail_check_seconds",
            "Time a guardrail's check took, by guardrail and stage.",
            ("guardrail", "stage"),
            GUARDRAIL_BUCKETS,
        )
        registry.add(self.decisions)
        registry.add(self.seconds)


class CounterFamily(GaugeFamily):
    """Totals that something else keeps, read when scraped (CPU seconds, tokens a model generated).

    ``read`` must only ever return values that grow (or restart at zero with the process).
    """

    kind = "counter"

"""The results of an experiment: per-variant figures from its traces and feedback, tests, a verdict.

Everything is computed from the ``trace`` rows the gateway recorded with the experiment's id (each
carries its ``variant``) and the ``feedback`` rows attached to them, by SQL aggregates grouped by
variant, on SQLite and Postgres alike; only a handful of rows per variant leave the database.

Per variant: requests, errors (``status = 'error'``) and the error rate with its Wilson 95% interval;
latency of the answered requests (mean with its t 95% interval, and the p50 and p95 by the
nearest-rank method: the smallest latency that at least 50% or 95% of them do not exceed);
time to first token; tokens and cost; the thumbs-up rate over the traces that got a thumb (each
trace counts once, with its most recent thumb) with its Wilson interval; the mean human score
(each trace counts once, with the mean of its scores) with its t interval. ``eval_scores`` is where
the evaluation module will put per-variant evaluation scores; it is empty until that module exists.

Each variant is then compared with the control (the first variant by name unless another is named):
the thumbs-up rate and the error rate with the pooled two-proportion z-test, the score and the
latency with Welch's t-test (see :mod:`llmops.stats`). With several challengers the 0.05 level is
shared among them (Bonferroni: 0.05 / (variants - 1) per comparison), so that the chance of any
false "significant" stays at 0.05 per metric. Each comparison says whether the difference is
significant and how many samples per variant would detect the difference seen so far with 80% power;
the recommendation sums it up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, func, or_, select

from llmops.prompts.experiments import Experiment, VariantNotFound
from llmops.stats import (
    Interval,
    Sample,
    Significance,
    mean_interval,
    more_needed,
    sample_size_means,
    sample_size_proportions,
    two_proportion_z_test,
    welch_t_test,
    wilson_interval,
    z_test_is_valid,
)
from llmops.store.tables import feedback, traces

ALPHA = 0.05
POWER = 0.8
CONFIDENCE = 0.95
PERCENTILES = (50, 95)


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` of ``n`` with the Wilson 95% interval; value and bounds are None when n = 0."""

    count: int
    n: int
    value: float | None
    low: float | None
    high: float | None

    @classmethod
    def of(cls, count: int, n: int) -> Rate:
        if n == 0:
            return cls(count, 0, None, None, None)
        interval = wilson_interval(count, n, CONFIDENCE)
        return cls(count, n, count / n, interval.low, interval.high)


@dataclass(frozen=True, slots=True)
class Mean:
    """A mean over ``n`` values with its t 95% interval (None below two values) and standard deviation."""

    n: int
    value: float | None
    low: float | None
    high: float | None
    std_dev: float | None

    @classmethod
    def of(cls, sample: Sample) -> Mean:
        if sample.n == 0:
            return cls(0, None, None, None, None)
        interval = mean_interval(sample, CONFIDENCE)
        return cls(
            sample.n,
            sample.mean,
            interval.low if interval else None,
            interval.high if interval else None,
            math.sqrt(sample.variance) if sample.n > 1 else None,
        )


@dataclass(frozen=True, slots=True)
class VariantResult:
    name: str
    version: int
    weight: float
    planned_share: float  # weight / total weight
    share: float | None  # of the experiment's requests, None before the first
    requests: int
    errors: int
    error_rate: Rate
    latency_ms: Mean  # answered (status ok) requests
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    ttft_ms: float | None  # mean time to first token of streamed answers
    prompt_tokens: int
    completion_tokens: int
    cost: float
    cost_per_request: float | None
    thumbs_up: Rate  # up of the traces with a thumb
    score: Mean  # per trace, the mean of its scores
    eval_scores: dict[str, Mean] = field(default_factory=dict)  # filled by evaluations, not yet written


@dataclass(frozen=True, slots=True)
class Comparison:
    """``variant`` against ``control`` on one metric; ``difference`` is variant - control."""

    variant: str
    control: str
    metric: str  # thumbs_up_rate | score | error_rate | latency_ms
    test: str
    higher_is_better: bool
    unit: str  # what one sample is: a thumbed trace, a scored trace, a request, an answered request
    control_n: int
    variant_n: int
    control_value: float | None
    variant_value: float | None
    difference: float | None
    difference_low: float | None  # confidence interval of the difference at level 1 - alpha
    difference_high: float | None
    statistic: float | None  # z or t
    df: float | None  # Welch-Satterthwaite degrees of freedom (t-tests)
    p_value: float | None  # two-sided; None when the test cannot be run yet (see note)
    alpha: float
    significant: bool
    better: str | None  # the variant that is significantly better on this metric, if one is
    needed_per_variant: int | None  # samples per variant to detect the observed difference (power 0.8)
    more_samples: int | None  # how many more the variant furthest from that still needs
    more_requests: int | None  # the same in requests, at the share of requests that give a sample
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Recommendation:
    text: str
    winner: str | None  # the variant to promote, when the data say so
    more_requests: int | None  # per variant, when nothing is significant yet and an estimate exists


@dataclass(frozen=True, slots=True)
class ExperimentResults:
    experiment: Experiment
    control: str
    alpha: float
    power: float
    confidence: float
    variants: list[VariantResult]
    comparisons: list[Comparison]
    recommendation: Recommendation
    notes: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment.as_dict(),
            "control": self.control,
            "alpha": self.alpha,
            "power": self.power,
            "confidence": self.confidence,
            "variants": [asdict(variant) for variant in self.variants],
            "comparisons": [asdict(comparison) for comparison in self.comparisons],
            "recommendation": asdict(self.recommendation),
            "notes": list(self.notes),
        }


# --- reading the traces -----------------------------------------------------------------------------


def experiment_results(
    engine: Engine, experiment: Experiment, *, control: str | None = None
) -> ExperimentResults:
    """The results of ``experiment`` as its traces and their feedback stand now."""
    names = [variant.name for variant in experiment.variants]
    control = control if control is not None else names[0]
    if control not in names:
        raise VariantNotFound(
            f"experiment {experiment.name!r} has no variant {control!r} (it has {', '.join(names)})"
        )
    with engine.connect() as connection:
        traffic = _traffic(connection, experiment.id)
        percentiles = _latency_percentiles(connection, experiment.id)
        thumbs = _thumbs(connection, experiment.id)
        scores = _scores(connection, experiment.id)
    total_requests = sum(int(traffic[name]["requests"]) for name in names if name in traffic)
    total_weight = sum(variant.weight for variant in experiment.variants)
    variants = [
        _variant_result(
            variant.name,
            variant.version,
            variant.weight,
            variant.weight / total_weight,
            total_requests,
            traffic.get(variant.name, {}),
            percentiles.get(variant.name, {}),
            thumbs.get(variant.name, (0, 0)),
            scores.get(variant.name, Sample(0, math.nan, 0.0)),
        )
        for variant in experiment.variants
    ]
    by_name = {variant.name: variant for variant in variants}
    alpha = ALPHA / max(1, len(variants) - 1)
    comparisons = [
        comparison
        for variant in variants
        if variant.name != control
        for comparison in _compare(by_name[control], variant, alpha)
    ]
    return ExperimentResults(
        experiment=experiment,
        control=control,
        alpha=alpha,
        power=POWER,
        confidence=CONFIDENCE,
        variants=variants,
        comparisons=comparisons,
        recommendation=_recommend(control, variants, comparisons),
        notes=_notes(variants, total_requests),
    )


def _number(value: Any) -> float:
    """SQL aggregates come back as int, float or Decimal (Postgres), or None for no rows."""
    return float(value) if value is not None else 0.0


def _traffic(connection: Connection, experiment_id: str) -> dict[str, dict[str, Any]]:
    ok = traces.c.status == "ok"
    latency = case((ok, traces.c.latency_ms))
    query = (
        select(
            traces.c.variant,
            func.count().label("requests"),
            func.sum(case((traces.c.status == "error", 1), else_=0)).label("errors"),
            func.count(latency).label("answered"),
            func.sum(latency).label("latency_sum"),
            func.sum(latency * latency).label("latency_squares"),
            func.avg(case((ok, traces.c.ttft_ms))).label("ttft_ms"),
            func.sum(traces.c.prompt_tokens).label("prompt_tokens"),
            func.sum(traces.c.completion_tokens).label("completion_tokens"),
            func.sum(traces.c.cost).label("cost"),
        )
        .where(traces.c.experiment == experiment_id)
        .group_by(traces.c.variant)
    )
    return {row.variant: dict(row._mapping) for row in connection.execute(query) if row.variant is not None}


def _latency_percentiles(connection: Connection, experiment_id: str) -> dict[str, dict[int, float]]:
    """Nearest-rank percentiles of each variant's answered latency, ranked in the database: the row
    of rank r among n is the p-th percentile when r = ⌈p·n/100⌉, i.e. 100r ≥ pn > 100(r - 1)."""
    ranked = (
        select(
            traces.c.variant.label("variant"),
            traces.c.latency_ms.label("latency"),
            func.row_number()
            .over(partition_by=traces.c.variant, order_by=(traces.c.latency_ms, traces.c.id))
            .label("rank"),
            func.count().over(partition_by=traces.c.variant).label("n"),
        )
        .where(traces.c.experiment == experiment_id, traces.c.status == "ok")
        .subquery()
    )
    wanted = or_(
        *(
            and_(100 * ranked.c.rank >= p * ranked.c.n, 100 * (ranked.c.rank - 1) < p * ranked.c.n)
            for p in PERCENTILES
        )
    )
    found: dict[str, dict[int, float]] = {}
    for row in connection.execute(select(ranked).where(wanted)):
        for p in PERCENTILES:
            if 100 * row.rank >= p * row.n > 100 * (row.rank - 1):
                found.setdefault(row.variant, {})[p] = float(row.latency)
    return found


def _thumbs(connection: Connection, experiment_id: str) -> dict[str, tuple[int, int]]:
    """(thumbs up, traces with a thumb) per variant; a trace's most recent thumb is its thumb."""
    latest = (
        select(
            traces.c.variant.label("variant"),
            feedback.c.thumb.label("thumb"),
            func.row_number()
            .over(
                partition_by=feedback.c.trace_id,
                order_by=(feedback.c.created_at.desc(), feedback.c.id.desc()),
            )
            .label("recency"),
        )
        .select_from(feedback.join(traces, traces.c.id == feedback.c.trace_id))
        .where(traces.c.experiment == experiment_id, feedback.c.thumb.is_not(None))
        .subquery()
    )
    query = (
        select(
            latest.c.variant,
            func.sum(case((latest.c.thumb == "up", 1), else_=0)).label("up"),
            func.count().label("thumbed"),
        )
        .where(latest.c.recency == 1)
        .group_by(latest.c.variant)
    )
    return {
        row.variant: (int(row.up), int(row.thumbed))
        for row in connection.execute(query)
        if row.variant is not None
    }


def _scores(connection: Connection, experiment_id: str) -> dict[str, Sample]:
    """Per variant, the sample of per-trace scores (each trace's mean score)."""
    per_trace = (
        select(traces.c.variant.label("variant"), func.avg(feedback.c.score).label("score"))
        .select_from(feedback.join(traces, traces.c.id == feedback.c.trace_id))
        .where(traces.c.experiment == experiment_id, feedback.c.score.is_not(None))
        .group_by(traces.c.variant, feedback.c.trace_id)
        .subquery()
    )
    query = select(
        per_trace.c.variant,
        func.count().label("n"),
        func.sum(per_trace.c.score).label("total"),
        func.sum(per_trace.c.score * per_trace.c.score).label("squares"),
    ).group_by(per_trace.c.variant)
    return {
        row.variant: Sample.from_sums(int(row.n), _number(row.total), _number(row.squares))
        for row in connection.execute(query)
        if row.variant is not None
    }


def _variant_result(
    name: str,
    version: int,
    weight: float,
    planned_share: float,
    total_requests: int,
    traffic: Mapping[str, Any],
    percentiles: Mapping[int, float],
    thumbs: tuple[int, int],
    score: Sample,
) -> VariantResult:
    requests = int(traffic.get("requests") or 0)
    errors = int(traffic.get("errors") or 0)
    latency = Sample.from_sums(
        int(traffic.get("answered") or 0),
        _number(traffic.get("latency_sum")),
        _number(traffic.get("latency_squares")),
    )
    cost = _number(traffic.get("cost"))
    ttft = traffic.get("ttft_ms")
    return VariantResult(
        name=name,
        version=version,
        weight=weight,
        planned_share=planned_share,
        share=requests / total_requests if total_requests else None,
        requests=requests,
        errors=errors,
        error_rate=Rate.of(errors, requests),
        latency_ms=Mean.of(latency),
        latency_p50_ms=percentiles.get(50),
        latency_p95_ms=percentiles.get(95),
        ttft_ms=float(ttft) if ttft is not None else None,
        prompt_tokens=int(_number(traffic.get("prompt_tokens"))),
        completion_tokens=int(_number(traffic.get("completion_tokens"))),
        cost=cost,
        cost_per_request=cost / requests if requests else None,
        thumbs_up=Rate.of(*thumbs),
        score=Mean.of(score),
    )


# --- comparing ----------------------------------------------------------------------------------------

# metric: (what it is called, whether higher is better, what one sample is)
_METRICS = {
    "thumbs_up_rate": ("thumbs-up rate", True, "thumbed trace"),
    "score": ("mean score", True, "scored trace"),
    "error_rate": ("error rate", False, "request"),
    "latency_ms": ("latency", False, "answered request"),
}
_LABELS = {metric: label for metric, (label, _, _) in _METRICS.items()}


def _compare(control: VariantResult, variant: VariantResult, alpha: float) -> list[Comparison]:
    return [
        _compare_rates("thumbs_up_rate", control, variant, alpha),
        _compare_means("score", control, variant, alpha),
        _compare_rates("error_rate", control, variant, alpha),
        _compare_means("latency_ms", control, variant, alpha),
    ]


def _rate(result: VariantResult, metric: str) -> Rate:
    return result.thumbs_up if metric == "thumbs_up_rate" else result.error_rate


def _mean(result: VariantResult, metric: str) -> Mean:
    return result.score if metric == "score" else result.latency_ms


def _figure(result: VariantResult, metric: str) -> Rate | Mean:
    return _rate(result, metric) if metric in ("thumbs_up_rate", "error_rate") else _mean(result, metric)


def _compare_rates(metric: str, control: VariantResult, variant: VariantResult, alpha: float) -> Comparison:
    common = _common(metric, control, variant, alpha)
    a, b = _rate(control, metric), _rate(variant, metric)
    if a.value is None or b.value is None:
        return Comparison(
            **common, test="two-proportion z-test", note=f"no {common['unit']}s yet in both variants"
        )
    test = two_proportion_z_test(a.count, a.n, b.count, b.n, confidence=1.0 - alpha)
    needed = sample_size_proportions(a.value, b.value, alpha, POWER)
    note = None
    if not z_test_is_valid(a.count, a.n, b.count, b.n):
        note = "too few yet for the z-test: it wants about 5 expected of each outcome per variant"
    return _finish(common, test, needed, valid=note is None, note=note, control=control, variant=variant)


def _compare_means(metric: str, control: VariantResult, variant: VariantResult, alpha: float) -> Comparison:
    common = _common(metric, control, variant, alpha)
    a, b = _sample(_mean(control, metric)), _sample(_mean(variant, metric))
    unit = common["unit"]
    if a.n < 2 or b.n < 2:
        return Comparison(**common, test="Welch's t-test", note=f"Welch's t-test needs 2 {unit}s per variant")
    if a.variance == 0 and b.variance == 0:
        note = f"every {unit} has the same value within each variant: nothing to test"
        return Comparison(**common, test="Welch's t-test", note=note)
    test = welch_t_test(a, b, confidence=1.0 - alpha)
    needed = sample_size_means(test.difference, a.variance, b.variance, alpha, POWER)
    return _finish(common, test, needed, valid=True, note=None, control=control, variant=variant)


def _sample(figure: Mean) -> Sample:
    if figure.value is None:
        return Sample(0, math.nan, 0.0)
    return Sample(figure.n, figure.value, (figure.std_dev or 0.0) ** 2)


def _common(metric: str, control: VariantResult, variant: VariantResult, alpha: float) -> dict[str, Any]:
    """The fields of a comparison that do not depend on the test having been run."""
    _, higher_is_better, unit = _METRICS[metric]
    a, b = _figure(control, metric), _figure(variant, metric)
    return {
        "variant": variant.name,
        "control": control.name,
        "metric": metric,
        "higher_is_better": higher_is_better,
        "unit": unit,
        "control_n": a.n,
        "variant_n": b.n,
        "control_value": a.value,
        "variant_value": b.value,
        "difference": None,
        "difference_low": None,
        "difference_high": None,
        "statistic": None,
        "df": None,
        "p_value": None,
        "alpha": alpha,
        "significant": False,
        "better": None,
        "needed_per_variant": None,
        "more_samples": None,
        "more_requests": None,
    }


def _finish(
    common: dict[str, Any],
    test: Significance,
    needed: int | None,
    *,
    valid: bool,
    note: str | None,
    control: VariantResult,
    variant: VariantResult,
) -> Comparison:
    significant = valid and test.p_value < common["alpha"]
    better = None
    if significant:
        variant_higher = test.difference > 0
        better = variant.name if variant_higher == common["higher_is_better"] else control.name
    more = more_needed(needed, common["control_n"], common["variant_n"])
    interval: Interval | None = test.interval
    values = {
        **common,
        "difference": test.difference,
        "difference_low": interval.low if interval else None,
        "difference_high": interval.high if interval else None,
        "statistic": test.statistic,
        "df": test.df,
        "p_value": test.p_value,
        "significant": significant,
        "better": better,
        "needed_per_variant": needed,
        "more_samples": more,
        "more_requests": _in_requests(more, common["control_n"] + common["variant_n"], control, variant),
    }
    return Comparison(**values, test=test.test, note=note)


def _in_requests(
    more: int | None, samples: int, control: VariantResult, variant: VariantResult
) -> int | None:
    """More samples as more requests, at the share of requests that gave a sample so far (feedback
    comes for some traces only)."""
    requests = control.requests + variant.requests
    if more is None or samples == 0 or requests == 0:
        return None
    return math.ceil(more * requests / samples)


# --- the verdict ------------------------------------------------------------------------------------


def _p(p_value: float | None) -> str:
    if p_value is None:
        return "p=n/a"
    return "p<0.0001" if p_value < 0.0001 else f"p={p_value:.2g}"


def _value(metric: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if metric in ("thumbs_up_rate", "error_rate"):
        return f"{value:.1%}"
    if metric == "latency_ms":
        return f"{value:.0f} ms"
    return f"{value:.3g}"


def _finding(comparison: Comparison) -> str:
    winner = comparison.better or comparison.variant
    loser = comparison.control if winner == comparison.variant else comparison.variant
    values = {comparison.control: comparison.control_value, comparison.variant: comparison.variant_value}
    metric = comparison.metric
    return (
        f"{winner} beats {loser} on {_LABELS[metric]} ({_value(metric, values[winner])} vs "
        f"{_value(metric, values[loser])}, {_p(comparison.p_value)})"
    )


def _recommend(
    control: str, variants: Sequence[VariantResult], comparisons: Sequence[Comparison]
) -> Recommendation:
    if not any(variant.requests for variant in variants):
        return Recommendation("no requests recorded for this experiment yet", None, None)
    found = [comparison for comparison in comparisons if comparison.significant]
    if not found:
        return _not_yet(comparisons)
    text = "; ".join(_finding(comparison) for comparison in found)
    challengers = [variant.name for variant in variants if variant.name != control]
    wins = {name: {c.metric for c in found if c.variant == name and c.better == name} for name in challengers}
    losses = {
        name: {c.metric for c in found if c.variant == name and c.better == control} for name in challengers
    }
    candidates = [name for name in challengers if wins[name] and not losses[name]]
    if len(candidates) == 1:
        return Recommendation(f"{text}: promote {candidates[0]}", candidates[0], None)
    if len(candidates) > 1:
        return Recommendation(
            f"{text}: {', '.join(candidates)} each beat {control} but were not compared with each other",
            None,
            None,
        )
    if not any(wins.values()):
        return Recommendation(f"{text}: keep {control}", control, None)
    return Recommendation(f"{text}: a trade-off; decide which metric matters more", None, None)


def _not_yet(comparisons: Sequence[Comparison]) -> Recommendation:
    estimates = [c for c in comparisons if c.more_requests is not None and c.more_requests > 0]
    if not estimates:
        return Recommendation(
            "no significant difference yet; the differences so far are too small or too few to estimate "
            "how many more requests would show one",
            None,
            None,
        )
    nearest = min(estimates, key=lambda c: c.more_requests or 0)
    more = nearest.more_requests
    return Recommendation(
        f"no significant difference yet; about {more:,} more requests per variant needed "
        f"(for {_LABELS[nearest.metric]}, {nearest.variant} vs {nearest.control}, if the difference "
        "seen so far holds)",
        None,
        more,
    )


def _notes(variants: Sequence[VariantResult], total_requests: int) -> list[str]:
    notes = []
    if total_requests and not any(variant.thumbs_up.n or variant.score.n for variant in variants):
        notes.append("no human feedback yet: only errors and latency can be compared")
    notes.append("eval scores: none yet (evaluations are not available in this version)")
    return notes

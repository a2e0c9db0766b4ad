"""Experiment results on SQLite and Postgres: figures from traces and feedback, tests, the verdict.

Each test writes trace and feedback rows straight into the store, as the gateway's trace writer and
the feedback API would, so the expected figures are known exactly.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from llmops.ids import new_id
from llmops.prompts.experiment_results import ExperimentResults
from llmops.prompts.experiments import (
    Experiment,
    ExperimentConflict,
    ExperimentService,
    VariantNotFound,
    parse_variant,
)
from llmops.prompts.repository import PromptRepository
from llmops.prompts.services import InvalidPrompt, PromptNotFound, PromptService
from llmops.prompts.spec import PromptContent
from llmops.stats import Sample, sample_size_proportions, two_proportion_z_test, welch_t_test, wilson_interval
from llmops.store import TraceRepository

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def prompts(db: Engine) -> PromptService:
    service = PromptService(PromptRepository(db))
    for text in ("Hello!", "Hi!", "Hey!"):
        service.create_version("p", PromptContent(kind="text", template=text))
    return service


@pytest.fixture
def experiments(db: Engine, prompts: PromptService) -> ExperimentService:
    return ExperimentService(db, prompts, PromptRepository(db))


@pytest.fixture
def traces(db: Engine) -> TraceRepository:
    return TraceRepository(db)


def _trace(experiment: Experiment | None, variant: str | None, **fields: Any) -> dict[str, Any]:
    status = fields.pop("status", "ok")
    return {
        "id": new_id(),
        "started_at": T0,
        "ended_at": T0,
        "endpoint": "chat.completions",
        "requested_model": "prompt:p",
        "stream": False,
        "status": status,
        "status_code": 200 if status == "ok" else 500,
        "latency_ms": 100.0,
        "experiment": experiment.id if experiment else None,
        "variant": variant,
        **fields,
    }


def _add(traces: TraceRepository, rows: Iterable[dict[str, Any]]) -> list[str]:
    rows = list(rows)
    traces.insert_many(rows)
    return [row["id"] for row in rows]


def _feedback(traces: TraceRepository, trace_id: str, minutes: int = 0, **fields: Any) -> None:
    traces.add_feedback(
        {"id": new_id(), "trace_id": trace_id, "created_at": T0 + timedelta(minutes=minutes), **fields}
    )


def _thumbs(traces: TraceRepository, ids: list[str], up: int) -> None:
    for number, trace_id in enumerate(ids):
        _feedback(traces, trace_id, thumb="up" if number < up else "down")


def _comparison(results: ExperimentResults, variant: str, metric: str) -> Any:
    return next(c for c in results.comparisons if c.variant == variant and c.metric == metric)


def test_a_clearly_better_variant_is_significant(
    experiments: ExperimentService, traces: TraceRepository
) -> None:
    experiment = experiments.create("tone", "p", [("a", 1, 1.0), ("b", 2, 1.0)])
    latencies = [float(n) for n in range(1, 201)]  # the same spread on both sides
    ids = {
        name: _add(
            traces,
            (
                _trace(experiment, name, latency_ms=ms, prompt_tokens=10, completion_tokens=5, cost=0.002)
                for ms in latencies
            ),
        )
        for name in ("a", "b")
    }
    for name in ("a", "b"):  # 4 errors each, which do not count in latency
        _add(traces, (_trace(experiment, name, status="error", latency_ms=5000.0) for _ in range(4)))
    _thumbs(traces, ids["a"], up=100)  # 50% of 200
    _thumbs(traces, ids["b"], up=150)  # 75% of 200

    results = experiments.results("tone")

    a, b = results.variants
    assert (a.name, a.requests, a.errors, b.requests) == ("a", 204, 4, 204)
    assert a.error_rate.value == pytest.approx(4 / 204)
    assert (a.error_rate.low, a.error_rate.high) == pytest.approx(tuple(_bounds(4, 204)))
    assert a.latency_ms.n == 200
    assert a.latency_ms.value == pytest.approx(100.5)
    assert a.latency_ms.std_dev == pytest.approx(Sample.of(latencies).variance ** 0.5)
    assert (a.latency_p50_ms, a.latency_p95_ms) == (100.0, 190.0)  # ranks ⌈100⌉ and ⌈190⌉ of 200
    assert (a.prompt_tokens, a.completion_tokens) == (2000, 1000)
    assert a.cost == pytest.approx(0.4)
    assert a.cost_per_request == pytest.approx(0.4 / 204)
    assert (b.thumbs_up.count, b.thumbs_up.n, b.thumbs_up.value) == (150, 200, 0.75)
    assert (b.thumbs_up.low, b.thumbs_up.high) == pytest.approx(tuple(_bounds(150, 200)))
    assert a.share == b.share == 0.5
    assert a.eval_scores == {}

    thumbs = _comparison(results, "b", "thumbs_up_rate")
    expected = two_proportion_z_test(100, 200, 150, 200)
    assert thumbs.test == "two-proportion z-test"
    assert thumbs.statistic == pytest.approx(expected.statistic)
    assert thumbs.p_value == pytest.approx(expected.p_value)
    assert thumbs.p_value < 1e-4
    assert (thumbs.significant, thumbs.better, thumbs.alpha) == (True, "b", 0.05)
    assert thumbs.needed_per_variant == sample_size_proportions(0.5, 0.75)
    assert thumbs.more_samples == 0
    latency = _comparison(results, "b", "latency_ms")
    assert (latency.significant, latency.p_value, latency.needed_per_variant) == (False, 1.0, None)
    errors = _comparison(results, "b", "error_rate")
    assert (errors.significant, errors.difference) == (False, 0.0)
    assert "it wants about 5 expected" in errors.note  # 4 errors each: too few for the normal approximation
    assert _comparison(results, "b", "score").note == "Welch's t-test needs 2 scored traces per variant"
    assert results.recommendation.winner == "b"
    assert results.recommendation.text == "b beats a on thumbs-up rate (75.0% vs 50.0%, p<0.0001): promote b"


def _bounds(successes: int, n: int) -> list[float]:
    interval = wilson_interval(successes, n)
    return [interval.low, interval.high]


def test_a_small_difference_is_not_significant_and_says_how_many_more(
    experiments: ExperimentService, traces: TraceRepository
) -> None:
    experiment = experiments.create("tone", "p", [("a", 1, 1.0), ("b", 2, 1.0)])
    ids = {name: _add(traces, (_trace(experiment, name) for _ in range(200))) for name in ("a", "b")}
    _thumbs(traces, ids["a"][:100], up=50)  # half the traces get a thumb: 50% up
    _thumbs(traces, ids["b"][:100], up=55)  # 55% up

    results = experiments.results(experiment.id)

    thumbs = _comparison(results, "b", "thumbs_up_rate")
    assert thumbs.significant is False
    assert thumbs.p_value == pytest.approx(two_proportion_z_test(50, 100, 55, 100).p_value)
    assert thumbs.p_value > 0.4
    needed = sample_size_proportions(0.5, 0.55)
    assert needed is not None
    assert needed > 1000
    assert thumbs.needed_per_variant == needed
    assert thumbs.more_samples == needed - 100
    assert thumbs.more_requests == 2 * (needed - 100)  # one request in two gets a thumb
    assert thumbs.difference_low < 0 < thumbs.difference_high
    assert results.recommendation.winner is None
    assert results.recommendation.more_requests == 2 * (needed - 100)
    assert results.recommendation.text == (
        f"no significant difference yet; about {2 * (needed - 100):,} more requests per variant needed "
        "(for thumbs-up rate, b vs a, if the difference seen so far holds)"
    )


def test_scores_latest_thumbs_and_welch(experiments: ExperimentService, traces: TraceRepository) -> None:
    experiment = experiments.create("tone", "p", [("a", 1, 1.0), ("b", 2, 1.0)])
    ids = {name: _add(traces, (_trace(experiment, name) for _ in range(30))) for name in ("a", "b")}
    rng = random.Random(5)
    scores: dict[str, list[float]] = {"a": [], "b": []}
    for name, centre in (("a", 3.0), ("b", 3.8)):
        for trace_id in ids[name]:
            first, second = rng.gauss(centre, 1), rng.gauss(centre, 1)
            _feedback(traces, trace_id, minutes=1, score=first)  # two raters: the trace counts their mean
            _feedback(traces, trace_id, minutes=2, score=second, label="checked")
            scores[name].append((first + second) / 2)
    # a trace changes its mind: down, then up; only the latest thumb counts
    _feedback(traces, ids["a"][0], minutes=1, thumb="down")
    _feedback(traces, ids["a"][0], minutes=5, thumb="up")
    _feedback(traces, ids["a"][1], minutes=3, thumb="down")

    results = experiments.results("tone")

    a, b = results.variants
    assert (a.thumbs_up.count, a.thumbs_up.n) == (1, 2)
    assert (a.score.n, b.score.n) == (30, 30)
    assert a.score.value == pytest.approx(sum(scores["a"]) / 30)
    score = _comparison(results, "b", "score")
    expected = welch_t_test(Sample.of(scores["a"]), Sample.of(scores["b"]), confidence=0.95)
    assert score.test == "Welch's t-test"
    assert score.statistic == pytest.approx(expected.statistic)
    assert score.df == pytest.approx(expected.df)
    assert score.p_value == pytest.approx(expected.p_value)
    assert score.difference_low == pytest.approx(expected.interval.low)  # type: ignore[union-attr]
    assert score.significant == (expected.p_value < 0.05)
    assert a.score.low == pytest.approx(a.score.value - 2.045229642132703 * a.score.std_dev / math.sqrt(30))


def test_latency_percentiles_are_nearest_rank_in_the_database(
    experiments: ExperimentService, traces: TraceRepository
) -> None:
    experiment = experiments.create("tone", "p", [("a", 1, 1.0), ("b", 2, 3.0)])
    rng = random.Random(9)
    latencies = {"a": [round(rng.lognormvariate(5, 0.6), 1) for _ in range(137)], "b": [42.0, 7.0, 7.0]}
    latencies["a"] += latencies["a"][:10]  # ties
    for name, values in latencies.items():
        _add(traces, (_trace(experiment, name, latency_ms=ms) for ms in values))
    _add(traces, [_trace(experiment, "a", status="error", latency_ms=1e6)])  # not an answered request
    _add(traces, [_trace(None, None, latency_ms=1.0)])  # outside the experiment

    results = experiments.results("tone")

    for variant in results.variants:
        ordered = sorted(latencies[variant.name])
        for p, found in ((50, variant.latency_p50_ms), (95, variant.latency_p95_ms)):
            assert found == ordered[math.ceil(p * len(ordered) / 100) - 1]
    assert results.variants[1].planned_share == 0.75
    assert results.variants[0].requests == 148


def test_three_variants_share_alpha_and_control_can_be_chosen(
    experiments: ExperimentService, traces: TraceRepository
) -> None:
    experiment = experiments.create("three", "p", [("a", 1, 1.0), ("b", 2, 1.0), ("c", 3, 2.0)])
    results = experiments.results("three")
    assert results.alpha == 0.025
    assert [(c.variant, c.control) for c in results.comparisons[::4]] == [("b", "a"), ("c", "a")]
    assert results.recommendation.text == "no requests recorded for this experiment yet"
    assert "no human feedback" not in " ".join(results.notes)
    _add(traces, [_trace(experiment, "c")])
    chosen = experiments.results("three", control="c")
    assert chosen.control == "c"
    assert {c.variant for c in chosen.comparisons} == {"a", "b"}
    assert "no human feedback yet: only errors and latency can be compared" in chosen.notes
    with pytest.raises(VariantNotFound, match="no variant 'z'"):
        experiments.results("three", control="z")
    data = chosen.as_dict()
    assert data["variants"][2]["eval_scores"] == {}
    assert data["comparisons"][0]["p_value"] is None


def test_keep_the_control_when_it_wins(experiments: ExperimentService, traces: TraceRepository) -> None:
    experiment = experiments.create("tone", "p", [("a", 1, 1.0), ("b", 2, 1.0)])
    _add(traces, (_trace(experiment, "a") for _ in range(300)))
    _add(traces, (_trace(experiment, "b", status="error" if n < 40 else "ok") for n in range(300)))
    results = experiments.results("tone")
    errors = _comparison(results, "b", "error_rate")
    assert (errors.significant, errors.better) == (True, "a")
    assert results.recommendation.winner == "a"
    assert results.recommendation.text.startswith("a beats b on error rate (0.0% vs 13.3%, p<0.0001)")
    assert results.recommendation.text.endswith(": keep a")


# --- the service additions the CLI and the REST API use ----------------------------------------------


def test_parse_variant() -> None:
    assert parse_variant("a=1") == ("a", 1, 1.0)
    assert parse_variant(" b=2:3 ") == ("b", 2, 3.0)
    assert parse_variant("long-name=12:0.5") == ("long-name", 12, 0.5)
    for bad in ("a", "a=", "a=x", "=1", "a=1:", "a=1:2:3"):
        with pytest.raises(InvalidPrompt, match="NAME=VERSION"):
            parse_variant(bad)
    with pytest.raises(InvalidPrompt, match="not a number"):
        parse_variant("a=1:heavy")


def test_conflicts_not_found_and_validation(experiments: ExperimentService) -> None:
    experiments.create("tone", "p", [("a", 1, 1.0), ("b", 2, 1.0)])
    with pytest.raises(ExperimentConflict, match="already runs on p@production"):
        experiments.create("other", "p", [("a", 1, 1.0), ("b", 2, 1.0)])
    with pytest.raises(ExperimentConflict, match="exists already"):
        experiments.create("tone", "p", [("a", 1, 1.0), ("b", 2, 1.0)], label="canary")
    with pytest.raises(VariantNotFound, match="no variant 'z'"):
        experiments.promote("tone", "z")
    with pytest.raises(PromptNotFound):
        experiments.get("bad\x00key")
    experiments.stop("tone")
    with pytest.raises(ExperimentConflict, match="stopped, not running"):
        experiments.promote("tone", "b")
    for variants, message in (
        ([("a", 1, math.inf), ("b", 2, 1.0)], "weight"),
        ([("a", 1, 2e6), ("b", 2, 1.0)], "weight"),
        ([("a", 0, 1.0), ("b", 2, 1.0)], "version"),
        ([("1", 1, 1.0), ("b", 2, 1.0)], "not only digits"),
        ([(f"v{n}", 1, 1.0) for n in range(21)], "at most 20"),
    ):
        with pytest.raises(InvalidPrompt, match=message):
            experiments.create("x", "p", variants, label="x")
    with pytest.raises(InvalidPrompt, match="description"):
        experiments.create("x", "p", [("a", 1, 1.0), ("b", 2, 1.0)], label="x", description="a\x00b")
    with pytest.raises(InvalidPrompt, match="status"):
        experiments.find(status="paused")


def test_find_lists_running_experiments_first(experiments: ExperimentService) -> None:
    first = experiments.create("first", "p", [("a", 1, 1.0), ("b", 2, 1.0)], label="one")
    second = experiments.create("second", "p", [("a", 1, 1.0), ("b", 2, 1.0)], label="two")
    experiments.stop("second")
    assert [e.name for e in experiments.find()] == ["first", "second"]
    third = experiments.create("third", "p", [("a", 1, 1.0), ("b", 3, 1.0)], label="two")
    assert [e.id for e in experiments.find()] == [third.id, first.id, second.id]
    assert [e.name for e in experiments.find(status="stopped")] == ["second"]
    assert experiments.find(prompt="other") == []

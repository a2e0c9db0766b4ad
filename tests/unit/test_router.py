"""The router without HTTP: strategies, retries and back-off, breakers, fallbacks, context windows, streams.

Deployments are served by a scripted provider (it speaks the provider contract: OpenAI-shaped JSON
and SSE bytes, ProviderErrors); each deployment's script says what its next calls answer.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from llmops.gateway.catalog import ModelCatalog, ModelRoute
from llmops.gateway.endpoints import CHAT
from llmops.gateway.router import CallLog, NoHealthyDeployment, Router, backoff_delay
from llmops.model_config import ModelConfig, RetryPolicy
from llmops.providers.base import (
    SSE_DONE,
    Payload,
    Provider,
    ProviderContext,
    ProviderError,
    ProviderResult,
    UpstreamFailure,
    UpstreamRejected,
    sse_event,
)
from llmops.providers.registry import ProviderRegistry
from llmops.settings import Settings
from llmops.tracing.metrics import GatewayMetrics, MetricsRegistry

PAYLOAD: Payload = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}


class ScriptedProvider(Provider):
    """Answers each call with the next step of its deployment's script ("ok" when the script is empty).

    Steps: "ok", "500", "429:<retry-after>", "400", "context", "hang", "crash", "empty-stream".
    """

    name = "scripted"
    supports_tools = True

    def _next(self) -> str:
        scripts: dict[str, list[str]] = self.config.params["scripts"]
        calls: list[str] = self.config.params["calls"]
        calls.append(self.config.id)
        script = scripts.setdefault(self.config.id, [])
        return script.pop(0) if script else "ok"

    async def _fail(self, step: str) -> None:
        if step == "500":
            raise UpstreamFailure("upstream answered 500")
        if step.startswith("429"):
            _, _, wait = step.partition(":")
            raise UpstreamRejected("slow down", status=429, retry_after=float(wait) if wait else None)
        if step == "400":
            raise UpstreamRejected("bad parameter", status=400)
        if step == "context":
            raise UpstreamRejected(
                "This model's maximum context length is 10 tokens",
                status=400,
                body=b'{"error":{"code":"context_length_exceeded"}}',
            )
        if step == "hang":
            await asyncio.sleep(30)
        if step == "crash":
            raise KeyError("a bug")

    async def chat(self, payload: Payload) -> ProviderResult:
        await self._fail(self._next())
        return ProviderResult.from_data({"choices": [{"message": {"content": self.config.id}}]})

    async def stream_chat(self, payload: Payload) -> AsyncIterator[bytes]:
        step = self._next()
        await self._fail(step)
        if step == "empty-stream":
            return
        yield sse_event({"choices": [{"index": 0, "delta": {"content": self.config.id}}]})
        yield SSE_DONE


class Harness:
    def __init__(self, *models: dict[str, Any], seed: int = 7) -> None:
        self.scripts: dict[str, list[str]] = {}
        self.calls: list[str] = []
        self.sleeps: list[float] = []
        registry = ProviderRegistry()
        registry.register("scripted", ScriptedProvider)
        configs = []
        for model in models:
            model = dict(model)
            for deployment in model["deployments"]:
                deployment.setdefault("provider", "scripted")
                deployment["params"] = {"scripts": self.scripts, "calls": self.calls}
            configs.append(ModelConfig.model_validate(model))
        self.catalog = ModelCatalog.build(tuple(configs), registry, ProviderContext(settings=Settings()))
        self.metrics = GatewayMetrics(MetricsRegistry())

        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)

        self.router = Router(self.metrics, rng=random.Random(seed), sleep=sleep)

    def route(self, name: str = "m") -> ModelRoute:
        route = self.catalog.get(name)
        assert route is not None
        return route

    def script(self, deployment: str, *steps: str) -> None:
        self.scripts[deployment] = list(steps)

    async def whole(self, name: str = "m", payload: Payload = PAYLOAD) -> tuple[str, CallLog]:
        calls = CallLog(start=_now())
        answer = await self.router.whole(self.catalog, self.route(name), CHAT, payload, calls)
        return answer.deployment.id, calls


def _now() -> float:
    import time

    return time.perf_counter()


def _model(name: str = "m", *ids: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "deployments": [{"id": deployment} for deployment in ids or ("a", "b")], **extra}


# --- strategies -------------------------------------------------------------------------------


async def test_weighted_random_splits_by_weight() -> None:
    harness = Harness(
        {"name": "m", "deployments": [{"id": "a", "weight": 3}, {"id": "b", "weight": 1}]}, seed=1
    )
    answered = Counter([(await harness.whole())[0] for _ in range(2000)])
    assert 0.70 < answered["a"] / 2000 < 0.80


async def test_least_in_flight_prefers_the_idle_deployment() -> None:
    harness = Harness(_model(routing="least-in-flight"))
    busy = harness.route().deployments[0]
    busy.in_flight = 5
    answered = {(await harness.whole())[0] for _ in range(20)}
    assert answered == {"b"}


async def test_lowest_latency_prefers_the_faster_deployment() -> None:
    harness = Harness(_model(routing="lowest-latency"))
    slow, fast = harness.route().deployments
    slow.latency_seconds, fast.latency_seconds = 0.5, 0.1
    deployment, _ = await harness.whole()
    assert deployment == "b"


async def test_lowest_latency_tries_an_unmeasured_deployment_first() -> None:
    harness = Harness(_model(routing="lowest-latency"))
    harness.route().deployments[0].latency_seconds = 0.05
    assert (await harness.whole())[0] == "b"


async def test_lowest_cost_prefers_the_cheaper_deployment() -> None:
    harness = Harness(
        {
            "name": "m",
            "routing": "lowest-cost",
            "deployments": [
                {"id": "dear", "input_price_per_1m": 5, "output_price_per_1m": 15},
                {"id": "cheap", "input_price_per_1m": 0.1, "output_price_per_1m": 0.4},
            ],
        }
    )
    assert {(await harness.whole())[0] for _ in range(10)} == {"cheap"}


async def test_priority_uses_the_first_until_it_fails() -> None:
    harness = Harness(
        {
            "name": "m",
            "routing": "priority",
            "deployments": [{"id": "backup", "priority": 2}, {"id": "main", "priority": 1}],
        }
    )
    assert {(await harness.whole())[0] for _ in range(10)} == {"main"}
    harness.script("main", "500")
    deployment, calls = await harness.whole()
    assert deployment == "backup"
    assert [(attempt.deployment, attempt.status) for attempt in calls.attempts] == [
        ("main", 502),
        ("backup", 200),
    ]


# --- retries and back-off ------------------------------------------------------------------------


async def test_a_failure_moves_to_another_deployment_at_once() -> None:
    harness = Harness(_model(routing="priority"))
    harness.script("a", "500")
    deployment, calls = await harness.whole()
    assert deployment == "b"
    assert harness.sleeps == []  # no back-off while a healthy deployment is left
    assert [attempt.status for attempt in calls.attempts] == [502, 200]


async def test_when_every_deployment_failed_it_backs_off_then_retries() -> None:
    harness = Harness(
        {
            "name": "m",
            "routing": "priority",
            "deployments": [{"id": "a", "priority": 1}, {"id": "b", "priority": 2}],
            "retry": {"max_attempts": 4, "backoff_base_seconds": 0.2},
        }
    )
    harness.script("a", "500", "500")
    harness.script("b", "500")
    deployment, calls = await harness.whole()
    assert [(attempt.deployment, attempt.status) for attempt in calls.attempts] == [
        ("a", 502),
        ("b", 502),
        ("a", 502),
        ("b", 200),
    ]
    assert deployment == "b"
    [sleep] = harness.sleeps  # once, between the rounds; never before trying b
    assert 0 <= sleep <= 0.2  # full jitter within base * 2^0


async def test_retry_after_is_honoured_up_to_the_cap() -> None:
    harness = Harness(_model("m", "only", retry={"max_attempts": 3, "retry_after_cap_seconds": 2}))
    harness.script("only", "429:1.5", "429:60")
    deployment, calls = await harness.whole()
    assert deployment == "only"
    assert harness.sleeps[0] >= 1.5
    assert harness.sleeps[1] == pytest.approx(2.0)  # capped
    assert [attempt.status for attempt in calls.attempts] == [429, 429, 200]


async def test_max_attempts_then_the_last_error() -> None:
    harness = Harness(_model(retry={"max_attempts": 3}))
    harness.script("a", "500", "500", "500")
    harness.script("b", "500", "500", "500")
    with pytest.raises(ProviderError) as failed:
        await harness.whole()
    assert failed.value.status == 502
    assert len(harness.calls) == 3


@pytest.mark.parametrize("step", ["400"])
async def test_client_errors_are_answered_at_once(step: str) -> None:
    harness = Harness(_model())
    harness.script("a", step)
    harness.script("b", step)
    with pytest.raises(ProviderError) as failed:
        await harness.whole()
    assert failed.value.status == 400
    assert len(harness.calls) == 1
    assert all(not deployment.breaker.consecutive_failures for deployment in harness.route().deployments)


async def test_the_deadline_stops_retrying() -> None:
    harness = Harness(_model("m", "only", retry={"max_attempts": 10, "deadline_seconds": 0.5}))
    harness.script("only", "429:5", "429:5")
    with pytest.raises(ProviderError) as failed:
        await harness.whole()
    assert failed.value.status == 429
    assert len(harness.calls) == 1  # waiting 5 s would pass the deadline


async def test_the_deadline_bounds_a_hanging_call() -> None:
    harness = Harness(_model("m", "only", retry={"max_attempts": 2, "deadline_seconds": 0.2}))
    harness.script("only", "hang", "hang")
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(ProviderError) as failed:
        await harness.whole()
    assert failed.value.status == 504
    assert loop.time() - began < 2


async def test_a_provider_bug_is_a_retryable_502() -> None:
    harness = Harness(_model(routing="priority"))
    harness.script("a", "crash")
    deployment, calls = await harness.whole()
    assert deployment == "b"
    assert calls.attempts[0].status == 502
    assert "KeyError" in (calls.attempts[0].error or "")


def test_backoff_delay_is_full_jitter_capped() -> None:
    policy = RetryPolicy(backoff_base_seconds=1, backoff_max_seconds=4, retry_after_cap_seconds=3)
    rng = random.Random(3)
    delays = [backoff_delay(policy, 5, None, rng) for _ in range(500)]
    assert 0 <= min(delays) < 0.5
    assert 3.5 < max(delays) <= 4
    assert backoff_delay(policy, 0, 2.5, rng) >= 2.5
    assert backoff_delay(policy, 0, 100, rng) == pytest.approx(3)


# --- circuit breakers ------------------------------------------------------------------------------


async def test_an_open_breaker_takes_the_deployment_out() -> None:
    harness = Harness(_model(circuit_breaker={"consecutive_failures": 2, "cooldown_seconds": 60}))
    a, b = harness.route().deployments
    a.breaker.record_failure()
    a.breaker.record_failure()
    assert {(await harness.whole())[0] for _ in range(20)} == {"b"}
    assert "a" not in harness.calls


async def test_every_breaker_open_is_a_503_with_retry_after() -> None:
    harness = Harness(_model(circuit_breaker={"consecutive_failures": 1, "cooldown_seconds": 30}))
    for deployment in harness.route().deployments:
        deployment.breaker.record_failure()
    with pytest.raises(NoHealthyDeployment) as failed:
        await harness.whole()
    assert failed.value.status == 503
    assert failed.value.retry_after is not None
    assert 29 <= failed.value.retry_after <= 30
    assert harness.calls == []


async def test_failures_open_the_breaker_through_the_router() -> None:
    harness = Harness(
        _model("m", "only", retry={"max_attempts": 1}, circuit_breaker={"consecutive_failures": 3})
    )
    harness.script("only", "500", "500", "500")
    for _ in range(3):
        with pytest.raises(ProviderError):
            await harness.whole()
    with pytest.raises(NoHealthyDeployment):
        await harness.whole()
    assert len(harness.calls) == 3


# --- fallbacks and context windows ----------------------------------------------------------------


async def test_fallback_model_when_every_deployment_failed() -> None:
    harness = Harness(
        _model("m", "a", retry={"max_attempts": 1}, fallbacks=["backup"]), _model("backup", "z")
    )
    harness.script("a", "500")
    deployment, calls = await harness.whole()
    assert deployment == "z"
    assert calls.fallback == "backup"
    assert harness.metrics.fallbacks.value(("m", "backup")) == 1


async def test_no_fallback_for_a_client_error() -> None:
    harness = Harness(_model("m", "a", fallbacks=["backup"]), _model("backup", "z"))
    harness.script("a", "400")
    with pytest.raises(ProviderError):
        await harness.whole()
    assert harness.calls == ["a"]


async def test_upstream_context_error_goes_to_the_larger_model() -> None:
    harness = Harness(
        _model("m", "small", context_window_fallbacks=["large"], fallbacks=["other"]),
        _model("large", "big"),
        _model("other", "x"),
    )
    harness.script("small", "context")
    deployment, calls = await harness.whole()
    assert deployment == "big"
    assert calls.fallback == "large"


async def test_declared_window_skips_the_deployment_without_calling_it() -> None:
    harness = Harness(
        {
            "name": "m",
            "deployments": [{"id": "tiny", "context_window": 5}],
            "context_window_fallbacks": ["large"],
        },
        _model("large", "big"),
    )
    deployment, calls = await harness.whole()
    assert deployment == "big"
    assert harness.calls == ["big"]
    assert calls.attempts[0].deployment == "tiny"
    assert calls.attempts[0].status == 400


async def test_declared_window_counts_max_tokens() -> None:
    harness = Harness({"name": "m", "deployments": [{"id": "a", "context_window": 100}]})
    assert (await harness.whole())[0] == "a"
    with pytest.raises(ProviderError) as failed:
        await harness.whole(payload={**PAYLOAD, "max_tokens": 500})
    assert failed.value.code == "context_length_exceeded"
    assert failed.value.status == 400


async def test_the_prompt_goes_to_a_deployment_with_a_window_large_enough() -> None:
    harness = Harness(
        {
            "name": "m",
            "deployments": [{"id": "small", "context_window": 5}, {"id": "large", "context_window": 1000}],
        }
    )
    assert {(await harness.whole())[0] for _ in range(10)} == {"large"}


# --- streams -----------------------------------------------------------------------------------------


async def _stream(harness: Harness) -> tuple[str, bytes, CallLog]:
    calls = CallLog(start=_now())
    opened = await harness.router.stream(harness.catalog, harness.route(), CHAT, PAYLOAD, calls)
    rest = b"".join([chunk async for chunk in opened.rest])
    return opened.deployment.id, opened.first + rest, calls


async def test_a_stream_that_fails_before_its_first_chunk_moves_on() -> None:
    harness = Harness(_model(routing="priority"))
    harness.script("a", "500")
    deployment, body, calls = await _stream(harness)
    assert deployment == "b"
    assert body.endswith(SSE_DONE)
    assert [attempt.status for attempt in calls.attempts] == [502, 200]


async def test_a_stream_that_ends_without_a_chunk_moves_on() -> None:
    harness = Harness(_model(routing="priority"))
    harness.script("a", "empty-stream")
    deployment, _, _ = await _stream(harness)
    assert deployment == "b"


async def test_first_token_timeout_moves_the_stream_on() -> None:
    harness = Harness(_model(routing="priority", timeouts={"first_token": 0.1}))
    harness.script("a", "hang")
    deployment, _, calls = await _stream(harness)
    assert deployment == "b"
    assert calls.attempts[0].status == 504


async def test_an_open_stream_stays_in_flight_until_closed() -> None:
    harness = Harness(_model("m", "only"))
    calls = CallLog(start=_now())
    opened = await harness.router.stream(harness.catalog, harness.route(), CHAT, PAYLOAD, calls)
    assert opened.deployment.in_flight == 1  # the gateway's stream reply lets go at the end
    await opened.rest.aclose()  # type: ignore[attr-defined]


async def test_a_cancelled_call_leaves_no_trace_on_the_deployment() -> None:
    harness = Harness(_model("m", "only"))
    harness.script("only", "hang")
    task = asyncio.ensure_future(harness.whole())
    await asyncio.sleep(0.05)
    deployment = harness.route().deployments[0]
    assert deployment.in_flight == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert deployment.in_flight == 0
    assert deployment.breaker.consecutive_failures == 0


async def test_the_total_timeout_bounds_a_provider_that_keeps_no_time_itself() -> None:
    harness = Harness(_model(routing="priority", timeouts={"total": 0.1}))
    harness.script("a", "hang")
    deployment, calls = await harness.whole()
    assert deployment == "b"
    assert calls.attempts[0].status == 504
    assert calls.attempts[0].ms < 1000


# --- declared capacity (rpm / tpm) ----------------------------------------------------------------


def test_minute_usage_slides_over_the_previous_minute() -> None:
    from llmops.gateway.deployments import MinuteUsage

    now = [600.0]
    usage = MinuteUsage(lambda: now[0])
    usage.add(requests=60, tokens=600)
    assert usage.requests() == 60
    now[0] = 660.0 + 15  # a quarter into the next minute: three quarters of the last one still count
    assert usage.requests() == pytest.approx(45)
    assert usage.tokens() == pytest.approx(450)
    usage.add(requests=10)
    assert usage.requests() == pytest.approx(55)
    now[0] = 900.0  # minutes later: nothing left
    assert usage.requests() == 0
    assert usage.seconds_to_next_minute() == pytest.approx(60)


async def test_a_deployment_at_its_rpm_is_skipped() -> None:
    harness = Harness(
        {
            "name": "m",
            "routing": "priority",
            "deployments": [{"id": "small", "rpm": 3}, {"id": "big", "priority": 1}],
        }
    )
    answered = [(await harness.whole())[0] for _ in range(6)]
    assert answered == ["small"] * 3 + ["big"] * 3


async def test_every_deployment_at_capacity_is_a_429_with_retry_after() -> None:
    harness = Harness({"name": "m", "deployments": [{"id": "only", "rpm": 2}]})
    await harness.whole()
    await harness.whole()
    with pytest.raises(ProviderError) as full:
        await harness.whole()
    assert (full.value.status, full.value.code) == (429, "deployment_capacity_reached")
    assert full.value.retry_after is not None
    assert 1 <= full.value.retry_after <= 60
    assert len(harness.calls) == 2


async def test_tokens_count_against_tpm() -> None:
    harness = Harness({"name": "m", "deployments": [{"id": "only", "tpm": 100}]})
    deployment = harness.route().deployments[0]
    deployment.usage.add(tokens=100)
    with pytest.raises(ProviderError) as full:
        await harness.whole()
    assert full.value.status == 429

"""Routing across deployments, end to end: `llmops serve`, two fake-upstream processes, the openai client.

Each public model maps to deployments on upstream ``a`` and upstream ``b`` (two processes on
127.0.0.1); the upstream that answered is read from the answer (``system_fingerprint: fp_NAME``),
from the upstreams' own request counters, and from the trace's ``deployment``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from conftest import (
    Server,
    UpstreamProcess,
    deployment_status,
    find_trace,
    get_json,
    start_server,
    wait_for,
)
from fake_upstream import ANSWER_PREFIX


def deployment(upstream: UpstreamProcess, ident: str, model: str = "m", **extra: Any) -> dict[str, Any]:
    return {"id": ident, "provider": "openai", "base_url": upstream.base_url, "model": model, **extra}


def routing_models(a: UpstreamProcess, b: UpstreamProcess) -> list[dict[str, Any]]:
    slow = "fault:slow,seconds=1.0"
    return [
        {"name": "weighted", "deployments": [deployment(a, "a", weight=3), deployment(b, "b", weight=1)]},
        {
            "name": "least",
            "routing": "least-in-flight",
            # weights that weighted-random would follow almost always; least-in-flight must not
            "deployments": [deployment(a, "a", slow, weight=100), deployment(b, "b", slow, weight=1)],
        },
        {
            "name": "latency",
            "routing": "lowest-latency",
            "deployments": [deployment(a, "a", "fault:slow,seconds=0.2"), deployment(b, "b")],
        },
        {
            "name": "cost",
            "routing": "lowest-cost",
            "deployments": [
                deployment(a, "a", input_price_per_1m=5.0, output_price_per_1m=5.0),
                deployment(b, "b", input_price_per_1m=1.0, output_price_per_1m=2.0),
            ],
        },
        {
            "name": "priority",
            "routing": "priority",
            "circuit_breaker": {"consecutive_failures": 2, "cooldown_seconds": 1.0},
            "retry": {"backoff_base_seconds": 0.01},
            # listed second but first by priority
            "deployments": [deployment(a, "a", priority=1), deployment(b, "b", priority=0)],
        },
        {
            "name": "capacity",
            "routing": "priority",
            "deployments": [deployment(a, "a", priority=0, rpm=3), deployment(b, "b", priority=1, rpm=2)],
        },
        # the one-deployment form of earlier releases, with the earlier spelling of the total timeout
        {"name": "legacy", "provider": "openai", "base_url": a.base_url, "model": "m"},
        {
            "name": "legacy-hang",
            "provider": "openai",
            "base_url": a.base_url,
            "model": "fault:hang",
            "params": {"timeout_seconds": 0.4},
        },
    ]


@pytest.fixture(scope="module")
def server(
    upstream_pair: tuple[UpstreamProcess, UpstreamProcess], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    running = start_server(
        tmp_path_factory.mktemp("routing"),
        models=routing_models(*upstream_pair),
        keys={"admin": "admin", "app": "inference"},
    )
    yield running
    running.stop()


def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=server.keys["app"], max_retries=0, timeout=30)


def ask(server: Server, model: str, text: str | None = None, **extra: Any) -> tuple[Any, str]:
    """One chat request; the answer and the marker that finds its trace."""
    marker = text or uuid.uuid4().hex
    answer = client(server).chat.completions.create(
        model=model, messages=[{"role": "user", "content": marker}], **extra
    )
    return answer, marker


def served_by(answer: Any) -> str:
    fingerprint = str(answer.system_fingerprint)
    assert fingerprint.startswith("fp_"), fingerprint
    return fingerprint[3:]


async def many(server: Server, model: str, count: int, concurrency: int) -> Counter[str]:
    """``count`` requests, ``concurrency`` at a time; how many each upstream answered."""
    gate = asyncio.Semaphore(concurrency)
    async with openai.AsyncOpenAI(
        base_url=server.base_url, api_key=server.keys["app"], max_retries=0, timeout=30
    ) as aclient:

        async def one(index: int) -> str:
            async with gate:
                answer = await aclient.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": f"request {index}"}]
                )
            assert answer.choices[0].message.content == f"{ANSWER_PREFIX}request {index}"
            return served_by(answer)

        return Counter(await asyncio.gather(*(one(index) for index in range(count))))


async def test_weighted_random_splits_by_weight(
    server: Server, upstreams: tuple[UpstreamProcess, ...]
) -> None:
    a, b = upstreams
    counts = await many(server, "weighted", 400, concurrency=16)
    assert counts["a"] + counts["b"] == 400
    # weights 3:1 → 300 expected on a; ±45 is more than 5 standard deviations (8.7)
    assert 255 <= counts["a"] <= 345, counts
    assert (a.requests(), b.requests()) == (counts["a"], counts["b"])


async def test_least_in_flight_spreads_concurrent_requests(
    server: Server, upstreams: tuple[UpstreamProcess, ...]
) -> None:
    """20 slow requests at once: weights of 100:1 would send nearly all to a; in-flight counts split them."""
    a, b = upstreams
    counts = await many(server, "least", 20, concurrency=20)
    assert 8 <= counts["b"] <= 12, counts
    assert a.stats()["max_in_flight"] <= 12
    assert b.stats()["max_in_flight"] >= 8


def test_lowest_latency_prefers_the_faster_upstream(
    server: Server, upstreams: tuple[UpstreamProcess, ...]
) -> None:
    a, b = upstreams
    answers = [served_by(ask(server, "latency")[0]) for _ in range(12)]
    # each deployment is tried once (never measured counts as fastest), then only the fast one serves
    assert a.requests() == 1, answers
    assert b.requests() == 11, answers
    assert answers[2:] == ["b"] * 10
    status = deployment_status(server, "latency", "a")
    assert status["latency_ms"] >= 200
    assert deployment_status(server, "latency", "b")["latency_ms"] < status["latency_ms"] / 4


def test_lowest_cost_uses_the_cheapest_and_prices_the_trace(
    server: Server, upstreams: tuple[UpstreamProcess, ...]
) -> None:
    a, b = upstreams
    answers = [ask(server, "cost") for _ in range(8)]
    assert {served_by(answer) for answer, _ in answers} == {"b"}
    assert (a.requests(), b.requests()) == (0, 8)
    trace = find_trace(server, answers[-1][1], model="cost")
    assert trace["deployment"] == "b"
    assert trace["upstream_model"] == "m"
    # the fake upstream reports 11 prompt and 7 completion tokens; b costs $1 / $2 per 1M
    assert trace["cost"] == pytest.approx((11 * 1.0 + 7 * 2.0) / 1e6)


def test_priority_uses_the_first_until_it_fails(
    server: Server, upstreams: tuple[UpstreamProcess, ...]
) -> None:
    a, b = upstreams
    assert {served_by(ask(server, "priority")[0]) for _ in range(5)} == {"b"}
    assert a.requests() == 0

    b.control("500")
    answer, marker = ask(server, "priority")
    assert served_by(answer) == "a"
    trace = find_trace(server, marker, model="priority")
    assert trace["deployment"] == "a"
    attempts = trace["attributes"]["attempts"]
    assert [(item["deployment"], item["status"]) for item in attempts] == [("b", 502), ("a", 200)]
    assert attempts[0]["at_ms"] <= attempts[1]["at_ms"]
    assert all(item["ms"] >= 0 for item in attempts)
    assert "500" in attempts[0]["error"]

    assert served_by(ask(server, "priority")[0]) == "a"  # second failure of b: its breaker opens
    assert deployment_status(server, "priority", "b")["times_opened"] == 1
    assert b.requests() == 7  # 5 answered, 2 failed

    b.control(None)
    wait_for(lambda: deployment_status(server, "priority", "b")["state"] == "half-open", timeout=5)
    assert served_by(ask(server, "priority")[0]) == "b"  # the probe succeeds
    assert deployment_status(server, "priority", "b")["state"] == "closed"
    assert {served_by(ask(server, "priority")[0]) for _ in range(3)} == {"b"}


def test_declared_rpm_capacity_moves_traffic_on_then_answers_429(
    server: Server, upstreams: tuple[UpstreamProcess, ...]
) -> None:
    a, b = upstreams
    # the gateway counts per minute of CLOCK_MONOTONIC, which this process shares: stay inside one minute
    if time.monotonic() % 60 > 50:
        time.sleep(61 - time.monotonic() % 60)
    assert [served_by(ask(server, "capacity")[0]) for _ in range(5)] == ["a", "a", "a", "b", "b"]
    with pytest.raises(openai.RateLimitError) as full:
        ask(server, "capacity")
    assert full.value.code == "deployment_capacity_reached"
    assert int(full.value.response.headers["retry-after"]) >= 1
    assert (a.requests(), b.requests()) == (3, 2)


def test_one_deployment_config_keeps_working(server: Server, upstreams: tuple[UpstreamProcess, ...]) -> None:
    a, _ = upstreams
    answer, marker = ask(server, "legacy")
    assert answer.choices[0].message.content == ANSWER_PREFIX + marker
    assert served_by(answer) == "a"
    trace = find_trace(server, marker, model="legacy")
    assert (trace["deployment"], trace["provider"], trace["upstream_model"]) == ("legacy", "openai", "m")
    assert "attempts" not in (trace["attributes"] or {})  # one successful call: nothing more to say

    status = next(item for item in get_json(server, "/api/models/status")["data"] if item["name"] == "legacy")
    assert status["routing"] == "weighted-random"
    assert [(item["id"], item["base_url"], item["upstream_model"]) for item in status["deployments"]] == [
        ("legacy", a.base_url, "m")
    ]
    assert client(server).models.retrieve("legacy").owned_by == "openai"

    began = time.perf_counter()
    with pytest.raises(openai.InternalServerError) as timed_out:  # params.timeout_seconds still applies
        ask(server, "legacy-hang")
    assert timed_out.value.status_code == 504
    assert time.perf_counter() - began < 3

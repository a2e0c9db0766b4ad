"""Circuit breakers per deployment, end to end, and where their state is shown.

Upstream ``a`` is made to fail through its control endpoint; the breaker state is read from the
``llmops_deployment_circuit_state`` gauge in /metrics, from GET /api/models/status and from
``llmops models status --json``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import (
    LLMOPS,
    Server,
    UpstreamProcess,
    deployment_status,
    find_trace,
    server_env,
    start_server,
    wait_for,
)

GAUGE = "llmops_deployment_circuit_state"
FAST_RETRY = {"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05}


def deployment(upstream: UpstreamProcess, ident: str, **extra: Any) -> dict[str, Any]:
    return {"id": ident, "provider": "openai", "base_url": upstream.base_url, "model": "m", **extra}


@pytest.fixture(scope="module")
def server(
    upstream_pair: tuple[UpstreamProcess, UpstreamProcess], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    a, b = upstream_pair
    pair = [deployment(a, "a", priority=0), deployment(b, "b", priority=1)]
    models = [
        {
            "name": "breaker",
            "routing": "priority",
            "retry": FAST_RETRY,
            "circuit_breaker": {"consecutive_failures": 2, "cooldown_seconds": 10, "min_calls": 100},
            "deployments": pair,
        },
        {
            "name": "breaker-probe",
            "routing": "priority",
            "retry": FAST_RETRY,
            "circuit_breaker": {"consecutive_failures": 2, "cooldown_seconds": 1.0, "min_calls": 100},
            "deployments": pair,
        },
        {
            "name": "breaker-rate",
            "routing": "priority",
            "retry": FAST_RETRY,
            "circuit_breaker": {
                "consecutive_failures": 10,
                "error_rate": 0.5,
                "min_calls": 4,
                "window_seconds": 30,
                "cooldown_seconds": 30,
            },
            "deployments": pair,
        },
    ]
    lonely = {"consecutive_failures": 1, "cooldown_seconds": 30}
    models += [
        {"name": "lonely", "circuit_breaker": lonely, "deployments": [deployment(a, "a")]},
        {
            "name": "lonely-fb",
            "circuit_breaker": lonely,
            "fallbacks": ["rescue"],
            "deployments": [deployment(a, "a")],
        },
        {"name": "rescue", "deployments": [deployment(b, "b")]},
    ]
    running = start_server(
        tmp_path_factory.mktemp("breaker"), models=models, keys={"admin": "admin", "app": "inference"}
    )
    yield running
    running.stop()


def ask(server: Server, model: str) -> tuple[str, str]:
    """One chat request: which upstream answered, and the marker that finds its trace."""
    marker = uuid.uuid4().hex
    api = openai.OpenAI(base_url=server.base_url, api_key=server.keys["app"], max_retries=0, timeout=30)
    answer = api.chat.completions.create(model=model, messages=[{"role": "user", "content": marker}])
    return str(answer.system_fingerprint).removeprefix("fp_"), marker


def gauge(server: Server, model: str, deployment_id: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name == GAUGE:
            for sample in family.samples:
                if sample.labels == {"model": model, "deployment": deployment_id}:
                    return float(sample.value)
    raise AssertionError(f"no {GAUGE} sample for {model}/{deployment_id}")


def cli_status(server: Server, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [*LLMOPS, "models", "status", "--url", server.url, "--key", server.keys["admin"], *extra]
    env = server_env(server.home, server.database_url, {"COLUMNS": "200"})
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)


def cli_state(server: Server, model: str, deployment_id: str) -> str:
    done = cli_status(server, "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    entry = next(item for item in data["data"] if item["name"] == model)
    return str(next(item for item in entry["deployments"] if item["id"] == deployment_id)["state"])


def test_breaker_opens_after_consecutive_failures_and_shows_everywhere(
    server: Server, upstreams: tuple[UpstreamProcess, ...]
) -> None:
    a, _ = upstreams
    assert gauge(server, "breaker", "a") == 0
    a.control("500")
    assert [ask(server, "breaker")[0] for _ in range(2)] == ["b", "b"]
    assert a.requests() == 2

    assert gauge(server, "breaker", "a") == 2  # open
    assert gauge(server, "breaker", "b") == 0
    status = deployment_status(server, "breaker", "a")
    assert (status["state"], status["consecutive_failures"], status["times_opened"]) == ("open", 2, 1)
    assert 0 < status["retry_in_seconds"] <= 10
    assert "500" in status["last_error"]
    assert cli_state(server, "breaker", "a") == "open"
    table = cli_status(server)
    assert table.returncode == 0, table.stderr
    assert "open (" in table.stdout  # with the seconds until the probe

    served, marker = ask(server, "breaker")  # while open, a gets nothing
    assert served == "b"
    assert a.requests() == 2
    trace = find_trace(server, marker, model="breaker")
    assert trace["deployment"] == "b"
    assert "attempts" not in (trace["attributes"] or {})


def test_half_open_lets_one_probe_through_then_closes_or_reopens(
    server: Server, upstreams: tuple[UpstreamProcess, ...]
) -> None:
    a, _ = upstreams
    a.control("500")
    for _ in range(2):
        ask(server, "breaker-probe")
    assert deployment_status(server, "breaker-probe", "a")["times_opened"] == 1
    seen = a.requests()

    wait_for(lambda: gauge(server, "breaker-probe", "a") == 1, timeout=5)  # half-open after the cooldown
    assert deployment_status(server, "breaker-probe", "a")["state"] == "half-open"
    assert cli_state(server, "breaker-probe", "a") == "half-open"
    assert ask(server, "breaker-probe")[0] == "b"  # the probe went to a, failed, and b answered
    assert a.requests() == seen + 1
    times_opened = deployment_status(server, "breaker-probe", "a")["times_opened"]
    assert times_opened == 2  # opened again (half-open again after another 1 s cooldown)

    a.control("slow", seconds=1.5)  # a works again, slowly: the probe is still under way when the others come
    wait_for(lambda: deployment_status(server, "breaker-probe", "a")["state"] == "half-open", timeout=5)

    async def four_at_once() -> list[str]:
        async with openai.AsyncOpenAI(
            base_url=server.base_url, api_key=server.keys["app"], max_retries=0, timeout=30
        ) as api:

            async def one() -> str:
                answer = await api.chat.completions.create(
                    model="breaker-probe", messages=[{"role": "user", "content": "probe"}]
                )
                return str(answer.system_fingerprint).removeprefix("fp_")

            return list(await asyncio.gather(*(one() for _ in range(4))))

    assert sorted(asyncio.run(four_at_once())) == ["a", "b", "b", "b"]  # exactly one probe
    assert a.requests() == seen + 2
    status = deployment_status(server, "breaker-probe", "a")
    assert (status["state"], status["consecutive_failures"], status["times_opened"]) == (
        "closed",
        0,
        times_opened,
    )
    assert gauge(server, "breaker-probe", "a") == 0
    a.control(None)
    assert ask(server, "breaker-probe")[0] == "a"


def test_breaker_opens_on_the_error_rate_over_its_window(
    server: Server, upstreams: tuple[UpstreamProcess, ...]
) -> None:
    a, _ = upstreams
    a.control("500", every=2)  # every other request fails: never two in a row
    assert [ask(server, "breaker-rate")[0] for _ in range(4)] == ["a", "b", "a", "b"]
    status = deployment_status(server, "breaker-rate", "a")
    assert (status["state"], status["consecutive_failures"]) == ("open", 1)
    assert status["error_rate"] == pytest.approx(0.5)
    assert ask(server, "breaker-rate")[0] == "b"
    assert a.requests() == 4


def test_every_breaker_open_is_a_503_with_retry_after_or_goes_to_the_fallback(
    server: Server, upstreams: tuple[UpstreamProcess, ...]
) -> None:
    a, b = upstreams
    a.control("500")
    api = openai.OpenAI(base_url=server.base_url, api_key=server.keys["app"], max_retries=0, timeout=30)
    messages: Any = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.InternalServerError) as failed:
        api.chat.completions.create(model="lonely", messages=messages)
    assert failed.value.status_code == 502  # the upstream's failure; its breaker is now open
    with pytest.raises(openai.InternalServerError) as unavailable:
        api.chat.completions.create(model="lonely", messages=messages)
    assert unavailable.value.status_code == 503
    assert unavailable.value.code == "no_healthy_deployment"
    assert 1 <= int(unavailable.value.response.headers["retry-after"]) <= 30
    assert a.requests() == 1  # the open breaker kept the second request away from a

    assert [ask(server, "lonely-fb")[0] for _ in range(2)] == ["b", "b"]
    assert (a.requests(), b.requests()) == (2, 2)  # the second went to the fallback without trying a

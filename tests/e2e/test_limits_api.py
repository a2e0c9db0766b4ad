"""Rate limits and budgets through a real `llmops serve` and the official openai client.

One server keeps its counters in memory; two more share one Redis and one Postgres database, so a
key's limit holds across both replicas as if they were one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import redis

from conftest import Server, start_server, wait_for
from limits_support import delete_prefix, redis_url
from llmops.limits.policy import Limits
from llmops.services import open_store
from llmops.settings import load_settings

MODELS = [{"name": "echo", "provider": "echo", "input_price_per_1m": 1000.0, "output_price_per_1m": 2000.0}]
MESSAGES = [{"role": "user", "content": "hello limits"}]


def create_keys(database_url: str, home: Path, keys: dict[str, dict[str, object]]) -> dict[str, str]:
    store = open_store(load_settings(database_url=database_url, home=home))
    try:
        return {
            name: store.keys.create(
                name,
                "inference",
                limits=Limits(**options.get("limits", {})),  # type: ignore[arg-type]
                models=options.get("models"),  # type: ignore[arg-type]
            ).secret
            for name, options in keys.items()
        }
    finally:
        store.close()


def client(server: Server, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=secret, max_retries=0, timeout=20)


KEYS: dict[str, dict[str, object]] = {
    "rpm3": {"limits": {"rpm": 3, "tpm": 100_000}},
    # at the echo model's prices a request of 8 prompt tokens and max_tokens 20 may cost $0.048
    # (it costs $0.012): the first fits in $0.055, the second not ($0.012 spent + $0.048 > $0.055)
    "budget": {"limits": {"budget_day": 0.055}},
    "narrow": {"models": ["gpt-*"]},
}


@pytest.fixture(scope="module")
def limits_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    folder = tmp_path_factory.mktemp("limits")
    home = folder / "home"
    home.mkdir()
    database_url = f"sqlite:///{home / 'llmops.db'}"
    secrets = create_keys(database_url, home, KEYS)
    running = start_server(
        folder, models=MODELS, database_url=database_url, env={"LLMOPS_SPEND_FLUSH_SECONDS": "0.2"}
    )
    yield running, secrets
    running.stop()


def test_rpm_limit_raises_rate_limit_error_with_openai_headers(
    limits_server: tuple[Server, dict[str, str]],
) -> None:
    server, secrets = limits_server
    api = client(server, secrets["rpm3"])
    raw = api.chat.completions.with_raw_response.create(model="echo", messages=MESSAGES, max_tokens=10)
    assert raw.headers["x-ratelimit-limit-requests"] == "3"
    assert raw.headers["x-ratelimit-remaining-requests"] == "2"
    assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    assert raw.headers["x-ratelimit-limit-tokens"] == "100000"
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) < 100_000
    assert raw.parse().choices[0].message.content == "hello limits"
    for _ in range(2):
        api.chat.completions.create(model="echo", messages=MESSAGES, max_tokens=10)
    with pytest.raises(openai.RateLimitError) as refused:
        api.chat.completions.create(model="echo", messages=MESSAGES, max_tokens=10)
    error = refused.value
    assert error.code == "rate_limit_exceeded"
    assert error.type == "rate_limit_error"
    assert error.body["message"].startswith("rate limit of key 'rpm3': 3 requests per minute; retry in ")  # type: ignore[index]
    retry = int(error.response.headers["retry-after"])
    assert 1 <= retry <= 60
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"


def test_budget_raises_rate_limit_error_insufficient_quota(
    limits_server: tuple[Server, dict[str, str]],
) -> None:
    server, secrets = limits_server
    api = client(server, secrets["budget"])
    api.chat.completions.create(model="echo", messages=MESSAGES, max_tokens=20)
    with pytest.raises(openai.RateLimitError) as refused:
        api.chat.completions.create(model="echo", messages=MESSAGES, max_tokens=20)
    error = refused.value
    assert error.code == "insufficient_quota"
    assert error.type == "insufficient_quota"
    assert error.body["message"].startswith("budget of key 'budget' reached: $0.055 per day (UTC)")  # type: ignore[index]
    assert 1 <= int(error.response.headers["retry-after"]) <= 86_400
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert 'llmops_ratelimit_rejections_total{scope="key",limit="budget_day"} 1' in metrics


def test_a_model_outside_the_key_s_list_is_forbidden(limits_server: tuple[Server, dict[str, str]]) -> None:
    server, secrets = limits_server
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client(server, secrets["narrow"]).chat.completions.create(model="echo", messages=MESSAGES)
    assert refused.value.code == "model_not_allowed"
    assert "may not use the model 'echo'" in refused.value.message


def test_spend_reaches_the_database(limits_server: tuple[Server, dict[str, str]]) -> None:
    server, _ = limits_server
    store = open_store(load_settings(database_url=server.database_url, home=server.home))
    try:
        key_id = next(row.id for row in store.key_repository.list() if row.name == "budget")

        def spent() -> float:
            return store.spend.current("key", [key_id])[key_id]["day"]

        deadline = time.monotonic() + 10
        while spent() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert spent() == pytest.approx(0.012)
    finally:
        store.close()


@pytest.fixture
def replicas(
    tmp_path: Path, postgres_database_url: str
) -> Iterator[tuple[Server, Server, dict[str, str], str]]:
    """Two servers on one Postgres database and one Redis (a key prefix of their own is not settable:
    the keys' ids are unique to this test, and their counters are deleted afterwards)."""
    url = redis_url()
    home = tmp_path / "home"
    home.mkdir()
    secrets = create_keys(
        postgres_database_url, home, {"shared": {"limits": {"rpm": 4, "budget_total": 0.06}}}
    )
    store = open_store(load_settings(database_url=postgres_database_url, home=home))
    key_id = store.key_repository.list()[0].id
    store.close()
    env = {"LLMOPS_REDIS_URL": url}
    servers = []
    try:
        for name in ("a", "b"):
            folder = tmp_path / name
            folder.mkdir()
            servers.append(start_server(folder, models=MODELS, database_url=postgres_database_url, env=env))
        yield servers[0], servers[1], secrets, key_id
    finally:
        for server in servers:
            server.stop()
        delete_prefix(f"llmops:limits:key:{key_id}:")


def test_two_replicas_on_one_redis_behave_as_one(
    replicas: tuple[Server, Server, dict[str, str], str],
) -> None:
    first, second, secrets, key_id = replicas
    a, b = client(first, secrets["shared"]), client(second, secrets["shared"])
    for api in (a, b, a, b):  # rpm 4 in all, whichever replica answers
        api.chat.completions.create(model="echo", messages=MESSAGES, max_tokens=1)
    for api in (a, b):
        with pytest.raises(openai.RateLimitError) as refused:
            api.chat.completions.create(model="echo", messages=MESSAGES, max_tokens=1)
        assert refused.value.code == "rate_limit_exceeded"
    # both replicas settled into one spend counter: 4 x (8 prompt + 1 completion token) = 4 x $0.01
    spent = f"llmops:limits:key:{key_id}:s:total:all"
    with redis.Redis.from_url(redis_url()) as shared:
        assert wait_for(lambda: shared.get(spent) == b"40000000", timeout=5)


def test_an_unreachable_redis_fails_budgets_closed_and_rates_open(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    database_url = f"sqlite:///{home / 'llmops.db'}"
    secrets = create_keys(
        database_url, home, {"rate": {"limits": {"rpm": 1}}, "money": {"limits": {"budget_total": 5.0}}}
    )
    server = start_server(
        tmp_path, models=MODELS, database_url=database_url, env={"LLMOPS_REDIS_URL": "redis://127.0.0.1:1/0"}
    )
    try:
        for _ in range(2):  # rpm 1, uncounted while Redis is away
            client(server, secrets["rate"]).chat.completions.create(model="echo", messages=MESSAGES)
        with pytest.raises(openai.InternalServerError) as refused:
            client(server, secrets["money"]).chat.completions.create(model="echo", messages=MESSAGES)
        assert refused.value.status_code == 503
        assert refused.value.code == "limits_unavailable"
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        assert 'llmops_limiter_error_decisions_total{outcome="admitted"} 2' in metrics
        assert 'llmops_limiter_error_decisions_total{outcome="refused"} 1' in metrics
    finally:
        server.stop()
    assert server.log().count("the redis backend failed") == 1

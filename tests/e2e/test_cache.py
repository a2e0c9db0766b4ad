"""The response cache end to end: a real `llmops serve`, the official `openai` client, real Redis.

Echo models answer with the question and a fresh id, so an answer served from the cache is the
one stored before, id included. The semantic tests need the `local` extra (MiniLM) and are marked
``model``. The two-replica test runs two servers on one Postgres database (the same API keys) and
one Redis database that no other test uses (LLMOPS_TEST_REDIS_URL's server, database
:data:`REPLICAS_REDIS_DB`); it deletes only the cache's keys there.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis
from sqlalchemy import create_engine, text

from conftest import Server, free_port, start_server, wait_for
from llmops.providers.local import packaged_models

REPLICAS_REDIS_DB = 13
CACHE_KEYS = "llmops:cache:*"
MODELS: list[dict[str, Any]] = [
    {
        "name": "echo",
        "provider": "echo",
        "input_price_per_1m": 1.0,
        "output_price_per_1m": 2.0,
        "cache": {"mode": "exact"},
    },
    {"name": "echo-any", "provider": "echo", "cache": {"mode": "exact", "only_deterministic": False}},
    {"name": "echo-semantic", "provider": "echo", "cache": {"mode": "semantic", "similarity": 0.95}},
]
KEYS = {"admin": "admin", "app": "inference", "other": "inference"}
needs_local = pytest.mark.skipif(not packaged_models(), reason="the `local` extra is not installed")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("cache"), models=MODELS, keys=KEYS)
    yield running
    running.stop()


def client(server: Server, key: str = "app") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=server.keys[key], max_retries=0, timeout=30)


def ask(
    server: Server,
    question: str,
    *,
    model: str = "echo",
    key: str = "app",
    directive: str | None = None,
    **extra: Any,
) -> tuple[Any, str | None]:
    """The parsed answer (a ChatCompletion, or the list of chunks of a stream) and the cache header."""
    extra.setdefault("temperature", 0)
    raw = client(server, key).chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": question}],
        extra_headers={"x-llmops-cache": directive} if directive else None,
        **extra,
    )
    parsed = raw.parse()
    answer = list(parsed) if extra.get("stream") else parsed
    return answer, raw.headers.get("x-llmops-cache")


def text_of(answer: Any) -> str:
    if isinstance(answer, list):
        return "".join(chunk.choices[0].delta.content or "" for chunk in answer if chunk.choices)
    return str(answer.choices[0].message.content)


def traces_of(server: Server, marker: str, count: int) -> list[dict[str, Any]]:
    """The ``count`` traces whose request contains ``marker``, oldest first (waits for the writer)."""

    def look() -> list[dict[str, Any]] | None:
        page = httpx.get(f"{server.url}/api/traces", params={"limit": 100}, headers=server.headers())
        found = []
        for item in page.json()["data"]:
            detail = httpx.get(f"{server.url}/api/traces/{item['id']}", headers=server.headers()).json()
            if marker in str(detail["request"]):
                found.append(detail)
        return found[::-1] if len(found) >= count else None

    traces: list[dict[str, Any]] = wait_for(look)
    return traces


def marker() -> str:
    return uuid.uuid4().hex[:10]


def test_miss_then_hit_with_the_header_and_a_trace_at_cost_zero(server: Server) -> None:
    question = f"what is a cache? {marker()}"
    first, header = ask(server, question)
    assert header == "miss"
    second, header = ask(server, question)
    assert header == "hit"
    assert second.id == first.id
    assert second.choices[0].message.content == question
    assert second.usage is not None
    assert first.usage is not None
    assert second.usage.model_dump() == first.usage.model_dump()
    miss, hit = traces_of(server, question, 2)
    assert (miss["cache_status"], hit["cache_status"]) == ("miss", "hit")
    assert miss["cost"] > 0
    assert hit["cost"] == 0
    assert hit["prompt_tokens"] == miss["prompt_tokens"]
    assert hit["status_code"] == 200


def test_no_cache_and_no_store_are_honoured(server: Server) -> None:
    question = f"directives {marker()}"
    assert ask(server, question, directive="no-store")[1] == "miss"
    assert ask(server, question, directive="no-store")[1] == "miss"  # nothing was stored
    stored, header = ask(server, question)
    assert header == "miss"
    fresh, header = ask(server, question, directive="no-cache")
    assert header == "miss"
    assert fresh.id != stored.id  # answered again, not looked up
    again, header = ask(server, question, directive="no-store")
    assert header == "hit"
    assert again.id == fresh.id  # no-cache still stored its answer


def test_only_deterministic_requests_are_cached_unless_the_model_opts_in(server: Server) -> None:
    question = f"random {marker()}"
    for _ in range(2):
        assert ask(server, question, temperature=0.8)[1] is None
    assert [ask(server, question, temperature=0.8, seed=3)[1] for _ in range(2)] == ["miss", "hit"]
    headers = [ask(server, question, model="echo-any", temperature=0.8)[1] for _ in range(2)]
    assert headers == ["miss", "hit"]


def test_a_stream_is_served_from_a_whole_answer_with_usage(server: Server) -> None:
    question = f"whole first {marker()}"
    whole, _ = ask(server, question)
    chunks, header = ask(server, question, stream=True, stream_options={"include_usage": True})
    assert header == "hit"
    assert text_of(chunks) == text_of(whole) == question
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens
    chunks, header = ask(server, question, stream=True)
    assert header == "hit"
    assert all(chunk.usage is None for chunk in chunks)


def test_a_whole_answer_is_served_from_a_stream(server: Server) -> None:
    question = f"stream first {marker()}"
    chunks, header = ask(server, question, stream=True, stream_options={"include_usage": True})
    assert header == "miss"

    def served() -> Any:
        answer, header = ask(server, question, directive="no-store")
        return answer if header == "hit" else None

    whole = wait_for(served)  # a stream is stored once it has ended
    assert text_of(whole) == text_of(chunks) == question
    assert whole.usage.total_tokens == chunks[-1].usage.total_tokens


def test_two_api_keys_never_share_an_entry(server: Server) -> None:
    question = f"tenants {marker()}"
    mine, _ = ask(server, question, key="app")
    theirs, header = ask(server, question, key="other")
    assert header == "miss"
    assert theirs.id != mine.id
    assert ask(server, question, key="other")[1] == "hit"
    assert ask(server, question, key="app")[0].id == mine.id


@pytest.mark.model
@needs_local
def test_semantic_hit_for_a_paraphrase_miss_for_another_question(server: Server) -> None:
    tag = marker()
    original, header = ask(server, f"What is the capital of France? {tag}", model="echo-semantic")
    assert header == "miss"
    paraphrase, header = ask(server, f"What's the capital of France? {tag}", model="echo-semantic")
    assert header == "semantic-hit"
    assert paraphrase.id == original.id
    _, header = ask(server, f"What is the capital of Germany? {tag}", model="echo-semantic")
    assert header == "miss"
    _, header = ask(server, f"What's the capital of France? {tag}", model="echo-semantic", key="other")
    assert header == "miss"  # another tenant
    traces = traces_of(server, tag, 4)
    assert [trace["cache_status"] for trace in traces] == ["miss", "semantic-hit", "miss", "miss"]
    assert traces[1]["cost"] == 0


def test_a_redis_that_is_down_means_misses_not_errors(tmp_path: Path) -> None:
    down = start_server(
        tmp_path,
        models=MODELS[:1],
        keys={"app": "inference"},
        env={"LLMOPS_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"},
    )
    try:
        for _ in range(3):
            answer, header = ask(down, "is anyone there?")
            assert header == "miss"
            assert answer.choices[0].message.content == "is anyone there?"
    finally:
        down.stop()
    assert down.log().count("response cache unavailable") == 1


# -- two replicas, one Redis ---------------------------------------------------------------


def _replicas_redis_url() -> str:
    base = os.environ.get("LLMOPS_TEST_REDIS_URL")
    if not base:
        pytest.skip("LLMOPS_TEST_REDIS_URL is not set (make test sets it)")
    return f"{base.rsplit('/', 1)[0]}/{REPLICAS_REDIS_DB}"


def _delete_cache_keys(url: str) -> None:
    with redis.Redis.from_url(url) as connection:
        keys = list(connection.scan_iter(match=CACHE_KEYS))
        if keys:
            connection.delete(*keys)


@pytest.fixture(scope="module")
def shared_database() -> Iterator[str]:
    """A Postgres database of this module's own, as replicas share one (dropped afterwards)."""
    admin_url = os.environ.get("LLMOPS_TEST_POSTGRES_URL")
    if not admin_url:
        pytest.skip("LLMOPS_TEST_POSTGRES_URL is not set (make test sets it)")
    name = f"llmops_cache_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, shared_database: str
) -> Iterator[tuple[Server, Server]]:
    """Two `llmops serve` processes sharing one database (so the same keys) and one Redis."""
    url = _replicas_redis_url()
    _delete_cache_keys(url)
    env = {"LLMOPS_REDIS_URL": url}
    first = start_server(
        tmp_path_factory.mktemp("replica-a"), models=MODELS, keys=KEYS, env=env, database_url=shared_database
    )
    try:
        second = start_server(
            tmp_path_factory.mktemp("replica-b"), models=MODELS, env=env, database_url=shared_database
        )
        second.keys = dict(first.keys)
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()
        _delete_cache_keys(url)


def test_an_answer_cached_by_one_replica_is_an_exact_hit_on_the_other(
    replicas: tuple[Server, Server],
) -> None:
    first, second = replicas
    question = f"shared {marker()}"
    stored, header = ask(first, question)
    assert header == "miss"

    def on_second() -> Any:
        answer, header = ask(second, question, directive="no-store")
        return answer if header == "hit" else None

    assert wait_for(on_second).id == stored.id
    assert ask(second, question, key="other")[1] == "miss"  # still one tenant's entry


@pytest.mark.model
@needs_local
def test_an_answer_cached_by_one_replica_is_a_semantic_hit_on_the_other(
    replicas: tuple[Server, Server],
) -> None:
    first, second = replicas
    tag = marker()
    assert ask(second, f"warm up {tag}", model="echo-semantic")[1] == "miss"  # MiniLM loaded on both
    stored, header = ask(first, f"What is the capital of France? {tag}", model="echo-semantic")
    assert header == "miss"

    def on_second() -> Any:
        answer, header = ask(
            second, f"What's the capital of France? {tag}", model="echo-semantic", directive="no-store"
        )
        return answer if header == "semantic-hit" else None

    assert wait_for(on_second, timeout=20).id == stored.id
    other, header = ask(second, f"What's the capital of France? {tag}", model="echo-semantic", key="other")
    assert header == "miss"
    assert other.id != stored.id

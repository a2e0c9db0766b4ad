"""Retries, back-off, fallbacks and context-window fallbacks, end to end.

A real `llmops serve`, two fake-upstream processes (``a`` and ``b``) and the official openai client.
Faults come from the upstream model id (``fault:500`` ...) or are set on an upstream process for
its next requests (``POST /_control``); each upstream counts what it received (``GET /_stats``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from conftest import Server, UpstreamProcess, deployment_status, find_trace, start_server, wait_for
from fake_upstream import ANSWER_PREFIX

FAST_RETRY = {"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05}
LONG_PROMPT = " ".join(f"word{index}" for index in range(120))  # ~240 tokens, ~1000 characters


def deployment(upstream: UpstreamProcess, ident: str, model: str = "m", **extra: Any) -> dict[str, Any]:
    return {"id": ident, "provider": "openai", "base_url": upstream.base_url, "model": model, **extra}


def first_then_b(
    name: str, a: UpstreamProcess, b: UpstreamProcess, fault: str, **extra: Any
) -> dict[str, Any]:
    """Model ``name``: deployment ``a`` (answering with ``fault``) tried first, then ``b``."""
    timeouts = extra.pop("a_timeouts", {})
    return {
        "name": name,
        "routing": "priority",
        "retry": {"max_attempts": 5, **FAST_RETRY},
        "deployments": [
            deployment(a, "a", fault, priority=0, timeouts=timeouts),
            deployment(b, "b", priority=1),
        ],
        **extra,
    }


def failover_models(a: UpstreamProcess, b: UpstreamProcess) -> list[dict[str, Any]]:
    models = [
        first_then_b("retry-500", a, b, "fault:500"),
        first_then_b("retry-429", a, b, "fault:429,retry_after=5"),
        first_then_b("retry-reset", a, b, "fault:reset"),
        first_then_b("retry-hang", a, b, "fault:hang", a_timeouts={"total": 0.5}),
        *(first_then_b(f"retry-{status}", a, b, f"fault:{status}") for status in (502, 503, 504)),
        *(first_then_b(f"no-retry-{status}", a, b, f"fault:{status}") for status in (400, 401, 404, 422)),
        {
            "name": "backoff",
            "routing": "priority",
            "retry": {"max_attempts": 4, **FAST_RETRY, "retry_after_cap_seconds": 5},
            "deployments": [deployment(a, "a", priority=0), deployment(b, "b", priority=1)],
        },
        {
            "name": "backoff-cap",
            "retry": {"max_attempts": 3, **FAST_RETRY, "retry_after_cap_seconds": 0.3},
            "deployments": [deployment(a, "a")],
        },
        {
            "name": "max-3",
            "retry": {"max_attempts": 3, **FAST_RETRY},
            "deployments": [deployment(a, "a", "fault:500"), deployment(b, "b", "fault:500")],
        },
        {
            "name": "max-1",
            "retry": {"max_attempts": 1},
            "deployments": [deployment(a, "a", "fault:500"), deployment(b, "b", "fault:500")],
        },
        {
            "name": "deadline",
            "retry": {
                "max_attempts": 20,
                "deadline_seconds": 1.0,
                "backoff_base_seconds": 0.3,
                "backoff_max_seconds": 0.3,
            },
            "circuit_breaker": {"consecutive_failures": 100},
            "deployments": [deployment(a, "a", "fault:500")],
        },
        {
            "name": "deadline-hang",
            "retry": {"deadline_seconds": 0.8},
            "deployments": [deployment(a, "a", "fault:hang")],
        },
        {
            "name": "refused",
            "routing": "priority",
            "retry": FAST_RETRY,
            "circuit_breaker": {"consecutive_failures": 2, "cooldown_seconds": 1.0},
            "deployments": [deployment(a, "a", priority=1), deployment(b, "b", priority=0)],
        },
        # fallbacks: primary fails on every deployment, "dead" too, "backup" answers
        {
            "name": "primary",
            "retry": {"max_attempts": 2, **FAST_RETRY},
            "fallbacks": ["dead", "backup"],
            "context_window_fallbacks": ["large"],
            "deployments": [deployment(a, "a", "fault:500")],
        },
        {"name": "dead", "retry": {"max_attempts": 1}, "deployments": [deployment(a, "a", "fault:503")]},
        {"name": "backup", "deployments": [deployment(b, "b")]},
        {"name": "primary-400", "fallbacks": ["backup"], "deployments": [deployment(a, "a", "fault:400")]},
        # context windows: reported by the upstream, or declared in the config
        {
            "name": "small",
            "fallbacks": ["backup"],
            "context_window_fallbacks": ["large"],
            "deployments": [deployment(a, "a", "fault:context,max_chars=200")],
        },
        {"name": "small-alone", "deployments": [deployment(a, "a", "fault:context,max_chars=200")]},
        {
            "name": "small-declared",
            "fallbacks": ["backup"],
            "context_window_fallbacks": ["large"],
            "deployments": [deployment(a, "a", context_window=60)],
        },
        {"name": "declared-alone", "deployments": [deployment(a, "a", context_window=60)]},
        {
            "name": "mixed-windows",
            "routing": "priority",
            "deployments": [
                deployment(a, "a", priority=0, context_window=60),
                deployment(b, "b", priority=1, context_window=100_000),
            ],
        },
        {"name": "large", "deployments": [deployment(b, "b", context_window=100_000)]},
    ]
    return models


@pytest.fixture(scope="module")
def server(
    upstream_pair: tuple[UpstreamProcess, UpstreamProcess], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    running = start_server(
        tmp_path_factory.mktemp("failover"),
        models=failover_models(*upstream_pair),
        keys={"admin": "admin", "app": "inference"},
    )
    yield running
    running.stop()


def ask(server: Server, model: str, text: str | None = None, **extra: Any) -> tuple[Any, str, float]:
    """One chat request: the answer, the marker that finds its trace, and the seconds it took."""
    marker = uuid.uuid4().hex
    content = f"{marker} {text}" if text else marker
    api = openai.OpenAI(base_url=server.base_url, api_key=server.keys["app"], max_retries=0, timeout=30)
    began = time.perf_counter()
    try:
        answer = api.chat.completions.create(
            model=model, messages=[{"role": "user", "content": content}], **extra
        )
    except openai.APIStatusError as error:
        error.marker = marker  # type: ignore[attr-defined]
        error.seconds = time.perf_counter() - began  # type: ignore[attr-defined]
        raise
    return answer, marker, time.perf_counter() - began


def served_by(answer: Any) -> str:
    return str(answer.system_fingerprint).removeprefix("fp_")


def attempts_of(trace: dict[str, Any]) -> list[tuple[str, str, int]]:
    return [(item["model"], item["deployment"], item["status"]) for item in trace["attributes"]["attempts"]]


@pytest.mark.parametrize(
    ("model", "status"),
    [
        ("retry-500", 502),
        ("retry-502", 502),
        ("retry-503", 502),
        ("retry-504", 504),
        ("retry-429", 429),
        ("retry-reset", 502),
        ("retry-hang", 504),
    ],
)
def test_failure_is_retried_on_the_other_deployment_at_once(
    server: Server, upstreams: tuple[UpstreamProcess, ...], model: str, status: int
) -> None:
    a, b = upstreams
    answer, marker, seconds = ask(server, model)
    assert served_by(answer) == "b"
    assert answer.choices[0].message.content.startswith(ANSWER_PREFIX)
    assert (a.requests(), b.requests()) == (1, 1)
    assert seconds < 4  # the 429's Retry-After of 5 s is not waited for when another deployment is free
    trace = find_trace(server, marker, model=model)
    assert (trace["status_code"], trace["deployment"]) == (200, "b")
    assert attempts_of(trace) == [(model, "a", status), (model, "b", 200)]
    first, second = trace["attributes"]["attempts"]
    assert first["error"]
    assert second["at_ms"] >= first["at_ms"] + first["ms"] - 1


@pytest.mark.parametrize(
    ("status", "error", "client_status"),
    [
        (400, openai.BadRequestError, 400),
        (401, openai.InternalServerError, 502),  # the gateway's upstream key is refused: not the client's
        (404, openai.NotFoundError, 404),
        (422, openai.UnprocessableEntityError, 422),
    ],
)
def test_client_errors_are_answered_at_once(
    server: Server,
    upstreams: tuple[UpstreamProcess, ...],
    status: int,
    error: type[openai.APIStatusError],
    client_status: int,
) -> None:
    a, b = upstreams
    with pytest.raises(error) as raised:
        ask(server, f"no-retry-{status}")
    assert raised.value.status_code == client_status
    assert (a.requests(), b.requests()) == (1, 0)
    assert deployment_status(server, f"no-retry-{status}", "a")["consecutive_failures"] == 0


def test_retry_after_is_honoured_once_every_deployment_failed(
    server: Server, upstreams: tuple[UpstreamProcess, ...]
) -> None:
    """a and b both answer 429 with Retry-After: 1 once: b right after a, then a again after ≥ 1 s."""
    a, b = upstreams
    a.control("429", retry_after=1, count=1)
    b.control("429", retry_after=1, count=1)
    answer, marker, seconds = ask(server, "backoff")
    assert served_by(answer) == "a"
    assert 1.0 <= seconds < 4.0
    trace = find_trace(server, marker, model="backoff")
    assert attempts_of(trace) == [("backoff", "a", 429), ("backoff", "b", 429), ("backoff", "a", 200)]
    first, second, third = trace["attributes"]["attempts"]
    assert second["at_ms"] < 900  # b at once, not after a's Retry-After
    assert third["at_ms"] >= 1000


def test_retry_after_is_capped(server: Server, upstreams: tuple[UpstreamProcess, ...]) -> None:
    a, _ = upstreams
    a.control("429", retry_after=30, count=1)
    answer, marker, seconds = ask(server, "backoff-cap")
    assert served_by(answer) == "a"
    assert 0.3 <= seconds < 5.0  # retry_after_cap_seconds: 0.3, not the 30 s asked for
    trace = find_trace(server, marker, model="backoff-cap")
    assert attempts_of(trace) == [("backoff-cap", "a", 429), ("backoff-cap", "a", 200)]
    assert trace["attributes"]["attempts"][1]["at_ms"] >= 300


def test_exhausted_429_reaches_the_client_with_retry_after(
    server: Server, upstreams: tuple[UpstreamProcess, ...]
) -> None:
    a, b = upstreams
    a.control("429", retry_after=0.2)
    b.control("429", retry_after=0.2)
    with pytest.raises(openai.RateLimitError) as limited:
        ask(server, "backoff")
    assert a.requests() + b.requests() == 4  # max_attempts
    assert limited.value.response.headers.get("retry-after") == "1"


@pytest.mark.parametrize(("model", "calls"), [("max-3", 3), ("max-1", 1)])
def test_max_attempts(server: Server, upstreams: tuple[UpstreamProcess, ...], model: str, calls: int) -> None:
    a, b = upstreams
    with pytest.raises(openai.InternalServerError) as failed:
        ask(server, model)
    assert failed.value.status_code == 502
    assert a.requests() + b.requests() == calls
    trace = find_trace(server, failed.value.marker, model=model)  # type: ignore[attr-defined]
    assert trace["status_code"] == 502
    assert len(trace["attributes"]["attempts"]) == calls
    assert {item["status"] for item in trace["attributes"]["attempts"]} == {502}


def test_deadline_stops_the_retries(server: Server, upstreams: tuple[UpstreamProcess, ...]) -> None:
    a, _ = upstreams
    with pytest.raises(openai.InternalServerError) as failed:
        ask(server, "deadline")
    seconds = failed.value.seconds  # type: ignore[attr-defined]
    assert 0.6 <= seconds < 2.5, seconds  # deadline_seconds: 1.0 (back-offs of at most 0.3 s)
    assert 2 <= a.requests() < 20  # max_attempts (20) was not what stopped it


def test_deadline_bounds_a_hanging_call(server: Server, upstreams: tuple[UpstreamProcess, ...]) -> None:
    a, _ = upstreams
    with pytest.raises(openai.InternalServerError) as failed:
        ask(server, "deadline-hang")
    assert failed.value.status_code == 504
    assert 0.7 <= failed.value.seconds < 3.0  # type: ignore[attr-defined]
    assert a.requests() == 1


def test_refused_connection_fails_over_and_the_restarted_upstream_serves_again(
    server: Server, upstreams: tuple[UpstreamProcess, ...]
) -> None:
    a, b = upstreams
    b.stop()  # b is first by priority; its port now refuses connections
    for _ in range(3):
        answer, marker, _seconds = ask(server, "refused")
        assert served_by(answer) == "a"
    trace = find_trace(server, marker, model="refused")
    assert trace["deployment"] == "a"
    status = deployment_status(server, "refused", "b")  # opened after 2 refused connections
    assert status["times_opened"] >= 1
    assert status["state"] in ("open", "half-open")  # half-open once the 1 s cooldown is over

    b.start()  # same port
    wait_for(lambda: deployment_status(server, "refused", "b")["state"] == "half-open", timeout=5)
    answer, _marker, _seconds = ask(server, "refused")
    assert served_by(answer) == "b"
    assert deployment_status(server, "refused", "b")["state"] == "closed"
    assert b.requests() == 1


def test_fallbacks_are_tried_in_order(server: Server, upstreams: tuple[UpstreamProcess, ...]) -> None:
    a, b = upstreams
    answer, marker, _ = ask(server, "primary")
    assert served_by(answer) == "b"
    assert (a.requests(), b.requests()) == (3, 1)
    trace = find_trace(server, marker, model="primary")
    assert trace["requested_model"] == "primary"
    assert trace["attributes"]["fallback"] == "backup"
    assert trace["deployment"] == "b"
    assert attempts_of(trace) == [
        ("primary", "a", 502),
        ("primary", "a", 502),
        ("dead", "a", 502),
        ("backup", "b", 200),
    ]


def test_client_error_is_not_handed_to_a_fallback(
    server: Server, upstreams: tuple[UpstreamProcess, ...]
) -> None:
    a, b = upstreams
    with pytest.raises(openai.BadRequestError):
        ask(server, "primary-400")
    assert (a.requests(), b.requests()) == (1, 0)


def test_context_window_fallback_when_the_upstream_says_too_long(
    server: Server, upstreams: tuple[UpstreamProcess, ...]
) -> None:
    a, b = upstreams
    short, _, _ = ask(server, "small")
    assert served_by(short) == "a"
    answer, marker, _ = ask(server, "small", LONG_PROMPT)
    assert served_by(answer) == "b"
    assert (a.requests(), b.requests()) == (2, 1)
    trace = find_trace(server, marker, model="small")
    assert trace["attributes"]["fallback"] == "large"  # not the plain fallback, "backup"
    assert attempts_of(trace) == [("small", "a", 400), ("large", "b", 200)]

    with pytest.raises(openai.BadRequestError) as refused:  # no larger model: the client is told
        ask(server, "small-alone", LONG_PROMPT)
    assert refused.value.code == "context_length_exceeded"
    assert a.requests() == 3


def test_context_window_fallback_when_the_prompt_exceeds_the_declared_window(
    server: Server, upstreams: tuple[UpstreamProcess, ...]
) -> None:
    a, b = upstreams
    short, _, _ = ask(server, "small-declared")
    assert served_by(short) == "a"
    answer, marker, _ = ask(server, "small-declared", LONG_PROMPT)
    assert served_by(answer) == "b"
    assert (a.requests(), b.requests()) == (1, 1)  # the long prompt was never sent to a
    trace = find_trace(server, marker, model="small-declared")
    assert trace["attributes"]["fallback"] == "large"
    assert attempts_of(trace) == [("small-declared", "a", 400), ("large", "b", 200)]

    answer, _, _ = ask(server, "small-declared", max_tokens=100)  # short prompt, but room for 100 more
    assert served_by(answer) == "b"

    with pytest.raises(openai.BadRequestError) as refused:
        ask(server, "declared-alone", LONG_PROMPT)
    assert refused.value.code == "context_length_exceeded"
    assert a.requests() == 1

    answer, _, _ = ask(server, "mixed-windows", LONG_PROMPT)  # a's window is too small, b's is not
    assert served_by(answer) == "b"
    assert a.requests() == 1

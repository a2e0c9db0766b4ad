"""Connect, first-token and total timeouts per deployment, and the model-level override, end to end.

The slow deployment is tried first (priority routing); once its limit passes, deployment ``b``
answers. A deployment whose limit were not applied would keep the request for 10-20 s or more.
Connecting hangs on ``blackhole_url`` (a listener whose accept queue is full).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from conftest import Server, UpstreamProcess, find_trace, start_server
from fake_upstream import ANSWER_PREFIX

HANG = "fault:hang"
SLOW_FIRST_TOKEN = "fault:slow_first_token,seconds=3"


def slow_first(name: str, base_url: str, model: str, b: UpstreamProcess, **extra: Any) -> dict[str, Any]:
    """Model ``name``: deployment ``slow`` (``base_url``, upstream ``model``) first, then ``b``."""
    slow_timeouts = extra.pop("slow_timeouts")
    return {
        "name": name,
        "routing": "priority",
        "retry": {"backoff_base_seconds": 0.01},
        "deployments": [
            {
                "id": "slow",
                "provider": "openai",
                "base_url": base_url,
                "model": model,
                "priority": 0,
                "timeouts": slow_timeouts,
            },
            {"id": "b", "provider": "openai", "base_url": b.base_url, "model": "m", "priority": 1},
        ],
        **extra,
    }


@pytest.fixture(scope="module")
def server(
    upstream_pair: tuple[UpstreamProcess, UpstreamProcess],
    blackhole_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    a, b = upstream_pair
    models = [
        slow_first("t-connect", blackhole_url, "m", b, slow_timeouts={"connect": 0.3, "total": 10}),
        slow_first("t-total", a.base_url, HANG, b, slow_timeouts={"total": 0.4}),
        slow_first("t-first-token", a.base_url, SLOW_FIRST_TOKEN, b, slow_timeouts={"first_token": 0.3}),
        slow_first(
            "t-model-connect", blackhole_url, "m", b, slow_timeouts={"connect": 20}, timeouts={"connect": 0.3}
        ),
        slow_first(
            "t-model-total", a.base_url, HANG, b, slow_timeouts={"total": 20}, timeouts={"total": 0.4}
        ),
        slow_first(
            "t-model-first-token",
            a.base_url,
            SLOW_FIRST_TOKEN,
            b,
            slow_timeouts={"first_token": 20},
            timeouts={"first_token": 0.3},
        ),
        slow_first(
            "t-first-token-whole", a.base_url, "fault:slow,seconds=0.6", b, slow_timeouts={"first_token": 0.2}
        ),
    ]
    running = start_server(
        tmp_path_factory.mktemp("timeouts"), models=models, keys={"admin": "admin", "app": "inference"}
    )
    yield running
    running.stop()


def ask(server: Server, model: str, *, stream: bool) -> tuple[str, str, str, float]:
    """One chat request: which upstream answered, the text, the trace marker, the seconds it took."""
    marker = uuid.uuid4().hex
    api = openai.OpenAI(base_url=server.base_url, api_key=server.keys["app"], max_retries=0, timeout=60)
    messages: Any = [{"role": "user", "content": marker}]
    began = time.perf_counter()
    if stream:
        chunks = list(api.chat.completions.create(model=model, messages=messages, stream=True))
        text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
        fingerprint = str(chunks[0].system_fingerprint)
    else:
        answer = api.chat.completions.create(model=model, messages=messages)
        text, fingerprint = answer.choices[0].message.content or "", str(answer.system_fingerprint)
    return fingerprint.removeprefix("fp_"), text, marker, time.perf_counter() - began


@pytest.mark.parametrize(
    ("model", "stream", "limit"),
    [
        ("t-connect", False, 0.3),
        ("t-total", False, 0.4),
        ("t-first-token", True, 0.3),
        ("t-model-connect", False, 0.3),
        ("t-model-total", False, 0.4),
        ("t-model-first-token", True, 0.3),
    ],
)
def test_timeout_moves_the_request_to_the_next_deployment(
    server: Server, upstreams: tuple[UpstreamProcess, ...], model: str, stream: bool, limit: float
) -> None:
    _, b = upstreams
    served, text, marker, seconds = ask(server, model, stream=stream)
    assert served == "b"
    assert text == ANSWER_PREFIX + marker
    assert limit <= seconds < limit + 2.5, seconds
    trace = find_trace(server, marker, model=model)
    attempts = trace["attributes"]["attempts"]
    assert [(item["deployment"], item["status"]) for item in attempts] == [("slow", 504), ("b", 200)]
    assert limit * 1000 - 20 <= attempts[0]["ms"] < limit * 1000 + 1500
    assert b.requests() == 1


def test_first_token_limit_applies_to_streams_only(
    server: Server, upstreams: tuple[UpstreamProcess, ...]
) -> None:
    a, b = upstreams
    served, _, _, seconds = ask(server, "t-first-token-whole", stream=False)
    assert served == "a"  # a whole answer after 0.6 s is not held to a first-token limit of 0.2 s
    assert seconds >= 0.6
    served, _, _, _ = ask(server, "t-first-token-whole", stream=True)
    assert served == "b"
    assert (a.requests(), b.requests()) == (2, 1)

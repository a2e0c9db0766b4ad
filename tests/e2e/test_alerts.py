"""Alerts on a real server: errors produced through /v1 (a fake upstream answering 500) make a rule fire
to a webhook receiver on 127.0.0.1, healthy traffic resolves it; /api/alerts over REST; two replicas
on one database send one firing message, and the second takes over when the first stops."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from alert_support import WebhookReceiver
from conftest import Server, call_api, expect, gateway_models, get_json, start_server, wait_for
from fake_upstream import FakeUpstream

RULE = {
    "name": "gateway-errors",
    "statistic": "error_rate",
    "comparison": ">",
    "threshold": 0.5,
    "window": "1m",
    "min_requests": 3,
    "severity": "critical",
    "channels": ["hook"],
    "labels": {"team": "search"},
}


def _config(receiver: WebhookReceiver, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "alert_eval_seconds": 1,
        "alert_channels": {"hook": {"type": "webhook", "url": receiver.url}},
        "alerts": rules,
    }


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def alert_server(
    upstream: FakeUpstream, receiver: WebhookReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    running = start_server(
        tmp_path_factory.mktemp("alerts"),
        models=gateway_models(upstream),
        keys={"admin": "admin", "viewer": "viewer"},
        config=_config(receiver, [RULE]),
    )
    yield running
    running.stop()


def _chat(server: Server, model: str) -> int:
    response = httpx.post(
        f"{server.base_url}/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        headers=server.headers(),
        timeout=30,
    )
    return response.status_code


def _until_notified(
    server: Server, receiver: WebhookReceiver, model: str, status: str, timeout: float
) -> float:
    """Send requests to ``model`` until a ``status`` notification arrives; the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        _chat(server, model)
        if receiver.bodies(status):
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(
        f"no {status} notification within {timeout}s: {receiver.bodies()}\n{server.log()[-3000:]}"
    )


def test_errors_through_the_gateway_fire_then_healthy_traffic_resolves(
    alert_server: Server, receiver: WebhookReceiver
) -> None:
    assert _chat(alert_server, "gpt-500") >= 500
    _until_notified(alert_server, receiver, "gpt-500", "firing", timeout=30)
    [firing] = receiver.bodies("firing")
    assert (firing["rule"], firing["severity"], firing["labels"]) == (
        "gateway-errors",
        "critical",
        {"team": "search"},
    )
    assert firing["value"] > 0.5
    state = wait_for(
        lambda: (get_json(alert_server, "/api/alerts/gateway-errors")["status"] or {}).get("notified_at")
    )
    assert state is not None

    _until_notified(alert_server, receiver, "echo", "resolved", timeout=60)
    assert len(receiver.bodies("firing")) == 1  # one firing message for the episode
    [resolved] = receiver.bodies("resolved")
    assert resolved["value"] <= 0.5
    events = get_json(alert_server, "/api/alert-events?rule=gateway-errors")["data"]
    assert [(event["kind"], event["sent"]) for event in events] == [("resolved", True), ("firing", True)]
    assert events[1]["deliveries"][0] == {**events[1]["deliveries"][0], "channel": "hook", "ok": True}
    listing = get_json(alert_server, "/api/alerts")
    assert listing["evaluator"]["holder"]
    assert listing["data"][0]["status"]["state"] == "resolved"
    assert "drift_score" in listing["statistics"]
    assert {"webhook", "slack", "smtp", "log"} <= set(listing["channel_types"])


def test_rules_silences_and_tests_over_rest(alert_server: Server, receiver: WebhookReceiver) -> None:
    stored = {**RULE, "name": "slow", "statistic": "p95_latency_ms", "threshold": 60000, "for": "1m"}
    created = expect(call_api(alert_server, "POST", "/api/alerts", json=stored), 201)
    assert (created["source"], created["revision"], created["for"]) == ("api", 1, "1m")
    expect(call_api(alert_server, "POST", "/api/alerts", json=stored), 409)
    bad = expect(
        call_api(alert_server, "POST", "/api/alerts", json={**stored, "name": "x", "channels": ["pager"]}),
        400,
    )
    assert "no channel named 'pager'" in bad["error"]["message"]
    expect(call_api(alert_server, "DELETE", "/api/alerts/gateway-errors"), 409)  # llmops.yaml's
    expect(call_api(alert_server, "PUT", "/api/alerts/slow", json={**stored, "threshold": 50000}))
    viewer = call_api(alert_server, "POST", "/api/alerts", key="viewer", json={**stored, "name": "mine"})
    assert viewer.status_code == 403
    assert get_json(alert_server, "/api/alerts/slow", key="viewer")["threshold"] == 50000

    tried = expect(call_api(alert_server, "POST", "/api/alerts/slow/test", json={"send": True}))
    assert tried["holds"] is not True  # p95 of the echo answers is far below 50 s (None: no data yet)
    assert [delivery["ok"] for delivery in tried["deliveries"]] == [True]
    [test_message] = receiver.bodies("test")
    assert test_message["rule"] == "slow"
    measured = expect(call_api(alert_server, "POST", "/api/alerts/gateway-errors/test"))
    assert measured["value"] is not None
    assert measured["deliveries"] == []

    silence = expect(
        call_api(alert_server, "POST", "/api/alert-silences", json={"rule": "slow*", "duration": "1h"}), 201
    )
    assert silence["active"]
    assert [item["id"] for item in get_json(alert_server, "/api/alert-silences")["data"]] == [silence["id"]]
    ended = expect(call_api(alert_server, "POST", f"/api/alert-silences/{silence['id']}/end"))
    assert not ended["active"]
    assert get_json(alert_server, "/api/alert-silences")["data"] == []
    kept = get_json(alert_server, "/api/alert-silences?include_ended=true")["data"]
    assert [item["id"] for item in kept] == [silence["id"]]
    assert call_api(alert_server, "DELETE", f"/api/alert-silences/{silence['id']}").status_code == 204
    expect(call_api(alert_server, "GET", f"/api/alert-silences/{silence['id']}"), 404)
    expect(call_api(alert_server, "POST", "/api/alert-silences", json={"rule": "*"}), 400)
    assert call_api(alert_server, "DELETE", "/api/alerts/slow").status_code == 204

    secret_hook = {"type": "webhook", "url": f"{receiver.url}/T0/SECRET", "headers": {"X-Token": "SECRET"}}
    masked = expect(
        call_api(
            alert_server, "POST", "/api/alerts", json={**stored, "name": "hook", "channels": [secret_hook]}
        ),
        201,
    )
    assert masked["channels"][0]["url"] == receiver.url.rsplit("/", 1)[0] + "/***"
    assert "SECRET" not in call_api(alert_server, "GET", "/api/alerts").text
    assert "SECRET" not in call_api(alert_server, "GET", "/api/alerts/hook").text
    sent = expect(call_api(alert_server, "POST", "/api/alerts/hook/test", json={"send": True}))
    assert [delivery["ok"] for delivery in sent["deliveries"]] == [True]  # sent to the stored URL
    assert [item.path for item in receiver.received if item.body["rule"] == "hook"] == ["/hook/T0/SECRET"]
    assert call_api(alert_server, "DELETE", "/api/alerts/hook").status_code == 204
    expect(call_api(alert_server, "GET", "/api/alerts/slow"), 404)
    audit = get_json(alert_server, "/api/audit?target_type=alert")["data"]
    actions = [event["action"] for event in audit if event["action"].startswith("alert.")]
    assert actions[:5] == ["alert.delete", "alert.create", "alert.delete", "alert.update", "alert.create"]
    assert "SECRET" not in call_api(alert_server, "GET", "/api/audit?target_type=alert").text


def test_two_replicas_send_one_firing_message_and_the_second_takes_over(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    import os

    database_url = (
        request.getfixturevalue("postgres_database_url")
        if os.environ.get("LLMOPS_TEST_POSTGRES_URL")
        else f"sqlite:///{tmp_path / 'shared.db'}"
    )
    always = {
        "name": "any-traffic",
        "statistic": "requests",
        "comparison": ">=",
        "threshold": 0,
        "channels": ["hook"],
    }
    with WebhookReceiver() as hook:
        servers: list[Server] = []
        try:
            for name in ("a", "b"):
                (tmp_path / name).mkdir()
                servers.append(
                    start_server(
                        tmp_path / name,
                        models=[{"name": "echo", "provider": "echo"}],
                        keys={"admin": "admin"} if name == "a" else None,  # one database: one key for both
                        database_url=database_url,
                        config=_config(hook, [always]),
                    )
                )
            hook.wait_for(1, "firing", timeout=30)
            time.sleep(3)  # both replicas run several rounds
            assert len(hook.bodies("firing")) == 1
            first_holder = get_json(servers[0], "/api/alerts")["evaluator"]["holder"]
            leader = next(server for server in servers if str(server.process.pid) in first_holder)
            other = servers[1] if leader is servers[0] else servers[0]
            leader.stop()
            wait_for(
                lambda: str(other.process.pid) in _holder(other, servers[0].keys["admin"]),
                timeout=15,
                interval=0.2,
            )
            time.sleep(2)  # the new leader carries on from the stored state
            assert len(hook.bodies("firing")) == 1
        finally:
            for server in servers:
                server.stop()


def _holder(server: Server, key: str) -> str:
    answer = httpx.get(f"{server.url}/api/alerts", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    evaluator = answer.json().get("evaluator") or {}
    return str(evaluator.get("holder") or "")

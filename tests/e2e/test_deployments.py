"""Managed deployments end to end: `llmops serve`, fake upstreams as processes, registry versions, openai.

Version 1 of ``support-model`` answers from upstream ``stable``, version 2 from upstream ``canary`` (two
processes on 127.0.0.1). The server checks canaries every 0.5 s and polls for changes every 0.5 s.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from conftest import Server, UpstreamProcess, call_api, expect, get_json, start_server, wait_for
from llmops.services import open_store
from llmops.settings import load_settings

FAST = {
    "LLMOPS_DEPLOYMENT_CHECK_SECONDS": "0.5",
    "LLMOPS_DEPLOYMENT_POLL_SECONDS": "0.5",
    "LLMOPS_TRACE_FLUSH_SECONDS": "0.1",
}
GUARDS = {"max_error_rate": 0.05, "min_requests": 10}


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, UpstreamProcess]]:
    folder = tmp_path_factory.mktemp("deploy-upstreams")
    started = {name: UpstreamProcess(name, folder / f"{name}.log").start() for name in ("stable", "canary")}
    try:
        yield started
    finally:
        for upstream in started.values():
            upstream.stop()


def register_versions(database_url: str, home: Path, upstreams: dict[str, UpstreamProcess]) -> None:
    """support-model@1 on the stable upstream, support-model@2 on the canary one (once per database)."""
    store = open_store(load_settings(database_url=database_url, home=home))
    try:
        for name in ("stable", "canary"):
            serving = {"provider": "openai", "base_url": upstreams[name].base_url, "model": name}
            store.registry.register("support-model", serving=serving, description=f"answers from {name}")
    finally:
        store.close()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, upstreams: dict[str, UpstreamProcess]
) -> Iterator[Server]:
    running = start_server(
        tmp_path_factory.mktemp("deploy-server"),
        models=[{"name": "echo", "provider": "echo"}],
        keys={"admin": "admin"},
        env=FAST,
    )
    register_versions(running.database_url, running.home, upstreams)
    yield running
    running.stop()


@pytest.fixture
def fresh(upstreams: dict[str, UpstreamProcess]) -> dict[str, UpstreamProcess]:
    for upstream in upstreams.values():
        upstream.reset()
    return upstreams


def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=server.keys["admin"], max_retries=0, timeout=10)


def ask(chat: openai.OpenAI, model: str) -> str:
    answer = chat.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    return str(answer.system_fingerprint)


def deploy(server: Server, body: dict[str, Any]) -> dict[str, Any]:
    return dict(expect(call_api(server, "POST", "/api/deployments", json=body), 201))


def status(server: Server, name: str) -> dict[str, Any]:
    return dict(get_json(server, f"/api/deployments/{name}"))


def metric(server: Server, name: str, **labels: str) -> float | None:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    found = re.search(rf"^{name}\{{{re.escape(wanted)}\}} (\S+)$", text, re.MULTILINE)
    return None if found is None else float(found.group(1))


def until_status(server: Server, name: str, wanted: str, drive: Callable[[], None], timeout: float) -> None:
    """Send requests (``drive``) until the deployment's status is ``wanted``."""

    def reached() -> bool:
        drive()
        return bool(status(server, name)["status"] == wanted)

    wait_for(reached, timeout=timeout, interval=0)


def test_a_failing_canary_is_rolled_back_by_itself(server: Server, fresh: dict[str, UpstreamProcess]) -> None:
    chat = client(server)
    deploy(server, {"ref": "support-model@1", "as": "support"})
    wait_for(
        lambda: metric(
            server, "llmops_deployment_traffic_percent", model="support", deployment="support-model@1"
        )
    )
    assert ask(chat, "support") == "fp_stable"
    fresh["canary"].control("500", every=2)  # half the canary's answers fail
    body = {"ref": "support-model@2", "as": "support", "canary": 30, "window_seconds": 3, "guards": GUARDS}
    created = deploy(server, body)
    assert (created["canary"], created["canary_percent"], created["status"]) == (
        "support-model@2",
        30,
        "canary",
    )
    answered: list[str] = []
    # every request succeeds: a failed canary call is retried on the stable version at once
    until_status(
        server, "support", "rolled_back", lambda: answered.extend(ask(chat, "support") for _ in range(10)), 20
    )
    assert {"fp_stable", "fp_canary"} <= set(answered)
    event = get_json(server, "/api/deployments/support/history")["data"][0]
    assert (event["action"], event["actor"]) == ("auto-rollback", "controller")
    assert "max_error_rate: canary error rate" in event["reason"]
    # the split is on the traces and in /metrics
    traces = get_json(server, "/api/traces?model=support&limit=200")["data"]
    assert {"support-model@1", "support-model@2"} <= {trace["deployment"] for trace in traces}
    calls = httpx.get(f"{server.url}/metrics", timeout=10).text
    failed = (
        r'^llmops_upstream_calls_total\{model="support",deployment="support-model@2",status="5\d\d"\} \d+'
    )
    assert re.search(failed, calls, re.MULTILINE), calls
    assert metric(server, "llmops_deployment_transitions_total", model="support", action="auto-rollback") == 1
    # then all traffic is on the stable version
    wait_for(
        lambda: (
            metric(server, "llmops_deployment_traffic_percent", model="support", deployment="support-model@1")
            == 100
        )
    )
    fresh["canary"].reset()
    assert {ask(chat, "support") for _ in range(30)} == {"fp_stable"}
    assert fresh["canary"].requests() == 0


def test_a_healthy_canary_is_promoted_step_by_step(server: Server, fresh: dict[str, UpstreamProcess]) -> None:
    chat = client(server)
    deploy(server, {"ref": "support-model@1", "as": "helpdesk"})
    body = {
        "ref": "support-model@2",
        "as": "helpdesk",
        "canary": 30,
        "steps": [30, 60, 100],
        "step_seconds": 1,
        "window_seconds": 3,
        "guards": {"min_requests": 5},
    }
    deploy(server, body)
    until_status(server, "helpdesk", "stable", lambda: [ask(chat, "helpdesk") for _ in range(10)], 30)
    events = get_json(server, "/api/deployments/helpdesk/history")["data"]
    assert [event["action"] for event in events] == ["auto-promote", "auto-promote", "deploy", "deploy"]
    assert [event["to"]["canary_percent"] for event in events[:2]] == [0, 60]
    assert status(server, "helpdesk")["stable"] == "support-model@2"
    wait_for(lambda: {ask(chat, "helpdesk") for _ in range(5)} == {"fp_canary"})
    # the version is addressable by its ref too
    assert ask(chat, "support-model@1") == "fp_stable"


def test_rest_mistakes_and_manual_changes(server: Server) -> None:
    expect(call_api(server, "POST", "/api/deployments", json={"ref": "support-model@9", "as": "x"}), 404)
    expect(
        call_api(
            server, "POST", "/api/deployments", json={"ref": "support-model@2", "as": "x", "canary": 10}
        ),
        409,
    )
    expect(
        call_api(server, "POST", "/api/deployments", json={"ref": "support-model@2", "as": "bad name"}), 400
    )
    expect(call_api(server, "POST", "/api/deployments/nothing/promote"), 404)
    deploy(server, {"ref": "support-model@1", "as": "manual"})
    deploy(server, {"ref": "support-model@2", "as": "manual", "canary": 10, "manual": True})
    expect(call_api(server, "POST", "/api/deployments", json={"ref": "support-model@2", "as": "manual"}), 409)
    promoted = expect(
        call_api(server, "POST", "/api/deployments/manual/promote", json={"reason": "looks good"})
    )
    assert promoted["canary_percent"] == 50
    rolled = expect(call_api(server, "POST", "/api/deployments/manual/rollback"))
    assert (rolled["status"], rolled["stable"]) == ("rolled_back", "support-model@1")
    events = get_json(server, "/api/deployments/manual/history")["data"]
    assert [(event["action"], event["actor"]) for event in events[:2]] == [
        ("rollback", "api:admin"),
        ("promote", "api:admin"),
    ]
    assert events[1]["reason"] == "looks good"
    gone = expect(call_api(server, "DELETE", "/api/deployments/manual"))
    assert gone["status"] == "undeployed"
    expect(call_api(server, "DELETE", "/api/deployments/manual"), 409)
    names = [item["name"] for item in get_json(server, "/api/deployments")["data"]]
    assert "manual" not in names
    expect(call_api(server, "GET", "/api/deployments", key="nobody"), 401)


def test_a_deploy_through_one_replica_is_served_by_another(
    tmp_path: Path, postgres_database_url: str, fresh: dict[str, UpstreamProcess]
) -> None:
    replicas: list[Server] = []
    try:
        for name, keys in (("a", {"admin": "admin"}), ("b", None)):
            folder = tmp_path / name
            folder.mkdir()
            replicas.append(
                start_server(
                    folder,
                    models=[{"name": "echo", "provider": "echo"}],
                    keys=keys,
                    env=FAST,
                    database_url=postgres_database_url,
                )
            )
        a, b = replicas
        b.keys = dict(a.keys)  # one database: A's key works on B
        register_versions(postgres_database_url, a.home, fresh)
        chat = client(b)
        with pytest.raises(openai.NotFoundError):
            ask(chat, "support")
        deploy(a, {"ref": "support-model@2", "as": "support"})

        def served() -> bool:
            try:
                return ask(chat, "support") == "fp_canary"
            except openai.NotFoundError:
                return False

        wait_for(served, timeout=10, interval=0.1)
    finally:
        for replica in replicas:
            replica.stop()

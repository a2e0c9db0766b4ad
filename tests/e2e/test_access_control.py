"""Roles on every /api route, keys and teams over REST, rotation, expiry and failed-login limits."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import openai
import pytest

from conftest import Server, call_api, expect, start_server
from llmops.server.permissions import ROUTE_PERMISSIONS
from llmops.teams.roles import ROLES, permits

ROLE_KEYS = {role: role for role in ROLES}
_PARAM = re.compile(r"\{[^}]+\}")


@pytest.fixture(scope="module")
def rbac_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(
        tmp_path_factory.mktemp("rbac"),
        models=[{"name": "echo", "provider": "echo"}, {"name": "gpt-mini", "provider": "echo"}],
        keys=ROLE_KEYS,
    )
    yield running
    running.stop()


def _operations(server: Server) -> list[tuple[str, str, str]]:
    schema = httpx.get(f"{server.url}/api/openapi.json", timeout=10).json()
    found = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/api/"):
                found.append((method.upper(), path, operation["operationId"]))
    return found


def test_every_route_is_in_the_permission_table(rbac_server: Server) -> None:
    missing = [op for _, _, op in _operations(rbac_server) if op not in ROUTE_PERMISSIONS]
    assert not missing, f"routes without a permission in server/permissions.py: {missing}"


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_exactly_what_the_table_grants(rbac_server: Server, role: str) -> None:
    """Walk the schema with a key of ``role``: 403 where the table denies; no 401, 403 or 5xx elsewhere."""
    wrong = []
    with httpx.Client(base_url=rbac_server.url, headers=rbac_server.headers(role), timeout=30) as client:
        for method, path, operation in _operations(rbac_server):
            if operation == "revoke_key":
                url = "/api/keys/no-such-key"
            else:
                url = _PARAM.sub("no-such-thing", path)
            body = {} if method in {"POST", "PUT", "PATCH"} else None
            response = client.request(method, url, json=body)
            allowed = permits(role, ROUTE_PERMISSIONS[operation])
            if allowed and (response.status_code in {401, 403} or response.status_code >= 500):
                wrong.append((method, path, response.status_code, "should be allowed"))
            if not allowed and response.status_code != 403:
                wrong.append((method, path, response.status_code, "should be 403"))
            if response.status_code == 403:
                assert response.json()["error"]["code"] == "permission_denied"
    assert not wrong, wrong


def test_inference_keys_keep_the_gateway_and_nothing_else(rbac_server: Server) -> None:
    client = openai.OpenAI(base_url=rbac_server.base_url, api_key=rbac_server.keys["inference"])
    answer = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content
    denied = call_api(rbac_server, "GET", "/api/traces", key="inference")
    assert denied.status_code == 403
    assert "does not grant 'traces:read'" in denied.json()["error"]["message"]


def test_teams_and_keys_over_rest(rbac_server: Server) -> None:
    team = expect(
        call_api(
            rbac_server,
            "POST",
            "/api/teams",
            json={"name": "search", "models": ["gpt-*"], "rpm": 600, "budget": {"month": 50}},
        ),
        201,
    )
    assert team["models"] == ["gpt-*"]
    assert team["rpm"] == 600
    assert team["budget"] == {"month": 50.0}
    assert expect(call_api(rbac_server, "POST", "/api/teams", json={"name": "search"}), 409)
    member = expect(
        call_api(
            rbac_server,
            "POST",
            "/api/teams/search/members",
            json={"user": "ana@example.com", "role": "editor"},
        ),
        201,
    )
    assert member["role"] == "editor"
    expires = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    created = expect(
        call_api(
            rbac_server,
            "POST",
            "/api/keys",
            json={
                "name": "search-app",
                "team": "search",
                "models": ["gpt-*"],
                "rpm": 60,
                "budget": {"day": 10},
                "expires_at": expires,
                "metadata": {"owner": "ana"},
            },
        ),
        201,
    )
    assert created["secret"].startswith("sk-llmops-")
    assert created["team"] == "search"
    assert created["role"] == "inference"
    assert created["budget"] == {"day": 10.0}
    listed = expect(call_api(rbac_server, "GET", "/api/keys", params={"team": "search"}))
    assert [key["name"] for key in listed] == ["search-app"]
    assert "secret" not in listed[0]
    assert set(listed[0]["spend"]) >= set()
    shown = expect(call_api(rbac_server, "GET", "/api/teams/search"))
    assert shown["key_count"] == 1
    assert shown["members"][0]["user"] == "ana@example.com"
    patched = expect(call_api(rbac_server, "PATCH", "/api/keys/search-app", json={"rpm": 120}))
    assert patched["rpm"] == 120
    assert patched["budget"] == {"day": 10.0}
    patched = expect(call_api(rbac_server, "PATCH", "/api/keys/search-app", json={"budget": None}))
    assert patched["budget"] == {}
    assert patched["rpm"] == 120
    bad = call_api(rbac_server, "POST", "/api/keys", json={"name": "x", "team": "nope"})
    assert bad.status_code == 404
    past = call_api(
        rbac_server, "POST", "/api/keys", json={"name": "y", "expires_at": "2001-01-01T00:00:00Z"}
    )
    assert past.status_code == 400
    assert "future" in past.json()["error"]["message"]
    assert (
        call_api(rbac_server, "POST", "/api/keys", json={"name": "z", "budget": {"week": 1}}).status_code
        == 400
    )


def _models_status(server: Server, secret: str) -> int:
    return httpx.get(
        f"{server.base_url}/models", headers={"Authorization": f"Bearer {secret}"}, timeout=10
    ).status_code


def test_rotation_keeps_the_old_secret_for_the_grace_period(rbac_server: Server) -> None:
    created = expect(call_api(rbac_server, "POST", "/api/keys", json={"name": "rotating"}), 201)
    old = created["secret"]
    assert _models_status(rbac_server, old) == 200
    rotated = expect(call_api(rbac_server, "POST", "/api/keys/rotating/rotate", json={"grace_seconds": 3600}))
    new = rotated["secret"]
    assert new != old
    assert rotated["id"] == created["id"]
    assert rotated["previous_valid_until"]
    assert _models_status(rbac_server, new) == 200
    assert _models_status(rbac_server, old) == 200  # still in its grace period
    again = expect(call_api(rbac_server, "POST", "/api/keys/rotating/rotate", json={"grace_seconds": 0}))
    assert _models_status(rbac_server, again["secret"]) == 200
    assert _models_status(rbac_server, new) == 401  # no grace: the server refuses it from the next load
    assert _models_status(rbac_server, old) == 401


def test_an_expired_key_is_refused(rbac_server: Server) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    created = expect(
        call_api(rbac_server, "POST", "/api/keys", json={"name": "short-lived", "expires_at": soon}), 201
    )
    assert _models_status(rbac_server, created["secret"]) == 200
    time.sleep(2.5)
    response = httpx.get(
        f"{rbac_server.base_url}/models", headers={"Authorization": f"Bearer {created['secret']}"}, timeout=10
    )
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


def test_failed_logins_are_counted_and_limited_per_address(tmp_path: Path) -> None:
    server = start_server(
        tmp_path,
        models=[{"name": "echo", "provider": "echo"}],
        keys={"admin": "admin"},
        env={"LLMOPS_AUTH_FAILURES_PER_MINUTE": "5"},
    )
    try:
        bad = {"Authorization": "Bearer sk-llmops-not-a-key-at-all-000000"}
        statuses = [
            httpx.get(f"{server.base_url}/models", headers=bad, timeout=10).status_code for _ in range(5)
        ]
        assert statuses == [401] * 5
        blocked = httpx.get(f"{server.base_url}/models", headers=bad, timeout=10)
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) >= 1
        assert blocked.json()["error"]["code"] == "too_many_failed_logins"
        # the address is held back even with a right key until its failures age out
        assert httpx.get(f"{server.base_url}/models", headers=server.headers(), timeout=10).status_code == 429
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        assert 'llmops_auth_failures_total{reason="invalid"} 5' in metrics
        assert 'llmops_auth_failures_total{reason="blocked"} 2' in metrics
    finally:
        server.stop()


def test_a_key_cannot_rotate_itself_and_a_grace_must_be_a_number(rbac_server: Server) -> None:
    own = call_api(rbac_server, "POST", "/api/keys/admin/rotate", json={"grace_seconds": 0})
    assert own.status_code == 409
    assert "another admin key" in own.json()["error"]["message"]
    assert _models_status(rbac_server, rbac_server.keys["admin"]) == 200
    expect(call_api(rbac_server, "POST", "/api/keys", json={"name": "strict"}), 201)
    typed = call_api(rbac_server, "POST", "/api/keys/strict/rotate", json={"grace_seconds": False})
    assert typed.status_code == 400
    budget = call_api(
        rbac_server, "POST", "/api/teams", json={"name": "t-strict", "budget": {"total": False}}
    )
    assert budget.status_code == 400

"""Credentials and the audit log over real HTTP and through the CLI, on one running server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conftest import Server, server_env, start_server

SECRET = "sk-upstream-e2e-0123456789abcdef"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(
        tmp_path_factory.mktemp("credentials"),
        models=[{"name": "echo", "provider": "echo"}],
        keys={"admin": "admin", "app": "inference"},
    )
    yield running
    running.stop()


def call(server: Server, method: str, path: str, key: str = "admin", **kwargs: Any) -> httpx.Response:
    return httpx.request(method, server.url + path, headers=server.headers(key), timeout=10, **kwargs)


def cli(
    server: Server, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "llmops", *args],
        env={**server_env(server.home, server.database_url), "COLUMNS": "200"},  # tables on one line
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def key_id(server: Server, name: str) -> str:
    keys = call(server, "GET", "/api/keys").json()
    return str(next(key["id"] for key in keys if key["name"] == name))


def test_credentials_are_set_listed_and_deleted_without_their_value(server: Server) -> None:
    answer = call(server, "PUT", "/api/credentials/openai", json={"secret": SECRET})
    assert answer.status_code == 200, answer.text
    stored = answer.json()
    assert set(stored) == {"name", "key_id", "created_at", "updated_at"}
    assert stored["name"] == "openai"
    assert len(stored["key_id"]) == 16
    listed = call(server, "GET", "/api/credentials")
    assert listed.json() == {"data": [stored]}
    assert SECRET not in listed.text

    again = call(server, "PUT", "/api/credentials/openai", json={"secret": SECRET + "-2"}).json()
    assert again["created_at"] == stored["created_at"]
    assert call(server, "DELETE", "/api/credentials/openai").json()["name"] == "openai"
    missing = call(server, "DELETE", "/api/credentials/openai")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "credential_not_found"
    assert call(server, "GET", "/api/credentials").json() == {"data": []}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/credentials/bad%20name", {"secret": SECRET}),
        ("/api/credentials/-x", {"secret": SECRET}),
        ("/api/credentials/ok", {"secret": "two\nlines"}),
        ("/api/credentials/ok", {"secret": ""}),
        ("/api/credentials/ok", {"secret": "a\x00"}),
        ("/api/credentials/ok", {"secret": " \x1c "}),
        ("/api/credentials/ok", {"secret": SECRET, "extra": 1}),
        ("/api/credentials/ok", {}),
    ],
)
def test_bad_credentials_are_refused_with_400(server: Server, path: str, body: dict[str, Any]) -> None:
    answer = call(server, "PUT", path, json=body)
    assert answer.status_code == 400, answer.text
    assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
    assert SECRET not in answer.text


def test_credentials_and_the_audit_log_need_an_admin_key(server: Server) -> None:
    for method, path in [
        ("GET", "/api/credentials"),
        ("PUT", "/api/credentials/x"),
        ("DELETE", "/api/credentials/x"),
        ("GET", "/api/audit"),
        ("GET", "/api/audit/" + "0" * 32),
    ]:
        assert call(server, method, path, key="nobody", json={"secret": SECRET}).status_code == 401
        assert call(server, method, path, key="app", json={"secret": SECRET}).status_code == 403


def test_changes_are_in_the_audit_log_with_who_and_from_where(server: Server) -> None:
    call(server, "PUT", "/api/credentials/audited", json={"secret": SECRET})
    call(server, "DELETE", "/api/credentials/audited")
    page = call(server, "GET", "/api/audit", params={"target_type": "credential", "target": "audited"}).json()
    assert [event["action"] for event in page["data"]] == ["delete_credential", "set_credential"]
    deleted, created = page["data"]
    assert (created["actor"], created["actor_key_id"]) == ("admin", key_id(server, "admin"))
    assert (created["source"], created["ip"]) == ("api", "127.0.0.1")
    assert created["before"] is None
    assert created["after"] == {"name": "audited", "key_id": created["after"]["key_id"]}
    assert deleted["before"]["name"] == "audited"
    detail = call(server, "GET", f"/api/audit/{created['id']}")
    assert detail.json() == created
    assert call(server, "GET", "/api/audit/" + "f" * 32).status_code == 404

    by_actor = call(server, "GET", "/api/audit", params={"actor": "admin", "action": "set_credential"})
    assert created["id"] in [event["id"] for event in by_actor.json()["data"]]
    later = call(server, "GET", "/api/audit", params={"since": "2999-01-01"}).json()
    assert later == {"data": [], "next_cursor": None}
    earlier = call(server, "GET", "/api/audit", params={"until": "2000-01-01T00:00:00Z"}).json()
    assert earlier["data"] == []
    assert call(server, "GET", "/api/audit", params={"cursor": "nope"}).status_code == 400
    assert call(server, "GET", "/api/audit", params={"since": "yesterday"}).status_code == 400


def test_the_audit_log_pages_newest_first(server: Server) -> None:
    for number in range(3):
        call(server, "PUT", f"/api/credentials/paged-{number}", json={"secret": SECRET})
    everything = call(server, "GET", "/api/audit", params={"action": "set_credential", "limit": 500}).json()
    expected = [event["id"] for event in everything["data"]]
    assert expected == sorted(expected, reverse=True)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"action": "set_credential", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = call(server, "GET", "/api/audit", params=params).json()
        seen += [event["id"] for event in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "POST"])
def test_audit_events_cannot_be_changed_through_the_api(server: Server, method: str) -> None:
    call(server, "PUT", "/api/credentials/immutable", json={"secret": SECRET})
    event = call(server, "GET", "/api/audit", params={"target": "immutable", "limit": 1}).json()["data"][0]
    for path in ("/api/audit", f"/api/audit/{event['id']}"):
        answer = call(server, method, path, json={"actor": "someone else"})
        assert answer.status_code == 405, (method, path)
        assert answer.headers["allow"] == "GET"
    assert call(server, "GET", f"/api/audit/{event['id']}").json() == event


def test_the_cli_manages_credentials_and_reads_the_audit_log(server: Server) -> None:
    done = cli(server, "credentials", "set", "from-cli", "--stdin", stdin=SECRET + "\n")
    assert "stored credential from-cli (master key " in done.stdout
    assert SECRET not in done.stdout + done.stderr
    listed = call(server, "GET", "/api/credentials").json()["data"]
    assert "from-cli" in [item["name"] for item in listed]  # the server sees what the CLI stored

    table = cli(server, "credentials", "list").stdout
    assert "from-cli" in table
    assert SECRET not in table
    as_json = json.loads(cli(server, "credentials", "list", "--json").stdout)
    assert {"name", "key_id", "created_at", "updated_at"} == set(as_json[0])

    lines = cli(server, "audit", "list", "--json", "--target", "from-cli").stdout.splitlines()
    [event] = [json.loads(line) for line in lines]
    assert (event["action"], event["source"]) == ("set_credential", "cli")
    assert event["actor"].startswith("cli:")
    shown = cli(server, "audit", "show", event["id"]).stdout
    assert "set_credential on credential from-cli" in shown
    assert json.loads(cli(server, "audit", "show", event["id"], "--json").stdout)["id"] == event["id"]
    assert "set_credential" in cli(server, "audit", "list", "--action", "set_credential", "-n", "1").stdout

    refused = cli(server, "credentials", "set", "nope", check=False)  # no terminal, no --stdin
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: no terminal")
    missing = cli(server, "audit", "show", "0" * 32, check=False)
    assert (missing.returncode, missing.stderr.strip()) == (1, f"error: audit event {'0' * 32!r} not found")
    cli(server, "credentials", "delete", "from-cli")
    assert "delete_credential" in cli(server, "audit", "list", "--target", "from-cli").stdout


def test_the_cli_reads_a_secret_from_the_environment(server: Server) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llmops", "credentials", "set", "env-cred", "--from-env", "MY_UPSTREAM"],
        env={**server_env(server.home, server.database_url), "MY_UPSTREAM": SECRET},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert "env-cred" in [item["name"] for item in call(server, "GET", "/api/credentials").json()["data"]]


def test_every_change_through_the_api_is_audited(server: Server) -> None:
    """Routes without an event of their own are recorded by the audit middleware."""
    answer = call(
        server,
        "POST",
        "/api/prompts",
        json={"name": "audited-prompt", "kind": "text", "template": "Hi {{ who }}", "variables": {"who": {}}},
    )
    assert answer.status_code == 201, answer.text
    events = call(server, "GET", "/api/audit", params={"action": "create_prompt_version"}).json()["data"]
    assert len(events) == 1
    assert events[0]["target_type"] == "prompts"
    assert events[0]["actor"] == "admin"
    assert events[0]["after"]["name"] == "audited-prompt"
    reads = call(server, "GET", "/api/audit", params={"action": "list_prompts"}).json()["data"]
    assert reads == []

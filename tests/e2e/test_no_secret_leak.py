"""No key secret and no stored credential shows anywhere but where it is created.

A real server, its log captured at debug level: keys are created and rotated (their secrets may
appear only in the answer that creates them), credentials are stored through the API, the CLI and
before the server starts, a model uses one against a fake OpenAI upstream (which must receive it),
the master key is rotated and the models reloaded. Then the server log, every listing and detail
of the admin API, /v1/models, /metrics and the CLI's outputs are searched for every secret.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from conftest import Server, server_env, start_server, wait_for
from fake_upstream import FakeUpstream
from llmops.audit import cli_actor
from llmops.services import open_store
from llmops.settings import load_settings


def _secret(label: str) -> str:
    return f"sk-{label}-{secrets.token_urlsafe(24)}"


class Leaks:
    """Everything the test has seen, by where it came from."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.seen: dict[str, str] = {}

    def api(self, method: str, path: str, key: str = "admin", **kwargs: Any) -> httpx.Response:
        answer = httpx.request(
            method, self.server.url + path, headers=self.server.headers(key), timeout=30, **kwargs
        )
        self.seen[f"{method} {path} {kwargs.get('params') or ''}"] = answer.text + str(answer.headers)
        return answer

    def cli(self, *args: str, stdin: str | None = None, keep: bool = True) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "llmops", *args],
            env=server_env(self.server.home, self.server.database_url),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        if keep:
            self.seen["llmops " + " ".join(args)] = result.stdout + result.stderr
        return result.stdout

    def containing(self, secret: str) -> list[str]:
        return [where for where, text in self.seen.items() if secret in text]


def test_no_secret_appears_in_logs_answers_or_cli_output(tmp_path: Path, upstream: FakeUpstream) -> None:
    stored_early, stored_by_api, stored_by_cli = _secret("early"), _secret("api"), _secret("cli")
    home = tmp_path / "home"
    home.mkdir()
    database_url = f"sqlite:///{home / 'llmops.db'}"
    store = open_store(load_settings(database_url=database_url, home=home))
    try:
        store.credentials.set("upstream", stored_early, cli_actor())
    finally:
        store.close()
    master_before = (home / "master.key").read_text().strip()

    def model(name: str, upstream_id: str) -> dict[str, Any]:
        return {
            "name": name,
            "provider": "openai",
            "base_url": upstream.base_url,
            "model": upstream_id,
            "api_key_credential": "upstream",
        }

    server = start_server(
        tmp_path,
        models=[model("gpt-cred", "fake-model"), model("gpt-cred-401", "fake-401")],
        keys={"admin": "admin"},
        env={"LLMOPS_LOG_LEVEL": "debug", "LLMOPS_TRACE_FLUSH_SECONDS": "0.05"},
        database_url=database_url,
    )
    leaks = Leaks(server)
    try:
        created = leaks.api("POST", "/api/keys", json={"name": "app", "role": "inference"})
        assert created.status_code == 201, created.text
        app_secret = created.json()["secret"]
        rotated = leaks.api("POST", "/api/keys/app/rotate", json={"grace_seconds": 600})
        assert rotated.status_code == 200, rotated.text
        app_rotated = rotated.json()["secret"]
        cli_key = leaks.cli("keys", "create", "--name", "from-cli", keep=False).strip().splitlines()[0]
        allowed = {app_secret: ["POST /api/keys "], app_rotated: ["POST /api/keys/app/rotate "]}

        assert leaks.api("PUT", "/api/credentials/second", json={"secret": stored_by_api}).status_code == 200
        leaks.cli("credentials", "set", "third", "--stdin", stdin=stored_by_cli)

        def chat(model_name: str, key_secret: str) -> httpx.Response:
            return httpx.post(
                f"{server.base_url}/chat/completions",
                headers={"Authorization": f"Bearer {key_secret}"},
                json={"model": model_name, "messages": [{"role": "user", "content": "hello"}]},
                timeout=30,
            )

        upstream.control(reset_stats=True)
        assert chat("gpt-cred", app_rotated).status_code == 200
        assert chat("gpt-cred", app_secret).status_code == 200  # the previous secret, in its grace period
        assert chat("gpt-cred-401", app_rotated).status_code == 502
        wrong_key = "sk-llmops-" + secrets.token_urlsafe(32)
        assert chat("gpt-cred", wrong_key).status_code == 401
        assert [headers.get("Authorization") for headers in upstream.headers] == [
            f"Bearer {stored_early}"
        ] * 3

        leaks.cli("credentials", "rotate-key")
        master_after = (home / "master.key").read_text().strip()
        assert master_after != master_before
        reloaded = leaks.api("POST", "/api/admin/reload")
        assert reloaded.status_code == 200, reloaded.text  # the new key file opens the credential
        assert chat("gpt-cred", app_rotated).status_code == 200
        assert upstream.headers[-1].get("Authorization") == f"Bearer {stored_early}"

        wait_for(lambda: len(leaks.api("GET", "/api/traces", params={"limit": 500}).json()["data"]) >= 4)
        _read_everything(leaks)
    finally:
        server.stop()
    leaks.seen["server log"] = server.log()
    assert "config reloaded" in leaks.seen["server log"]  # the log was captured

    forbidden = {
        "stored credential (before start)": stored_early,
        "stored credential (API)": stored_by_api,
        "stored credential (CLI)": stored_by_cli,
        "key secret (API)": app_secret,
        "rotated key secret": app_rotated,
        "key secret (CLI)": cli_key,
        "admin key secret": server.keys["admin"],
        "refused key": wrong_key,
        "master key (before rotation)": master_before,
        "master key (after rotation)": master_after,
    }
    found = {
        label: where
        for label, secret in forbidden.items()
        if (where := [place for place in leaks.containing(secret) if place not in allowed.get(secret, [])])
    }
    assert found == {}
    for secret, places in allowed.items():
        assert leaks.containing(secret) == places  # shown once, where it was created


def _read_everything(leaks: Leaks) -> None:
    """Every listing and detail a user can read, through the API and the CLI."""
    for path in ("/api/keys", "/api/credentials", "/api/models/status", "/api/teams", "/api/openapi.json"):
        leaks.api("GET", path)
    leaks.api("GET", "/api/keys", params={"include_revoked": "true"})
    for path in ("/v1/models", "/metrics", "/readyz"):
        leaks.api("GET", path)
    traces = leaks.api("GET", "/api/traces", params={"limit": 500}).json()["data"]
    for trace in traces:
        leaks.api("GET", f"/api/traces/{trace['id']}")
    events = leaks.api("GET", "/api/audit", params={"limit": 500}).json()["data"]
    assert {"set_credential", "rotate_master_key"} <= {e["action"] for e in events}
    assert "key" in {e["target_type"] for e in events}  # the keys' creation and rotation, by their service
    for event in events:
        leaks.api("GET", f"/api/audit/{event['id']}")
    leaks.cli("keys", "list", "--all")
    leaks.cli("credentials", "list")
    leaks.cli("credentials", "list", "--json")
    leaks.cli("audit", "list", "--json", "-n", "500")
    leaks.cli("audit", "list", "-n", "500")
    for event in events[:4]:  # `audit list --json` above printed every field of every event
        leaks.cli("audit", "show", event["id"])
    leaks.cli("traces", "list", "--json", "-n", "500")
    for trace in traces[:2]:
        leaks.cli("traces", "show", trace["id"])
    leaks.cli("--config", str(leaks.server.home.parent / "llmops.yaml"), "models", "list")

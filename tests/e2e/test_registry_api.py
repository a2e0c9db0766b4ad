"""/api/registry through a real `llmops serve` (SQLite and Postgres): registration of a serving config and
of server-side files, reading by number, alias and latest, alias moves with history, deletion rules,
lineage, and the errors (400, 401, 403, 404, 409)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Server, call_api, expect, start_server

UPSTREAM = {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "tuned"}


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[Server]:
    running = start_server(
        tmp_path,
        models=[{"name": "echo", "provider": "echo"}],
        keys={"admin": "admin", "app": "inference"},
        database_url=database_url,
    )
    yield running
    running.stop()


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    return dict(expect(response, status)["error"])


def test_registry_api(server: Server, tmp_path: Path) -> None:
    """One server per backend (starting one costs more than the checks): the life of a model, then errors."""
    _register_read_alias_and_delete(server, tmp_path)
    _errors(server, tmp_path)


def _register_read_alias_and_delete(server: Server, tmp_path: Path) -> None:
    gguf = tmp_path / "tuned-q4_k_m.gguf"
    gguf.write_bytes(b"GGUF" * 64)
    expect(call_api(server, "POST", "/api/datasets/qa/rows", json={"rows": [{"input": "a"}]}), 201)
    first = expect(
        call_api(
            server,
            "POST",
            "/api/registry/models/support-model/versions",
            json={
                "artefacts": {"gguf-q4_k_m": str(gguf)},
                "base_model": "smollm2",
                "dataset": "qa@1",
                "metrics": {"val_loss": 1.25},
                "description": "first try",
            },
        ),
        201,
    )
    assert first["ref"] == "support-model@1"
    assert first["created_by"] == "admin"
    [artefact] = first["artefacts"]
    assert artefact["kind"] == "gguf-q4_k_m"
    assert artefact["bytes"] == 256
    assert artefact["uri"].startswith((server.home / "artefacts").as_uri())
    second = expect(
        call_api(server, "POST", "/api/registry/models/support-model/versions", json={"serving": UPSTREAM}),
        201,
    )
    assert (second["version"], second["serving"]) == (2, UPSTREAM)

    [listed] = expect(call_api(server, "GET", "/api/registry/models"))["data"]
    assert (listed["name"], listed["latest_version"], listed["versions"]) == ("support-model", 2, 2)
    moved = expect(
        call_api(server, "PUT", "/api/registry/models/support-model/aliases/production", json={"version": 1})
    )
    assert (moved["from_version"], moved["to_version"], moved["by"], moved["changed"]) == (
        None,
        1,
        "admin",
        True,
    )
    expect(
        call_api(server, "PUT", "/api/registry/models/support-model/aliases/production", json={"version": 2})
    )
    by_alias = expect(call_api(server, "GET", "/api/registry/models/support-model/versions/production"))
    assert by_alias["version"] == 2
    assert by_alias["aliases"] == ["production"]
    latest = expect(call_api(server, "GET", "/api/registry/models/support-model/versions/latest"))
    assert latest["version"] == 2
    detail = expect(call_api(server, "GET", "/api/registry/models/support-model"))
    assert detail["aliases"] == {"production": 2}
    assert [item["version"] for item in detail["versions"]] == [1, 2]
    listed_versions = expect(call_api(server, "GET", "/api/registry/models/support-model/versions"))["data"]
    assert [item["ref"] for item in listed_versions] == ["support-model@1", "support-model@2"]
    history = expect(
        call_api(
            server,
            "GET",
            "/api/registry/models/support-model/aliases/history",
            params={"alias": "production"},
        )
    )["data"]
    assert [(event["from_version"], event["to_version"]) for event in history] == [(None, 1), (1, 2)]

    lineage = expect(call_api(server, "GET", "/api/registry/models/support-model/versions/1/lineage"))["data"]
    assert [node["kind"] for node in lineage] == ["model_version", "base_model", "dataset_version"]
    assert lineage[2]["ref"] == "qa@1"

    conflict = _error(call_api(server, "DELETE", "/api/registry/models/support-model/versions/2"), 409)
    assert "production" in conflict["message"]
    expect(
        call_api(server, "DELETE", "/api/registry/models/support-model/versions/2", params={"force": True})
    )
    _error(call_api(server, "GET", "/api/registry/models/support-model/versions/production"), 404)
    removed = expect(call_api(server, "GET", "/api/registry/models/support-model/aliases/history"))["data"][
        -1
    ]
    assert (removed["action"], removed["from_version"]) == ("remove", 2)
    expect(call_api(server, "DELETE", "/api/registry/models/support-model"))
    assert expect(call_api(server, "GET", "/api/registry/models"))["data"] == []
    assert not (server.home / "artefacts" / "support-model").exists()


def _errors(server: Server, tmp_path: Path) -> None:
    base = "/api/registry/models"
    assert call_api(server, "GET", base, key="nobody").status_code == 401
    assert call_api(server, "GET", base, key="app").status_code == 403
    _error(call_api(server, "POST", f"{base}/m/versions", json={}), 400)  # nothing to register
    bad_serving = _error(
        call_api(server, "POST", f"{base}/m/versions", json={"serving": {"model": "x"}}), 400
    )
    assert bad_serving["param"] == "serving"
    missing = _error(
        call_api(
            server, "POST", f"{base}/m/versions", json={"artefacts": {"gguf-f16": str(tmp_path / "none")}}
        ),
        400,
    )
    assert "no such file or directory" in missing["message"]
    _error(
        call_api(server, "POST", f"{base}/m/versions", json={"serving": UPSTREAM, "dataset": "nope@1"}), 404
    )
    _error(call_api(server, "POST", f"{base}/-bad/versions", json={"serving": UPSTREAM}), 400)
    _error(call_api(server, "GET", f"{base}/m"), 404)
    expect(call_api(server, "POST", f"{base}/m/versions", json={"serving": UPSTREAM}), 201)
    _error(call_api(server, "GET", f"{base}/m/versions/7"), 404)
    _error(call_api(server, "PUT", f"{base}/m/aliases/production", json={"version": 7}), 404)
    _error(call_api(server, "PUT", f"{base}/m/aliases/Prod", json={"version": 1}), 400)
    _error(call_api(server, "PUT", f"{base}/m/aliases/latest", json={"version": 1}), 400)
    _error(call_api(server, "DELETE", f"{base}/m/aliases/production"), 404)
    _error(call_api(server, "DELETE", f"{base}/m/versions/production"), 400)


def test_artefact_paths_must_be_absolute(server: Server) -> None:
    """`~` once meant the server's home folder, which a request then spent minutes hashing."""
    for path in ("~", "relative/model.gguf"):
        response = call_api(
            server, "POST", "/api/registry/models/m/versions", json={"artefacts": {"gguf": path}}
        )
        assert response.status_code == 400
        assert "absolute path" in response.json()["error"]["message"]

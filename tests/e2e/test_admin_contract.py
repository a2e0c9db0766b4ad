"""What the first schemathesis run found, one regression test each, against a real server.

405 answers without `Allow`, schema-valid requests rejected, statuses the schema did not declare,
and revoking the very key a request is made with.
"""

from __future__ import annotations

import httpx
import pytest

from conftest import Server


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/api/keys", "GET, POST"),
        ("TRACE", "/api/keys", "GET, POST"),
        ("GET", "/api/keys/anything", "DELETE, PATCH"),
        ("PATCH", "/api/traces/0", "GET"),
        ("GET", "/api/admin/reload", "POST"),
        ("GET", "/v1/chat/completions", "POST"),
        ("DELETE", "/v1/embeddings", "POST"),
        ("POST", "/v1/models", "GET"),
    ],
)
def test_405_names_the_allowed_methods(server: Server, method: str, path: str, allow: str) -> None:
    response = httpx.request(method, f"{server.url}{path}", headers=server.headers())
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == allow
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_401_asks_for_a_bearer_key(server: Server) -> None:
    response = httpx.get(f"{server.url}/api/keys")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"author": "ann"},
        {"score": None},
        {"label": ""},
        {"score": "1"},
        {"score": True},
        {"label": "a\x00"},
    ],
)
def test_feedback_that_says_nothing_or_is_mistyped_is_400(server: Server, body: dict[str, object]) -> None:
    response = httpx.post(f"{server.url}/api/traces/{'0' * 32}/feedback", json=body, headers=server.headers())
    assert response.status_code == 400, response.text


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"cursor": ""}, 400),
        ({"since": ""}, 400),
        ({"key": ""}, 400),
        ({"model": "a\x00"}, 400),
        ({"key": "nobody-has-this-name"}, 404),
        ({"since": "99999999999w"}, 200),
        ({"since": "0001-01-01T00:00:00+05:00"}, 200),
        ({"since": "9999-12-31"}, 200),
    ],
)
def test_trace_filters(server: Server, params: dict[str, str], status: int) -> None:
    response = httpx.get(f"{server.url}/api/traces", params=params, headers=server.headers())
    assert response.status_code == status, response.text


def test_ids_that_cannot_exist_are_404(server: Server) -> None:
    for trace_id in ("%00", "nope", "A" * 32):
        response = httpx.get(f"{server.url}/api/traces/{trace_id}", headers=server.headers())
        assert response.status_code == 404, response.text


def test_an_admin_key_cannot_revoke_itself(server: Server) -> None:
    for key in ("admin", _key_id(server, "admin")):
        response = httpx.delete(f"{server.url}/api/keys/{key}", headers=server.headers())
        assert response.status_code == 409, response.text
        assert "is the one making this request" in response.json()["error"]["message"]
    assert httpx.get(f"{server.url}/api/keys", headers=server.headers()).status_code == 200


def test_key_conflicts_and_unknown_keys(server: Server) -> None:
    created = httpx.post(f"{server.url}/api/keys", json={"name": "contract"}, headers=server.headers())
    assert created.status_code == 201, created.text
    again = httpx.post(f"{server.url}/api/keys", json={"name": " contract "}, headers=server.headers())
    assert again.status_code == 409, again.text
    for name in ("   ", "a\nb", "\x00"):
        response = httpx.post(f"{server.url}/api/keys", json={"name": name}, headers=server.headers())
        assert response.status_code == 400, (name, response.text)
    revoked = httpx.delete(f"{server.url}/api/keys/contract", headers=server.headers())
    assert revoked.status_code == 200, revoked.text
    gone = httpx.delete(f"{server.url}/api/keys/contract", headers=server.headers())
    assert gone.status_code == 404, gone.text


def _key_id(server: Server, name: str) -> str:
    listed = httpx.get(f"{server.url}/api/keys", headers=server.headers()).json()
    return str(next(row["id"] for row in listed if row["name"] == name))

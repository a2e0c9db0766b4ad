"""POST /api/pii/analyze and /api/pii/redact on a real `llmops serve` (NER loaded on first use)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from conftest import Server, call_api, expect, start_server

TEXT = "Aiko Tanaka (jane.roe@example.org) paid with 4111 1111 1111 1111 from Berlin."


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(
        tmp_path_factory.mktemp("pii"),
        models=[{"name": "echo", "provider": "echo"}],
        keys={"admin": "admin", "app": "inference"},
        env={"LLMOPS_PII_SALT": "e2e-salt"},
    )
    yield server
    server.stop()


def _post(server: Server, path: str, body: Any, key: str = "admin") -> Any:
    return call_api(server, "POST", path, key, json=body)


def test_redact_one_text(api: Server) -> None:
    body = {"text": TEXT, "strategies": {"CREDIT_CARD": "mask_last4", "PERSON": "hash"}}
    answer = expect(_post(api, "/api/pii/redact", body))
    assert answer["nlp"] is True
    assert answer["skipped_entities"] == []
    (result,) = answer["results"]
    assert result["drop"] is False
    assert result["text"].startswith("<PERSON_")
    assert "(<EMAIL>) paid with **** **** **** 1111 from <LOCATION>." in result["text"]
    entities = [finding["entity"] for finding in result["findings"]]
    assert entities == ["PERSON", "EMAIL_ADDRESS", "CREDIT_CARD", "LOCATION"]
    email = result["findings"][1]
    assert TEXT[email["start"] : email["end"]] == email["text"] == "jane.roe@example.org"


def test_pseudonyms_are_stable_across_requests(api: Server) -> None:
    body = {"texts": ["Aiko Tanaka wrote.", "Later Aiko Tanaka called."], "strategy": "hash"}
    first, second = expect(_post(api, "/api/pii/redact", body))["results"]
    pseudonym = first["text"].split()[0]
    assert pseudonym in second["text"]
    again = expect(_post(api, "/api/pii/redact", {"text": "Aiko Tanaka", "strategy": "hash"}))["results"]
    assert again[0]["text"] == pseudonym


def test_drop_and_entities(api: Server) -> None:
    body = {"texts": [TEXT, "nothing"], "strategy": "tag", "strategies": {"CREDIT_CARD": "drop"}}
    first, second = expect(_post(api, "/api/pii/redact", body))["results"]
    assert (first["drop"], second["drop"]) == (True, False)
    only = expect(_post(api, "/api/pii/redact", {"text": TEXT, "entities": ["EMAIL_ADDRESS"]}))["results"][0]
    assert only["text"] == TEXT.replace("jane.roe@example.org", "<EMAIL>")


def test_analyze(api: Server) -> None:
    answer = expect(_post(api, "/api/pii/analyze", {"texts": [TEXT, "no pii"], "entities": ["CREDIT_CARD"]}))
    assert answer["results"] == [
        {
            "findings": [
                {"entity": "CREDIT_CARD", "start": 45, "end": 64, "text": "4111 1111 1111 1111", "score": 1.0}
            ]
        },
        {"findings": []},
    ]


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/api/pii/redact", {"text": "x", "strategy": "blur"}, "strategy"),
        ("/api/pii/redact", {"text": "x", "strategies": {"SSN": "tag"}}, "strategies.SSN"),
        ("/api/pii/analyze", {"text": "x", "entities": ["SSN"]}, "entities"),
        ("/api/pii/analyze", {"text": "x", "texts": ["y"]}, "body"),
        ("/api/pii/analyze", {}, "body"),
        ("/api/pii/analyze", {"text": None}, "body"),
        ("/api/pii/redact", {"text": 3}, "text"),
    ],
)
def test_bad_input_is_400_openai_style(api: Server, path: str, body: Any, param: str) -> None:
    error = expect(_post(api, path, body), 400)["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]


def test_admin_key_required(api: Server) -> None:
    assert _post(api, "/api/pii/analyze", {"text": TEXT}, key="app").status_code == 403
    assert _post(api, "/api/pii/analyze", {"text": TEXT}, key="nobody").status_code == 401


def test_every_status_is_declared(api: Server) -> None:
    schema = expect(call_api(api, "GET", "/api/openapi.json"))
    for path in ("/api/pii/analyze", "/api/pii/redact"):
        operation = schema["paths"][path]["post"]
        assert set(operation["responses"]) == {"200", "400", "401", "403", "429"}
        assert operation["requestBody"]["content"]["application/json"]["schema"]

"""POST /api/playground on a real `llmops serve`, and `llmops prompts try --url` against it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Server, free_port, get_json, start_server, wait_for
from llmops.prompts.spec import MessageTemplate, PromptContent, VariableSpec
from llmops.services import open_store
from llmops.settings import load_settings

MODELS: list[dict[str, Any]] = [
    {"name": "echo", "provider": "echo"},
    {"name": "priced", "provider": "echo", "input_price_per_1m": 1.0, "output_price_per_1m": 2.0},
    {"name": "down", "provider": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1"},
]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(
        tmp_path_factory.mktemp("playground"), models=MODELS, keys={"admin": "admin", "app": "inference"}
    )
    store = open_store(load_settings(database_url=server.database_url, home=server.home))
    try:
        content = PromptContent(
            kind="chat",
            messages=(
                MessageTemplate(role="system", content="Sell {{ product }}."),
                MessageTemplate(role="user", content="Why {{ product }}?"),
            ),
            variables={"product": VariableSpec(required=True)},
            model="echo",
            parameters={"max_tokens": 20},
        )
        store.prompts.create_version("pitch", content, labels=["production"])
    finally:
        store.close()
    yield server
    server.stop()


def _post(server: Server, body: Any, key: str = "admin") -> httpx.Response:
    return httpx.post(f"{server.url}/api/playground", json=body, headers=server.headers(key), timeout=30)


def _trace(server: Server, trace_id: str) -> dict[str, Any]:
    def stored() -> dict[str, Any] | None:
        response = httpx.get(f"{server.url}/api/traces/{trace_id}", headers=server.headers(), timeout=10)
        return dict(response.json()) if response.status_code == 200 else None

    found: dict[str, Any] = wait_for(stored)
    return found


def test_a_prompt_against_models_and_temperatures(api: Server) -> None:
    response = _post(
        api,
        {
            "prompt": "pitch",
            "variables": {"product": "tea"},
            "models": ["echo", "priced", "down"],
            "parameters": [{"temperature": 0}, {"temperature": 0.8, "max_tokens": 1}],
            "max_concurrency": 2,
        },
    )
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["prompt"] == {"name": "pitch", "version": 1, "label": "production"}
    assert run["messages"] == [
        {"role": "system", "content": "Sell tea."},
        {"role": "user", "content": "Why tea?"},
    ]
    cells = run["cells"]
    assert [(cell["model"], cell["parameters"]) for cell in cells] == [
        (model, parameters)
        for model in ("echo", "priced", "down")
        for parameters in ({"max_tokens": 20, "temperature": 0}, {"max_tokens": 1, "temperature": 0.8})
    ]
    assert [cell["text"] for cell in cells[:4]] == ["Why tea?", "Why", "Why tea?", "Why"]
    assert [cell["finish_reason"] for cell in cells[:2]] == ["stop", "length"]
    assert cells[2]["cost"] > 0
    assert [cell["status"] for cell in cells[4:]] == ["error", "error"]
    assert all(cell["error"] for cell in cells[4:])
    admin_key = next(key for key in get_json(api, "/api/keys") if key["name"] == "admin")
    for cell in cells:
        trace = _trace(api, cell["trace_id"])
        assert trace["attributes"]["playground"] == run["id"]
        assert (trace["prompt_name"], trace["prompt_version"], trace["prompt_label"]) == (
            "pitch",
            1,
            "production",
        )
        assert trace["api_key_id"] == admin_key["id"]  # run with the caller's key
        assert trace["status_code"] == cell["status_code"]


def test_raw_messages(api: Server) -> None:
    body = {"messages": [{"role": "user", "content": "hi there"}], "models": ["priced", "nope"]}
    response = _post(api, body)
    assert response.status_code == 200, response.text
    ok, missing = response.json()["cells"]
    assert (ok["status"], ok["text"], ok["prompt_tokens"] > 0) == ("ok", "hi there", True)
    assert (missing["status"], missing["status_code"]) == ("error", 404)
    assert response.json()["prompt"] is None


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"prompt": "nothing"}, 404, "prompt 'nothing' not found"),
        (
            {"prompt": "pitch@staging", "variables": {"product": "x"}},
            404,
            "prompt 'pitch' has no label 'staging'",
        ),
        ({"prompt": "pitch"}, 400, "missing required variable 'product'"),
        ({"prompt": "pitch", "variables": {"product": 3}}, 400, "variable 'product' must be of type string"),
        (
            {"prompt": "pitch", "messages": [{"role": "user", "content": "x"}], "models": ["echo"]},
            400,
            "either",
        ),
        ({"messages": [{"role": "user", "content": "x"}]}, 400, "name at least one model"),
        (
            {"messages": [{"role": "user", "content": "x"}], "models": ["echo"], "variables": {}},
            400,
            "variables",
        ),
        ({"prompt": "pitch", "variables": {"product": "x"}, "models": ["a"] * 5}, 400, "models"),
        ({"prompt": "pitch", "variables": {"product": "x"}, "parameters": [{"stream": True}]}, 400, "stream"),
        ({"prompt": "pitch", "variables": {"product": "x"}, "max_concurrency": 17}, 400, "max_concurrency"),
        ({"prompt": None}, 400, "prompt"),
    ],
)
def test_bad_requests(api: Server, body: dict[str, Any], status: int, message: str) -> None:
    response = _post(api, body)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]


def test_a_render_error_names_the_variable_in_param(api: Server) -> None:
    response = _post(api, {"prompt": "pitch", "variables": {"product": 3}})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "variables.product"


def test_keys_are_checked(api: Server) -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "models": ["echo"]}
    assert _post(api, body, key="none").status_code == 401
    assert _post(api, body, key="app").status_code == 403


def test_cli_try_with_url(api: Server, tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "llmops",
        "prompts",
        "try",
        "pitch",
        "--var",
        "product=kites",
        "-m",
        "echo",
    ]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LLMOPS_HOME": str(tmp_path), "COLUMNS": "200"}
    result = subprocess.run(
        [*command, "--url", api.url, "--key", api.keys["admin"]],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "pitch#1 (production)" in result.stdout
    assert "Why kites?" in result.stdout
    refused = subprocess.run(
        [*command, "--url", api.url],
        capture_output=True,
        text=True,
        env={**env, "LLMOPS_API_KEY": api.keys["app"]},
        cwd=tmp_path,
        timeout=60,
    )
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"error: {api.url}/api/playground answered 403: ")
    assert len(refused.stderr.strip().splitlines()) == 1

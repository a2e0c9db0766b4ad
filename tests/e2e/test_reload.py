"""Hot reload of the models, end to end: SIGHUP and POST /api/admin/reload on a real `llmops serve`.

Each test rewrites the server's llmops.yaml. A valid file swaps in (the new models answer, the
generation goes up) while requests under way finish on the old configuration; an invalid one is
refused in one log line (and a 400 from the API) and the running configuration keeps serving.
"""

from __future__ import annotations

import signal
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import yaml

from conftest import Server, UpstreamProcess, find_trace, get_json, start_server, wait_for
from fake_upstream import ANSWER_PREFIX


def model(name: str, upstream: UpstreamProcess, upstream_model: str = "m") -> dict[str, Any]:
    return {"name": name, "provider": "openai", "base_url": upstream.base_url, "model": upstream_model}


def write_config(server: Server, models: list[dict[str, Any]] | str) -> None:
    """Replace the llmops.yaml the server was started with (start_server writes it next to home)."""
    path = server.home.parent / "llmops.yaml"
    path.write_text(models if isinstance(models, str) else yaml.safe_dump({"models": models}))


def generation(server: Server) -> int:
    return int(get_json(server, "/api/models/status")["generation"])


def reload(server: Server, key: str = "admin") -> httpx.Response:
    return httpx.post(f"{server.url}/api/admin/reload", headers=server.headers(key), timeout=30)


def model_names(server: Server) -> set[str]:
    return {item.id for item in api(server).models.list()}


def api(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=server.keys["app"], max_retries=0, timeout=30)


def served_by(server: Server, name: str, text: str = "hello") -> str:
    answer = api(server).chat.completions.create(model=name, messages=[{"role": "user", "content": text}])
    assert answer.choices[0].message.content == ANSWER_PREFIX + text
    return str(answer.system_fingerprint).removeprefix("fp_")


def reload_failures(server: Server) -> list[str]:
    return [line for line in server.log().splitlines() if "config reload failed" in line]


def start(tmp_path: Path, models: list[dict[str, Any]]) -> Server:
    return start_server(tmp_path, models=models, keys={"admin": "admin", "app": "inference"})


def test_sighup_and_the_admin_api_reload_the_models(
    tmp_path: Path, upstreams: tuple[UpstreamProcess, ...], start_upstream: Callable[[str], UpstreamProcess]
) -> None:
    a, b = upstreams
    c = start_upstream("c")  # a third upstream, only in the last configuration
    server = start(tmp_path, [model("chat", a)])
    try:
        assert generation(server) == 1
        assert served_by(server, "chat") == "a"

        write_config(server, [model("chat", b), model("added", a)])
        server.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "added" in model_names(server), timeout=10)
        assert generation(server) == 2
        assert served_by(server, "chat") == "b"
        assert served_by(server, "added") == "a"

        write_config(server, [model("chat", b), model("added", a), model("third", c)])
        assert reload(server, "app").status_code == 403  # admin scope only
        assert httpx.post(f"{server.url}/api/admin/reload", timeout=10).status_code == 401
        assert generation(server) == 2
        response = reload(server)
        assert response.status_code == 200, response.text
        assert response.json() == {
            "status": "reloaded",
            "generation": 3,
            "models": ["chat", "added", "third"],
        }
        assert generation(server) == 3
        assert served_by(server, "third") == "c"
        assert reload_failures(server) == []
    finally:
        server.stop()


def test_requests_under_way_finish_on_the_old_configuration(
    tmp_path: Path, upstreams: tuple[UpstreamProcess, ...]
) -> None:
    a, b = upstreams
    server = start(
        tmp_path,
        [
            model("chat", a, "fault:slow,seconds=3"),
            model("stream", a, "fault:slow_first_token,seconds=3"),
        ],
    )
    try:
        results: dict[str, str] = {}
        marker = uuid.uuid4().hex

        def whole() -> None:
            answer = api(server).chat.completions.create(
                model="chat", messages=[{"role": "user", "content": marker}]
            )
            results["whole"] = f"{answer.system_fingerprint} {answer.choices[0].message.content}"

        def streamed() -> None:
            chunks = api(server).chat.completions.create(
                model="stream", messages=[{"role": "user", "content": marker}], stream=True
            )
            parts = [(chunk.system_fingerprint, chunk.choices[0].delta.content or "") for chunk in chunks]
            results["stream"] = f"{parts[0][0]} {''.join(text for _, text in parts)}"

        threads = [threading.Thread(target=whole), threading.Thread(target=streamed)]
        for thread in threads:
            thread.start()
        wait_for(lambda: a.stats()["in_flight"] == 2, timeout=5)

        write_config(server, [model("chat", b), model("stream", b)])
        response = reload(server)
        assert response.status_code == 200, response.text
        assert served_by(server, "chat") == "b"  # new requests use the new configuration at once
        assert a.stats()["in_flight"] == 2  # while the old ones are still under way

        for thread in threads:
            thread.join(30)
        expected = f"fp_a {ANSWER_PREFIX}{marker}"
        assert results == {"whole": expected, "stream": expected}
        trace = find_trace(server, marker, model="chat")
        assert (trace["status_code"], trace["deployment"]) == (200, "chat")
        assert trace["attributes"] is None or "attempts" not in trace["attributes"]
    finally:
        server.stop()


def test_an_invalid_configuration_is_refused_and_the_running_one_stays(
    tmp_path: Path, upstreams: tuple[UpstreamProcess, ...]
) -> None:
    a, b = upstreams
    server = start(tmp_path, [model("chat", a)])
    try:
        invalid: list[list[dict[str, Any]] | str] = [
            "models: [\n  {name: chat",  # not YAML
            [{"name": "chat", "routing": "fastest", "deployments": [model("x", b)]}],  # unknown strategy
            [{"name": "chat", "provider": "no-such-provider"}],
            [{"name": "chat"}],  # neither provider nor deployments
            [{"name": "chat", "provider": "openai"}],  # the provider refuses it: no base_url
        ]
        for number, config in enumerate(invalid, start=1):
            write_config(server, config)
            response = reload(server)
            assert response.status_code == 400, response.text
            error = response.json()["error"]
            assert error["code"] == "invalid_config"
            assert "\n" not in error["message"]
            assert served_by(server, "chat") == "a"
            assert generation(server) == 1
            assert len(reload_failures(server)) == number, server.log()

        write_config(server, "models: [\n")
        server.process.send_signal(signal.SIGHUP)
        wait_for(lambda: len(reload_failures(server)) == len(invalid) + 1, timeout=10)
        assert served_by(server, "chat") == "a"
        assert generation(server) == 1
        assert "Traceback" not in server.log()

        write_config(server, [model("chat", b)])  # a valid file afterwards is taken as usual
        assert reload(server).status_code == 200
        assert generation(server) == 2
        assert served_by(server, "chat") == "b"
    finally:
        server.stop()

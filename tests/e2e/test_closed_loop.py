"""The closed loop on the embedded model, end to end: production traces → dataset → LoRA fine-tune →
quantised GGUF in the registry → canary behind the same model name, served by the `local` provider.

One `llmops serve` answers `support` with the embedded SmolLM2; the CLI (other processes, same database
and home) builds a dataset from its traces, fine-tunes on it (a few steps), registers the tuned model and
deploys it as a canary; the server picks the deployment up and the official openai client gets answers
from the tuned GGUF, which the traces and /metrics name.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from conftest import Server, get_json, server_env, start_server, wait_for
from training_support import link_base_models

pytest.importorskip("torch")
pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.model

QUESTIONS = [f"In one word, what colour is a {thing}?" for thing in ("banana", "lime", "cherry", "plum")] * 3


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    link_base_models(tmp_path / "home")
    running = start_server(
        tmp_path,
        models=[{"name": "support", "provider": "local", "params": {"max_tokens": 8}}],
        keys={"admin": "admin"},
        env={"LLMOPS_DEPLOYMENT_POLL_SECONDS": "0.5", "LLMOPS_TRACE_FLUSH_SECONDS": "0.1"},
    )
    yield running
    running.stop()


def _cli(server: Server, *args: str, timeout: float = 300) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "llmops", "--config", str(server.home.parent / "llmops.yaml"), *args],
        env=server_env(server.home, server.database_url),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _ask(chat: openai.OpenAI, question: str) -> Any:
    return chat.chat.completions.with_raw_response.create(
        model="support", messages=[{"role": "user", "content": question}], max_tokens=8, temperature=0
    )


def _deployment_of(server: Server, response: Any) -> str:
    """The deployment that answered, from the response's trace (written a moment later)."""
    path = f"/api/traces/{response.headers['x-llmops-trace-id']}"

    def found() -> dict[str, Any] | None:
        answer = httpx.get(f"{server.url}{path}", headers=server.headers(), timeout=10)
        return answer.json() if answer.status_code == 200 else None

    return str(wait_for(found, timeout=10)["deployment"])


def test_traces_become_a_tuned_canary(server: Server) -> None:
    chat = openai.OpenAI(base_url=server.base_url, api_key=server.keys["admin"], max_retries=0, timeout=60)
    for question in QUESTIONS:
        assert _ask(chat, question).parse().choices[0].message.content
    wait_for(lambda: len(get_json(server, "/api/traces?model=support")["data"]) >= len(QUESTIONS), timeout=10)

    _cli(server, "datasets", "from-traces", "support-traffic", "--model", "support")
    run = json.loads(
        _cli(
            server,
            "finetune", "run", "--dataset", "support-traffic", "--max-steps", "2", "--batch-size", "2",
            "--max-seq-length", "64", "--validation-split", "0.25", "--quantize", "q4_k_m",
            "--register", "support-model", "--name", "from-traffic", "--json",
        )
    )  # fmt: skip
    assert run["status"] == "succeeded"
    assert run["model_version"] == "support-model@1"
    lineage = json.dumps(json.loads(_cli(server, "registry", "lineage", "support-model@1", "--json")))
    assert "from-traces" in lineage or "traces" in lineage
    assert run["id"] in lineage

    _cli(server, "deploy", "support-model@1", "--as", "support", "--canary", "50", "--manual")

    def answered_by_the_tuned_model() -> str | None:
        response = _ask(chat, "What colour is a lemon?")
        if _deployment_of(server, response) != "support-model@1":
            return None
        return str(response.parse().choices[0].message.content)

    assert wait_for(answered_by_the_tuned_model, timeout=60, interval=0.2)
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert 'llmops_deployment_traffic_percent{model="support",deployment="support-model@1"} 50' in metrics
    assert 'deployment="support-model@1",status="200"' in metrics

    _cli(server, "deploy", "rollback", "support")

    def all_on_the_stable_side() -> bool:
        return 'deployment="support-model@1"} 50' not in httpx.get(f"{server.url}/metrics", timeout=10).text

    wait_for(all_on_the_stable_side, timeout=30, interval=0.2)
    for _ in range(6):
        assert _deployment_of(server, _ask(chat, "What colour is a lime?")) != "support-model@1"

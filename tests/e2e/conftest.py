"""End-to-end fixtures: a real `llmops serve` process on 127.0.0.1 and a fake OpenAI upstream."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from fake_upstream import FakeUpstream
from llmops.services import open_store
from llmops.settings import load_settings

LLMOPS = [sys.executable, "-m", "llmops"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    home: Path
    database_url: str
    keys: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def headers(self, key: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[key]}"} if key in self.keys else {}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return int(self.process.returncode)


def server_env(home: Path, database_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_") or k.startswith("LLMOPS_TEST_")}
    env.update({"LLMOPS_HOME": str(home), "LLMOPS_DATABASE_URL": database_url, "LLMOPS_LOG_LEVEL": "warning"})
    env.update(extra or {})
    return env


def start_server(
    tmp_path: Path,
    *,
    models: list[dict[str, Any]] | None,
    keys: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    database_url: str | None = None,
    args: list[str] | None = None,
    ready_timeout: float = 60,
    config: dict[str, Any] | None = None,
) -> Server:
    """Start `llmops serve` in a subprocess with its own home, config and keys; wait until ready."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    database_url = database_url or f"sqlite:///{home / 'llmops.db'}"
    config_args: list[str] = []
    if models is not None or config is not None:  # config: more llmops.yaml keys (guardrails: ...)
        config_file = tmp_path / "llmops.yaml"
        config_file.write_text(
            yaml.safe_dump({**({"models": models} if models is not None else {}), **(config or {})})
        )
        config_args = ["--config", str(config_file)]
    created: dict[str, str] = {}
    if keys:
        store = open_store(load_settings(database_url=database_url, home=home))
        try:
            for name, scope in keys.items():
                created[name] = store.keys.create(name, scope).secret
        finally:
            store.close()
    port = free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*LLMOPS, *config_args, "serve", "--port", str(port), *(args or [])],
            env=server_env(home, database_url, env),
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, port, home, database_url, created, log_path)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llmops serve exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"llmops serve not ready after {ready_timeout}s:\n{server.log()}")


def gateway_models(upstream: FakeUpstream) -> list[dict[str, Any]]:
    """The models of the shared e2e server: echo, and fake upstream behaviours by name."""

    def upstream_model(name: str, upstream_id: str, **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "provider": "openai",
            "base_url": upstream.base_url,
            "model": upstream_id,
            **extra,
        }

    return [
        {"name": "echo", "provider": "echo", "input_price_per_1m": 1.0, "output_price_per_1m": 2.0},
        upstream_model("gpt-fake", "fake-model", api_key_env="FAKE_UPSTREAM_KEY", input_price_per_1m=3.0),
        upstream_model("gpt-tools", "fake-tools"),
        upstream_model("gpt-no-usage", "fake-no-usage"),
        upstream_model("gpt-400", "fake-400"),
        upstream_model("gpt-401", "fake-401"),
        upstream_model("gpt-429", "fake-429"),
        upstream_model("gpt-500", "fake-500"),
        upstream_model("gpt-bad-json", "fake-bad-json"),
        upstream_model("gpt-slow", "fake-slow", params={"timeout_seconds": 0.5}),
        upstream_model("gpt-broken-stream", "fake-stream-break"),
        {"name": "gpt-down", "provider": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1"},
    ]


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def server(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One gateway for a test module: echo + fake-upstream models, an admin and an inference key."""
    running = start_server(
        tmp_path_factory.mktemp("server"),
        models=gateway_models(upstream),
        keys={"admin": "admin", "app": "inference"},
        env={"FAKE_UPSTREAM_KEY": "sk-upstream-secret", "LLMOPS_MAX_BODY_BYTES": "65536"},
    )
    yield running
    running.stop()


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


# --- fake upstreams as processes of their own (routing, failover, chaos) ----------------------

FAKE_UPSTREAM_SCRIPT = Path(__file__).resolve().parent.parent / "fake_upstream.py"


@dataclass
class UpstreamProcess:
    """`python tests/fake_upstream.py` on 127.0.0.1: started, stopped, killed and restarted on one port."""

    name: str
    log_path: Path
    port: int = 0  # 0 until the first start picks a free port; kept for restarts
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 15) -> UpstreamProcess:
        if self.running:
            raise RuntimeError(f"upstream {self.name} is already running")
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(FAKE_UPSTREAM_SCRIPT), "--port", str(self.port), "--name", self.name],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_bytes()[offset:].decode(errors="replace")
            if " ready on http://127.0.0.1:" in text:
                self.port = int(text.split(" ready on http://127.0.0.1:")[1].split("/")[0])
                return self
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"fake upstream {self.name} exited with {self.process.returncode}:\n{text}"
                )
            time.sleep(0.02)
        self.stop(signal.SIGKILL)
        raise RuntimeError(f"fake upstream {self.name} not ready after {timeout}s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it (SIGKILL: die at once, like a crash); connections to its port are then refused."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def restart(self, sig: int = signal.SIGTERM) -> UpstreamProcess:
        self.stop(sig)
        return self.start()

    def control(self, fault: str | None = None, **options: Any) -> dict[str, Any]:
        """Set the fault of the process (see fake_upstream's docstring); ``fault=None`` clears it."""
        response = httpx.post(f"{self.url}/_control", json={"fault": fault, **options}, timeout=5)
        response.raise_for_status()
        return dict(response.json())

    def stats(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/_stats", timeout=5)
        response.raise_for_status()
        return dict(response.json())

    def requests(self) -> int:
        """How many /v1 requests it received since the last reset."""
        return int(self.stats()["requests"])

    def reset(self) -> None:
        """Running, no fault, counters at zero."""
        if not self.running:
            self.start()
        self.control(None, reset_stats=True)


@pytest.fixture(scope="module")
def upstream_pair(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[UpstreamProcess, UpstreamProcess]]:
    """Two fake-upstream processes, ``a`` and ``b``, for the tests of one module."""
    folder = tmp_path_factory.mktemp("upstreams")
    pair = (UpstreamProcess("a", folder / "a.log"), UpstreamProcess("b", folder / "b.log"))
    try:
        for upstream in pair:
            upstream.start()
        yield pair
    finally:
        for upstream in pair:
            upstream.stop()


@pytest.fixture
def start_upstream(tmp_path: Path) -> Iterator[Callable[[str], UpstreamProcess]]:
    """Start named fake-upstream processes for one test (``start_upstream("c")``); all stopped after it."""
    started: list[UpstreamProcess] = []

    def start(name: str) -> UpstreamProcess:
        upstream = UpstreamProcess(name, tmp_path / f"upstream-{name}.log").start()
        started.append(upstream)
        return upstream

    try:
        yield start
    finally:
        for upstream in started:
            upstream.stop()


@pytest.fixture
def upstreams(
    upstream_pair: tuple[UpstreamProcess, UpstreamProcess],
) -> tuple[UpstreamProcess, UpstreamProcess]:
    """The module's two upstreams, each running (restarted if stopped), fault-free, counters at 0."""
    for upstream in upstream_pair:
        upstream.reset()
    return upstream_pair


@pytest.fixture(scope="module")
def blackhole_url() -> Iterator[str]:
    """A base URL on 127.0.0.1 where connecting hangs: a listener whose accept queue is full."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=2)  # fills the queue (backlog 0)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        filler.close()
        listener.close()


def call_api(server: Server, method: str, path: str, key: str = "admin", **kwargs: Any) -> httpx.Response:
    """One request to the server's API with the named key's secret."""
    return httpx.request(method, f"{server.url}{path}", headers=server.headers(key), timeout=30, **kwargs)


def expect(response: httpx.Response, status: int = 200) -> Any:
    """The JSON body of a response that must have ``status``."""
    assert response.status_code == status, response.text
    return response.json()


def get_json(server: Server, path: str, key: str = "admin") -> Any:
    response = httpx.get(f"{server.url}{path}", headers=server.headers(key), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def find_trace(server: Server, marker: str, model: str | None = None, timeout: float = 10) -> dict[str, Any]:
    """The stored trace whose request contains ``marker`` (waits for the background writer)."""

    def look() -> dict[str, Any] | None:
        params = {"limit": 50, **({"model": model} if model else {})}
        page = httpx.get(f"{server.url}/api/traces", params=params, headers=server.headers(), timeout=10)
        assert page.status_code == 200, page.text
        for item in page.json()["data"]:
            detail = get_json(server, f"/api/traces/{item['id']}")
            if marker in str(detail["request"]):
                return dict(detail)
        return None

    found: dict[str, Any] = wait_for(look, timeout=timeout)
    return found


def deployment_status(server: Server, model: str, deployment: str) -> dict[str, Any]:
    """One deployment's entry in GET /api/models/status."""
    for entry in get_json(server, "/api/models/status")["data"]:
        if entry["name"] == model:
            for item in entry["deployments"]:
                if item["id"] == deployment:
                    return dict(item)
    raise AssertionError(f"no deployment {deployment!r} of model {model!r} in /api/models/status")

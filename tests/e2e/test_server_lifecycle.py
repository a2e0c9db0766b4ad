"""Starting and stopping the server: SIGTERM drains the trace queue, safe binding, Postgres."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import httpx
import openai

from conftest import LLMOPS, server_env, start_server
from llmops.services import open_store
from llmops.settings import load_settings

# uvicorn re-raises the signal after a clean shutdown, so the exit status says "terminated by SIGTERM"
CLEAN_EXIT = (0, -signal.SIGTERM)
SLOW_ECHO = [{"name": "echo", "provider": "echo", "params": {"delay_seconds": 0.3}}]


def _stored_traces(database_url: str, home: Path) -> int:
    store = open_store(load_settings(database_url=database_url, home=home))
    try:
        return store.trace_repository.count()
    finally:
        store.close()


async def _send(base_url: str, count: int, stream: bool = False) -> list[str]:
    async with openai.AsyncOpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=30) as client:

        async def one(index: int) -> str:
            messages = [{"role": "user", "content": f"request {index}"}]
            if stream:
                chunks = await client.chat.completions.create(model="echo", messages=messages, stream=True)  # type: ignore[arg-type]
                return "".join(
                    [chunk.choices[0].delta.content or "" async for chunk in chunks if chunk.choices]
                )
            answer = await client.chat.completions.create(model="echo", messages=messages)  # type: ignore[arg-type]
            return answer.choices[0].message.content or ""

        return list(await asyncio.gather(*(one(index) for index in range(count))))


def test_sigterm_drains_every_trace(tmp_path: Path) -> None:
    """Traces are held back (long flush interval); SIGTERM must still store exactly N of them."""
    server = start_server(
        tmp_path,
        models=[{"name": "echo", "provider": "echo"}],
        env={"LLMOPS_TRACE_FLUSH_SECONDS": "60", "LLMOPS_TRACE_BATCH_SIZE": "10000"},
    )
    answers = asyncio.run(_send(server.base_url, 40)) + asyncio.run(_send(server.base_url, 10, stream=True))
    assert answers == [f"request {index}" for index in range(40)] + [
        f"request {index}" for index in range(10)
    ]
    assert _stored_traces(server.database_url, server.home) == 0  # still queued in memory
    assert server.stop(signal.SIGTERM) in CLEAN_EXIT, server.log()
    assert _stored_traces(server.database_url, server.home) == 50


def test_sigterm_lets_requests_in_flight_finish(tmp_path: Path) -> None:
    server = start_server(tmp_path, models=SLOW_ECHO)

    async def scenario() -> list[str]:
        pending = asyncio.ensure_future(_send(server.base_url, 20))
        await asyncio.sleep(0.15)  # all 20 are inside the 0.3 s delay now
        server.process.send_signal(signal.SIGTERM)
        return await pending

    answers = asyncio.run(scenario())
    assert answers == [f"request {index}" for index in range(20)]
    assert server.stop() in CLEAN_EXIT
    assert _stored_traces(server.database_url, server.home) == 20


def test_refuses_public_bind_without_keys(tmp_path: Path) -> None:
    env = server_env(tmp_path, f"sqlite:///{tmp_path / 'llmops.db'}")
    result = subprocess.run(
        [*LLMOPS, "serve", "--host", "0.0.0.0", "--port", "0"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: refusing to listen on 0.0.0.0 with no API keys")


def test_open_on_loopback_without_keys(tmp_path: Path) -> None:
    server = start_server(tmp_path, models=[{"name": "echo", "provider": "echo"}])
    try:
        answer = httpx.post(
            f"{server.base_url}/chat/completions",
            json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert answer.status_code == 200
        assert httpx.get(f"{server.url}/api/traces").status_code == 200
    finally:
        server.stop()


def test_server_on_postgres(tmp_path: Path, postgres_database_url: str) -> None:
    server = start_server(
        tmp_path,
        models=[{"name": "echo", "provider": "echo"}],
        database_url=postgres_database_url,
        keys={"admin": "admin"},
    )
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key=server.keys["admin"], max_retries=0)
        for index in range(3):
            client.chat.completions.create(
                model="echo", messages=[{"role": "user", "content": f"pg {index}"}]
            )
    finally:
        assert server.stop() in CLEAN_EXIT
    assert _stored_traces(postgres_database_url, server.home) == 3

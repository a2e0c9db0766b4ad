#!/usr/bin/env python3
"""Canary rollback under load (issue 10): a new version starts failing, how soon is it rolled back by itself?

Target: a canary whose new version answers 5xx on 20% of requests is rolled back automatically within
60 s of the fault starting, with no client error beyond the canary's share during that window.

It starts two fake OpenAI upstreams (``tests/fake_upstream.py``, one process each: ``stable`` and
``canary``) and one ``llmops serve`` on SQLite in a fresh temporary home, with the server's default
check intervals (canaries judged every 5 s, changes polled every 2 s). With the llmops CLI it registers
``support-model@1`` (the stable upstream) and ``support-model@2`` (the canary upstream) in the model
registry, deploys version 1 as ``support``, then version 2 as a canary at ``--canary`` percent with the
default guards (error rate at most 0.05, at least 20 canary calls) over a ``--window`` second window.
It then keeps ``--clients`` requests in flight for ``--duration`` seconds; after ``--fault-after``
seconds the canary upstream answers 500 to every fifth request (20%).

Measured: the seconds from the fault's start to the auto-rollback event (its time as stored), the
requests sent and the client errors between those two moments, against the canary's share of them
times the fault rate (what clients would have seen with no retries and no rollback), and the share
of answers the canary gave before the fault and after the rollback. PASS: rollback within 60 s and no
more client errors in the window than the canary's failing share.

Only 127.0.0.1 is used, every process it starts is stopped by its PID, every phase is bounded in time.
Run with the repository's venv: ``.venv/bin/python bench/canary.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
FAKE_UPSTREAM = ROOT / "tests" / "fake_upstream.py"
LLMOPS = [sys.executable, "-m", "llmops"]
MODEL = "support"
FAULT_EVERY = 5  # every fifth canary request fails: 20%
TARGET_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_line(path: Path, text: str, process: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = path.read_text(errors="replace") if path.exists() else ""
        if text in content:
            return content
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}; see {path}")
        time.sleep(0.05)
    raise RuntimeError(f"{text!r} not seen in {path} after {timeout}s")


@dataclass
class Processes:
    """What this run started, stopped by PID at the end."""

    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(
        self, command: list[str], log: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.started):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)


def start_upstream(processes: Processes, folder: Path, name: str) -> str:
    log = folder / f"upstream-{name}.log"
    process = processes.start([sys.executable, str(FAKE_UPSTREAM), "--port", "0", "--name", name], log)
    content = wait_for_line(log, " ready on http://127.0.0.1:", process, 15)
    return "http://127.0.0.1:" + content.split(" ready on http://127.0.0.1:")[1].split()[0]


def control(base_url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        base_url.removesuffix("/v1") + "/_control",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        response.read()


def llmops(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([*LLMOPS, *args], env=env, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"llmops {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


@dataclass
class Tally:
    """Answers by the time they were sent (monotonic seconds since the load began)."""

    sent: list[float] = field(default_factory=list)
    errors: list[tuple[float, str]] = field(default_factory=list)
    answered_by: list[tuple[float, str]] = field(default_factory=list)
    fault_at: float = 0.0  # when the fault was switched on, since the load began
    fault_wall: float = 0.0  # the same moment as Unix time


async def client(
    session: aiohttp.ClientSession, url: str, key: str, tally: Tally, began: float, stop: float
) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}
    headers = {"Authorization": f"Bearer {key}"}
    while (now := time.monotonic()) < stop:
        at = now - began
        tally.sent.append(at)
        try:
            async with session.post(url, json=body, headers=headers) as response:
                data = await response.json(content_type=None)
                if response.status != 200:
                    tally.errors.append((at, f"HTTP {response.status}"))
                    continue
                tally.answered_by.append((at, str(data.get("system_fingerprint"))))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            tally.errors.append((at, type(exc).__name__))


async def drive(
    url: str, key: str, clients: int, duration: float, fault_after: float, canary_url: str
) -> Tally:
    tally = Tally()
    began = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        stop = began + duration
        load = [asyncio.create_task(client(session, url, key, tally, began, stop)) for _ in range(clients)]
        await asyncio.sleep(fault_after)
        await asyncio.to_thread(control, canary_url, {"fault": "500", "every": FAULT_EVERY})
        tally.fault_at, tally.fault_wall = time.monotonic() - began, time.time()
        await asyncio.gather(*load)
    return tally


def rollback_event(env: dict[str, str]) -> dict[str, Any] | None:
    events = json.loads(llmops(env, "deploy", "history", MODEL, "--json"))
    return next((event for event in events if event["action"] == "auto-rollback"), None)


def share(answers: list[tuple[float, str]], start: float, end: float) -> tuple[int, int]:
    window = [who for at, who in answers if start <= at < end]
    return sum(who == "fp_canary" for who in window), len(window)


def report(args: argparse.Namespace, tally: Tally, event: dict[str, Any] | None) -> bool:
    print(
        f"load: {len(tally.sent)} requests from {args.clients} clients over {args.duration:.0f} s "
        f"({len(tally.sent) / args.duration:.0f} req/s); client errors in total: {len(tally.errors)}"
    )
    canary, total = share(tally.answered_by, 0, args.fault_after)
    print(
        f"before the fault: canary answered {canary} of {total} ({100 * canary / max(total, 1):.1f}%, "
        f"configured {args.canary}%)"
    )
    if event is None:
        print("no auto-rollback happened during the run")
        print("FAIL")
        return False
    seconds = datetime.fromisoformat(event["at"]).timestamp() - tally.fault_wall
    start, end = tally.fault_at, tally.fault_at + seconds
    in_window = [at for at in tally.sent if start <= at < end]
    errors = [reason for at, reason in tally.errors if start <= at < end]
    canary_window, answered_window = share(tally.answered_by, start, end)
    allowed = len(in_window) * args.canary / 100 / FAULT_EVERY
    print(
        f"auto-rollback {seconds:.1f} s after the fault started (target <= {TARGET_SECONDS:.0f} s): "
        f"{event['reason']}"
    )
    print(
        f"between fault and rollback: {len(in_window)} requests, {len(errors)} client errors "
        f"{dict(Counter(errors))}; the canary's failing share would be {allowed:.1f} "
        f"({args.canary}% x {100 / FAULT_EVERY:.0f}%); "
        f"the canary answered {canary_window} of {answered_window}"
    )
    after, total_after = share(tally.answered_by, end + args.settle, args.duration)
    print(f"after the rollback (+{args.settle:.0f} s to apply): canary answered {after} of {total_after}")
    passed = seconds <= TARGET_SECONDS and len(errors) <= allowed and after == 0
    print("PASS" if passed else "FAIL")
    return passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=90.0, help="seconds of load (default 90)")
    parser.add_argument("--clients", type=int, default=8, help="requests in flight (default 8)")
    parser.add_argument("--fault-after", type=float, default=15.0, help="seconds before the fault (15)")
    parser.add_argument("--canary", type=int, default=10, help="canary share in percent (10)")
    parser.add_argument("--window", type=float, default=30.0, help="guard window in seconds (30)")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds a rollback takes to apply (5)")
    args = parser.parse_args(argv)
    processes = Processes()
    with tempfile.TemporaryDirectory(prefix="llmops-canary-") as temp:
        folder = Path(temp)
        try:
            return run(args, processes, folder)
        finally:
            processes.stop_all()


def run(args: argparse.Namespace, processes: Processes, folder: Path) -> int:
    stable_url = start_upstream(processes, folder, "stable")
    canary_url = start_upstream(processes, folder, "canary")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_")}
    env.update({"LLMOPS_HOME": str(folder / "home"), "LLMOPS_LOG_LEVEL": "warning"})
    (folder / "llmops.yaml").write_text("models:\n  - {name: echo, provider: echo}\n")
    env["LLMOPS_CONFIG"] = str(folder / "llmops.yaml")
    key = "sk-bench-canary-0123456789abcdef"
    llmops(env, "keys", "create", "--name", "bench", "--scope", "admin", "--secret", key)
    for name, url in (("stable", stable_url), ("canary", canary_url)):
        serving = json.dumps({"provider": "openai", "base_url": url, "model": name})
        llmops(env, "registry", "register", "support-model", "--serving-json", serving)
    llmops(env, "deploy", "support-model@1", "--as", MODEL)
    port = free_port()
    server = processes.start([*LLMOPS, "serve", "--port", str(port)], folder / "server.log", env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(
                    f"llmops serve did not become ready; see {folder / 'server.log'}"
                ) from None
            time.sleep(0.2)
    llmops(
        env,
        "deploy",
        "support-model@2",
        "--as",
        MODEL,
        "--canary",
        str(args.canary),
        "--window",
        str(args.window),
        "--step-seconds",
        "3600",
    )
    time.sleep(3)  # the server's watcher polls every 2 s
    print(
        f"llmops serve on {base}; {MODEL}: support-model@1 stable, support-model@2 canary at {args.canary}%, "
        f"window {args.window:.0f} s, checks every 5 s; fault: 500 on every {FAULT_EVERY}th canary request "
        f"from {args.fault_after:.0f} s"
    )
    tally = asyncio.run(
        drive(f"{base}/v1/chat/completions", key, args.clients, args.duration, args.fault_after, canary_url)
    )
    return 0 if report(args, tally, rollback_event(env)) else 1


if __name__ == "__main__":
    sys.exit(main())

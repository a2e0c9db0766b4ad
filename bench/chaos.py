#!/usr/bin/env python3
"""Chaos run for the gateway's failover (issue 5): kill an upstream under load, count what clients see.

It starts two fake OpenAI upstreams (``tests/fake_upstream.py``, one process each) and one
``llmops serve`` (``bench/start_llmops.sh``) with one model, ``chaos``, whose two deployments are
those upstreams (short circuit-breaker cooldown, retries). Then, for ``--duration`` seconds, it
keeps ``--concurrency`` requests in flight (a mix of streamed and whole chat completions), while
every ``--kill-every`` seconds one upstream is killed with SIGKILL and started again on the same
port ``--down`` seconds later.

A request counts as an error unless it is HTTP 200 with the expected answer text, and, for a
stream, unless it ends with ``data: [DONE]`` and has no error event. At the end the gateway is
stopped with SIGTERM (which drains its trace queue) and the traces in its SQLite database are
counted: there must be exactly one per request sent.

Only 127.0.0.1 is used, every process it starts is stopped by its PID, and every phase is bounded
in time. Needs the repository's venv (aiohttp): ``.venv/bin/python bench/chaos.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
FAKE_UPSTREAM = ROOT / "tests" / "fake_upstream.py"
START_LLMOPS = ROOT / "bench" / "start_llmops.sh"
API_KEY = "sk-bench-chaos-0123456789abcdef"
ANSWER_PREFIX = "fake answer to: "
MODEL = "chaos"


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no owner
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass
class Upstream:
    """One fake-upstream process on a fixed port."""

    name: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    kills: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 15) -> float:
        """Start it and wait for its ready line; the seconds that took."""
        began = time.monotonic()
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(FAKE_UPSTREAM), "--port", str(self.port), "--name", self.name],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        while time.monotonic() - began < timeout:
            if b" ready on " in self.log_path.read_bytes()[offset:]:
                return time.monotonic() - began
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"upstream {self.name} exited with {self.process.returncode}; see {self.log_path}"
                )
            time.sleep(0.02)
        raise RuntimeError(f"upstream {self.name} not ready after {timeout}s; see {self.log_path}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
            self.kills += 1

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@dataclass
class Tally:
    sent: int = 0
    ok: int = 0
    streams: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    error_examples: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    def fail(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.error_examples) < 10:
            self.error_examples.append(f"{kind}: {detail[:300]}")


def models_json(a: Upstream, b: Upstream, cooldown: float) -> str:
    def deployment(upstream: Upstream) -> dict[str, Any]:
        return {"id": upstream.name, "provider": "openai", "base_url": upstream.base_url, "model": "m"}

    model = {
        "name": MODEL,
        "deployments": [deployment(a), deployment(b)],
        "retry": {
            "max_attempts": 6,
            "backoff_base_seconds": 0.05,
            "backoff_max_seconds": 0.5,
            "deadline_seconds": 20,
        },
        "circuit_breaker": {"consecutive_failures": 3, "cooldown_seconds": cooldown},
        "timeouts": {"connect": 1.0, "first_token": 10, "total": 20},
    }
    return json.dumps([model])


def start_gateway(args: argparse.Namespace, out: Path, models: str) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("LLMOPS_")}
    env.update(
        {
            "UPSTREAM_BASE": "unused",  # the models name both upstreams themselves
            "GATEWAY_PORT": str(args.gateway_port),
            "BENCH_LLMOPS_HOME": str(out / "llmops-home"),
            "BENCH_API_KEY": API_KEY,
            "BENCH_MODELS": models,
        }
    )
    with (out / "gateway.log").open("wb") as log:
        process = subprocess.Popen(["bash", str(START_LLMOPS)], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + args.ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the gateway exited with {process.returncode}; see {out / 'gateway.log'}")
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{args.gateway_port}/readyz", timeout=2
            ) as response:
                if response.status == 200:
                    return process
        except OSError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the gateway was not ready after {args.ready_timeout}s")


def check_stream(body: bytes, expected: str, tally: Tally) -> bool:
    events = [line[6:] for line in body.decode(errors="replace").split("\n") if line.startswith("data: ")]
    if not events or events[-1] != "[DONE]":
        tally.fail("stream_without_done", body[-300:].decode(errors="replace"))
        return False
    text = []
    for event in events[:-1]:
        data = json.loads(event)
        if "error" in data:
            tally.fail("stream_error_event", event)
            return False
        for choice in data.get("choices") or []:
            text.append(choice["delta"].get("content") or "")
    if "".join(text) != expected:
        tally.fail("stream_wrong_text", "".join(text))
        return False
    return True


async def one_request(
    session: aiohttp.ClientSession, url: str, number: int, stream: bool, tally: Tally
) -> None:
    content = f"chaos request {number}"
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": content}]}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        tally.streams += 1
    tally.sent += 1
    began = time.perf_counter()
    try:
        async with session.post(url, json=body) as response:
            payload = await response.read()
            if response.status != 200:
                tally.fail(f"http_{response.status}", payload.decode(errors="replace"))
                return
    except (aiohttp.ClientError, TimeoutError) as exc:
        tally.fail(f"client_{type(exc).__name__}", str(exc))
        return
    expected = ANSWER_PREFIX + content
    if stream:
        if not check_stream(payload, expected, tally):
            return
    else:
        answer = json.loads(payload)
        if answer["choices"][0]["message"]["content"] != expected:
            tally.fail("wrong_text", payload.decode(errors="replace"))
            return
    tally.ok += 1
    tally.latencies.append(time.perf_counter() - began)


async def load(args: argparse.Namespace, tally: Tally, stop_at: float) -> None:
    url = f"http://127.0.0.1:{args.gateway_port}/v1/chat/completions"
    counter = iter(range(10**9))
    rng = random.Random(args.seed)
    timeout = aiohttp.ClientTimeout(total=args.request_timeout)
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:

        async def worker() -> None:
            while time.monotonic() < stop_at:
                await one_request(session, url, next(counter), rng.random() < args.stream_share, tally)

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))


async def chaos(args: argparse.Namespace, upstreams: list[Upstream], began: float, events: list[str]) -> None:
    """Every --kill-every seconds: SIGKILL one upstream, start it again --down seconds later."""
    cycle = 0
    while True:
        kill_at = began + (cycle + 1) * args.kill_every
        if kill_at + args.down >= began + args.duration:
            return
        await asyncio.sleep(max(0.0, kill_at - time.monotonic()))
        victim = upstreams[cycle % len(upstreams)] if args.alternate else upstreams[0]
        victim.kill()
        events.append(f"t={time.monotonic() - began:5.1f}s kill -9 upstream {victim.name}")
        await asyncio.sleep(args.down)
        took = await asyncio.to_thread(victim.start)
        events.append(
            f"t={time.monotonic() - began:5.1f}s upstream {victim.name} back (start took {took:.2f}s)"
        )
        cycle += 1


async def watch_breakers(port: int, began: float, stop_at: float, events: list[str]) -> None:
    """Note every change of the llmops_deployment_circuit_state gauge (sampled every 0.2 s)."""
    states = {0.0: "closed", 1.0: "half-open", 2.0: "open"}
    last: dict[str, float] = {}
    while time.monotonic() < stop_at:
        try:
            metrics = await asyncio.to_thread(scrape, port)
        except OSError:
            metrics = {}
        for name, value in metrics.items():
            if name.startswith("llmops_deployment_circuit_state{"):
                deployment = name.split('deployment="')[1].split('"')[0]
                if last.get(deployment, 0.0) != value:
                    moment = time.monotonic() - began
                    events.append(f"t={moment:5.1f}s breaker of {deployment}: {states.get(value, value)}")
                last[deployment] = value
        await asyncio.sleep(0.2)


async def run_load(args: argparse.Namespace, upstreams: list[Upstream]) -> tuple[Tally, list[str], float]:
    tally, events = Tally(), []
    began = time.monotonic()
    stop_at = began + args.duration
    chaos_task = asyncio.create_task(chaos(args, upstreams, began, events))
    watch_task = asyncio.create_task(watch_breakers(args.gateway_port, began, stop_at, events))
    await load(args, tally, stop_at)
    await chaos_task
    await watch_task
    events.sort(key=lambda event: float(event[2:].split("s", 1)[0]))
    return tally, events, time.monotonic() - began


def scrape(port: int) -> dict[str, float]:
    """The gateway's /metrics, as {'name{labels}': value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def stored_traces(database: Path) -> dict[str, int]:
    with sqlite3.connect(database) as connection:
        total = connection.execute("SELECT count(*) FROM trace").fetchone()[0]
        by_status = dict(connection.execute("SELECT status_code, count(*) FROM trace GROUP BY status_code"))
    return {"total": int(total), **{f"status_{code}": int(count) for code, count in by_status.items()}}


def report(
    args: argparse.Namespace,
    tally: Tally,
    events: list[str],
    seconds: float,
    metrics: dict[str, float],
    traces: dict[str, int],
    exit_code: int,
) -> bool:
    errors = sum(tally.errors.values())
    calls = {name: value for name, value in metrics.items() if name.startswith("llmops_upstream_calls_total")}
    dropped = sum(value for name, value in metrics.items() if name.startswith("llmops_traces_dropped_total"))
    lines = [
        f"chaos run: {seconds:.1f} s, {args.concurrency} in flight, stream share {args.stream_share:.0%}, "
        f"kill -9 every {args.kill_every:g} s, down {args.down:g} s",
        *(f"  {event}" for event in events),
        f"requests sent      {tally.sent} ({tally.streams} streamed) = {tally.sent / seconds:.0f} req/s",
        f"answered correctly {tally.ok}",
        f"client errors      {errors} {dict(tally.errors) if errors else ''}",
        f"latency ms         p50 {percentile(tally.latencies, 0.5) * 1000:.1f}  "
        f"p99 {percentile(tally.latencies, 0.99) * 1000:.1f}  "
        f"max {max(tally.latencies, default=0) * 1000:.1f}",
        "upstream calls     "
        + ", ".join(
            f"{name[len('llmops_upstream_calls_total') :]}={value:.0f}"
            for name, value in sorted(calls.items())
        ),
        f"traces stored      {traces['total']} {traces} (dropped by the writer: {dropped:.0f})",
        f"gateway exit       {exit_code} after SIGTERM",
    ]
    lines += [f"  example error: {example}" for example in tally.error_examples]
    passed = errors == 0 and traces["total"] == tally.sent and dropped == 0
    lines.append(
        f"chaos_result seconds={seconds:.1f} sent={tally.sent} streamed={tally.streams} ok={tally.ok} "
        f"errors={errors} traces={traces['total']} traces_lost={tally.sent - traces['total']} "
        f"kills={sum(1 for event in events if 'kill -9' in event)} {'PASS' if passed else 'FAIL'}"
    )
    print("\n".join(lines), flush=True)
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60, help="seconds of load (default 60)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight (default 64)")
    parser.add_argument("--stream-share", type=float, default=0.5, help="share of streamed requests (0.5)")
    parser.add_argument("--kill-every", type=float, default=10, help="seconds between kills (default 10)")
    parser.add_argument("--down", type=float, default=2, help="seconds an upstream stays dead (default 2)")
    parser.add_argument("--alternate", action="store_true", help="kill a and b in turn (default: always a)")
    parser.add_argument("--cooldown", type=float, default=1.0, help="circuit-breaker cooldown (default 1 s)")
    parser.add_argument("--gateway-port", type=int, default=19300)
    parser.add_argument("--upstream-ports", type=int, nargs=2, default=[19301, 19302])
    parser.add_argument("--request-timeout", type=float, default=30)
    parser.add_argument("--ready-timeout", type=float, default=60)
    parser.add_argument("--drain-timeout", type=float, default=180, help="longest wait for SIGTERM to finish")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument(
        "--out", type=Path, default=None, help="results folder (default /tmp/llmops-chaos-TIME)"
    )
    args = parser.parse_args()

    ports = [args.gateway_port, *args.upstream_ports]
    taken = [port for port in ports if not port_free(port)]
    if taken:
        print(f"chaos.py: port(s) {taken} on 127.0.0.1 are in use; choose others", file=sys.stderr)
        return 2
    out = args.out or Path(f"/tmp/llmops-chaos-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=False)
    upstreams = [
        Upstream(name, port, out / f"upstream-{name}.log")
        for name, port in zip("ab", args.upstream_ports, strict=True)
    ]
    gateway: subprocess.Popen[bytes] | None = None
    try:
        for upstream in upstreams:
            upstream.start()
        gateway = start_gateway(args, out, models_json(*upstreams, args.cooldown))
        tally, events, seconds = asyncio.run(run_load(args, upstreams))
        metrics = scrape(args.gateway_port)
        gateway.send_signal(signal.SIGTERM)  # drains the trace queue into the database
        exit_code = gateway.wait(args.drain_timeout)
        traces = stored_traces(out / "llmops-home" / "llmops.db")
        passed = report(args, tally, events, seconds, metrics, traces, exit_code)
        (out / "result.json").write_text(
            json.dumps({"sent": tally.sent, "ok": tally.ok, "errors": dict(tally.errors), "traces": traces})
        )
        print(f"results in {out}")
        return 0 if passed else 1
    finally:
        if gateway is not None and gateway.poll() is None:
            gateway.kill()
            gateway.wait(10)
        for upstream in upstreams:
            upstream.stop()


if __name__ == "__main__":
    sys.exit(main())

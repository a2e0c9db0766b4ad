#!/usr/bin/env python3
"""Issue 11 target: an alert whose condition becomes true fires to a local webhook receiver within two
evaluation intervals, and resolves likewise.

One `llmops serve` (SQLite under a temporary home, or --database-url) with two models: `echo` (answers)
and `down` (an OpenAI-compatible upstream on a closed port of 127.0.0.1: every request fails with a 5xx),
one rule (error_rate > 0.5 over 1m, at least --min-requests requests, for 0s) and a webhook channel to a
receiver in this process. A client sends --rate requests per second, one at a time, and logs the time and
status of every answer. Each trial:

  fire     requests go to `down` until the receiver gets the firing message;
  resolve  requests go to `echo` until it gets the resolved message.

Before each phase the previous traffic goes on for a random part of an interval (--seed), so that the
change falls at a random moment between two evaluation rounds. The moment the condition became true
(false) is computed from the client's log with the rule's own window (since the start of the minute 60 s
before, until now): the first answer after which errors / requests in the window is above (at most) 0.5
with at least --min-requests requests. Latency = arrival of the message - that moment; the target is at
most 2 x alert_eval_seconds. What the latency is made of: the trace writer's flush (0.25 s), the rollups'
flush (at most every 2 s while traffic flows, and when the writer is idle), the wait for the next round
(up to one interval), and the webhook. So below an interval of about 2 s the rollups' flush, not the
evaluator, sets the delay.

    .venv/bin/python bench/alerts.py                        # intervals 5 s and 10 s, 3 trials each
    .venv/bin/python bench/alerts.py --intervals 1,2,5,10 --trials 5
Stops by itself (each phase is bounded); the server is stopped by its PID. Exit 1 on a missed target.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

THRESHOLD = 0.5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Receiver:
    """Webhook receiver on 127.0.0.1: (wall-clock arrival, body) of every POST."""

    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def start(self) -> str:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                receiver.messages.append((time.time(), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def count(self, status: str) -> int:
        return sum(1 for _, body in self.messages if body["status"] == status)

    def arrival(self, status: str, nth: int) -> float:
        return [at for at, body in self.messages if body["status"] == status][nth - 1]

    def stop(self) -> None:
        self._server.shutdown()


def start_server(
    home: Path, hook: str, interval: float, min_requests: int, database_url: str | None
) -> tuple[subprocess.Popen[bytes], int]:
    config = {
        "models": [
            {"name": "echo", "provider": "echo"},
            {"name": "down", "provider": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1"},
        ],
        "alert_eval_seconds": interval,
        "alert_channels": {"hook": {"type": "webhook", "url": hook}},
        "alerts": [
            {
                "name": "bench-errors",
                "statistic": "error_rate",
                "comparison": ">",
                "threshold": THRESHOLD,
                "window": "1m",
                "min_requests": min_requests,
                "channels": ["hook"],
            }
        ],
    }
    (home / "llmops.yaml").write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_")}
    env.update({"LLMOPS_HOME": str(home), "LLMOPS_LOG_LEVEL": "warning"})
    if database_url:
        env["LLMOPS_DATABASE_URL"] = database_url
    log = (home / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "llmops", "--config", str(home / "llmops.yaml"), "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"llmops serve exited: {(home / 'server.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return process, port
        except (urllib.error.URLError, OSError):
            pass  # not listening yet
        time.sleep(0.2)
    process.kill()
    raise SystemExit("llmops serve not ready after 60 s")


@dataclass
class Client:
    port: int
    log: list[tuple[float, bool]] = field(default_factory=list)  # (wall-clock answer time, failed)

    def call(self, model: str) -> None:
        body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/v1/chat/completions",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                failed = answer.status >= 400
        except urllib.error.HTTPError as exc:
            failed = exc.code >= 400
        self.log.append((time.time(), failed))

    def for_seconds(self, model: str, rate: float, seconds: float) -> None:
        end = time.monotonic() + seconds
        self.until(model, rate, lambda: time.monotonic() >= end, seconds + 30)

    def until(self, model: str, rate: float, done: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise SystemExit(f"no notification within {timeout:.0f} s")
            started = time.monotonic()
            self.call(model)
            time.sleep(max(0.0, 1 / rate - (time.monotonic() - started)))


def crossing(log: list[tuple[float, bool]], after: float, holds: bool, min_requests: int) -> float:
    """The first answer time after ``after`` at which the rule's condition is ``holds``."""
    for index, (at, _) in enumerate(log):
        if at < after:
            continue
        start = int(at - 60) // 60 * 60
        window = [failed for moment, failed in log[: index + 1] if moment >= start]
        rate = sum(window) / len(window)
        condition = len(window) >= min_requests and rate > THRESHOLD
        if condition == holds:
            return at
    raise AssertionError("the condition never changed in the log")


def trial(
    client: Client,
    receiver: Receiver,
    number: int,
    rate: float,
    min_requests: int,
    interval: float,
    pause: float,
) -> tuple[float, float]:
    timeout = 60 + 10 * interval
    client.for_seconds("echo", rate, pause * interval)  # a random phase against the evaluation rounds
    began = time.time()
    client.until("down", rate, lambda: receiver.count("firing") >= number, timeout)
    fire = receiver.arrival("firing", number) - crossing(client.log, began, True, min_requests)
    client.for_seconds("down", rate, pause * interval)
    switched = time.time()
    client.until("echo", rate, lambda: receiver.count("resolved") >= number, timeout)
    resolve = receiver.arrival("resolved", number) - crossing(client.log, switched, False, min_requests)
    return fire, resolve


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--intervals", default="5,10", help="alert_eval_seconds values, comma-separated")
    parser.add_argument("--trials", type=int, default=3, help="fire-and-resolve trials per interval")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second of the client")
    parser.add_argument("--min-requests", type=int, default=5, help="the rule's min_requests")
    parser.add_argument("--seed", type=int, default=11, help="seeds the random pauses between phases")
    parser.add_argument("--database-url", default=None, help="default: SQLite under a temporary home")
    args = parser.parse_args()
    missed = 0
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, {args.rate:g} requests/s")
    print(
        "| interval | trials | fire: median / max (s) | resolve: median / max (s) | target (2 x interval) |"
    )
    print("|---|---|---|---|---|")
    for interval in [float(value) for value in args.intervals.split(",")]:
        receiver = Receiver()
        hook = receiver.start()
        with tempfile.TemporaryDirectory(prefix="llmops-bench-alerts-") as folder:
            process, port = start_server(Path(folder), hook, interval, args.min_requests, args.database_url)
            try:
                client = Client(port)
                pauses = random.Random(args.seed)
                results = [
                    trial(client, receiver, number, args.rate, args.min_requests, interval, pauses.random())
                    for number in range(1, args.trials + 1)
                ]
            finally:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                receiver.stop()
        fires = [fire for fire, _ in results]
        resolves = [resolve for _, resolve in results]
        worst = max(fires + resolves)
        met = worst <= 2 * interval
        missed += not met
        print(
            f"| {interval:g} s | {len(results)} | {statistics.median(fires):.2f} / {max(fires):.2f} | "
            f"{statistics.median(resolves):.2f} / {max(resolves):.2f} | {'met' if met else 'MISSED'} "
            f"(worst {worst:.2f} s of {2 * interval:g} s) |",
            flush=True,
        )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

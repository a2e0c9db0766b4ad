#!/usr/bin/env python3
"""Rate limits and budgets across replicas (issue 9): exact, and what they cost on the hot path.

Targets:
  * two `llmops serve` replicas sharing one Postgres and one Redis, each loaded by --clients
    concurrent clients with the same key: an rpm limit of 6,000 admits between 6,000 and 6,060
    requests per minute in total (the first minute and the steady state after it, each reported);
  * a budget of $1.00 is never exceeded by more than one request's maximum cost, in --runs runs;
  * with limits and a budget enforced through Redis, added p50 at 1 in flight stays under 1 ms over
    the plain path, and peak throughput is at least 60% of the plain path's.

Phases (--phases, default all three):
  rpm       both replicas answer the `echo` model; 2 x --clients clients send back to back for
            --minutes minutes with a key limited to --rpm; admitted (200) and refused (429) answers
            are counted per minute since the load began (by the time each answer arrived), and the
            most admitted in any 60 s is shown as well (it includes the answers' latency jitter).
  budget    --runs times: a new key with a $1.00 total budget, the same load until no request has
            been admitted for 3 s; the key's spend as Redis holds it and as the database holds it
            after the replicas wrote it, against $1.00 + one request's maximum cost.
  overhead  bench/run.sh (nginx fake upstream, wrk) alternated --rounds times between an unlimited
            key (plain) and a key with rpm, tpm, a day and a total budget (limited), both with
            LLMOPS_REDIS_URL set and the same priced model: added p50 at c=1 and peak throughput.

Postgres: a fresh database made from --postgres-url (default $LLMOPS_TEST_POSTGRES_URL) and
dropped at the end; Redis: --redis-url, only the keys of this run are deleted afterwards. Only
127.0.0.1 is used, every process started is stopped by its PID, every phase is bounded in time.
Run with the repository's venv: `.venv/bin/python bench/limits.py [--minutes 3 --runs 10 --rounds 2]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
LLMOPS = [sys.executable, "-m", "llmops"]
WORDS = "what does a limit cost when every replica asks the same redis".split()
# echo answers with the question: 12 words, prompt ~20 tokens. At these prices a request with
# max_tokens 100 may cost 20 x $100/1M + 100 x $200/1M = $0.022 and costs about $0.0044.
PRICES = {"input_price_per_1m": 100.0, "output_price_per_1m": 200.0}
MAX_TOKENS = 100
BUDGET = 1.0
RPM_TARGET_SLACK = 60


@dataclass
class Replica:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/chat/completions"


@dataclass
class Tally:
    admitted: list[float] = field(default_factory=list)  # seconds since the load began, per 200
    refused: int = 0
    refused_codes: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    last_admitted: float = 0.0


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _ready(port: int) -> bool:
    """Whether the replica on ``port`` answers /readyz with 200 (not listening yet is a no)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# --- databases -------------------------------------------------------------------------------


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text

    name = f"llmops_bench_limits_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{admin_url.rpartition('/')[0]}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def create_keys(
    database_url: str, home: Path, specs: dict[str, dict[str, Any]]
) -> dict[str, tuple[str, str]]:
    """name → (key id, secret), through the key service (what `llmops keys create` calls)."""
    from llmops.limits.policy import Limits
    from llmops.services import open_store
    from llmops.settings import load_settings

    store = open_store(load_settings(database_url=database_url, home=home))
    try:
        made = {}
        for name, limits in specs.items():
            created = store.keys.create(name, "inference", limits=Limits(**limits))
            made[name] = (created.row.id, created.secret)
        return made
    finally:
        store.close()


def delete_redis_keys(redis_url: str, key_ids: list[str]) -> None:
    import redis

    with redis.Redis.from_url(redis_url) as client:
        for key_id in key_ids:
            found = list(client.scan_iter(match=f"llmops:limits:key:{key_id}:*", count=1000))
            if found:
                client.delete(*found)


def limited_key_ids(redis_url: str) -> set[str]:
    """The key ids that have counters in Redis now."""
    import redis

    with redis.Redis.from_url(redis_url) as client:
        return {
            name.decode().split(":")[3] for name in client.scan_iter(match="llmops:limits:key:*", count=1000)
        }


def redis_spend(redis_url: str, key_id: str) -> int | None:
    import redis

    with redis.Redis.from_url(redis_url) as client:
        value = client.get(f"llmops:limits:key:{key_id}:s:total:all")
    return None if value is None else int(value)


def database_spend(database_url: str, home: Path, key_id: str) -> float:
    from llmops.services import open_store
    from llmops.settings import load_settings

    store = open_store(load_settings(database_url=database_url, home=home))
    try:
        return store.spend.current("key", [key_id])[key_id]["total"]
    finally:
        store.close()


# --- replicas --------------------------------------------------------------------------------


def start_replicas(
    folder: Path, database_url: str, redis_url: str, ports: list[int], flush_seconds: float
) -> list[Replica]:
    models = [{"name": "echo", "provider": "echo", **PRICES}]
    replicas = []
    for index, port in enumerate(ports):
        home = folder / f"replica-{index}"
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_")}
        env.update(
            {
                "LLMOPS_HOME": str(home),
                "LLMOPS_DATABASE_URL": database_url,
                "LLMOPS_REDIS_URL": redis_url,
                "LLMOPS_MODELS": json.dumps(models),
                "LLMOPS_SPEND_FLUSH_SECONDS": str(flush_seconds),
                "LLMOPS_TRACE_CONTENT": "false",
            }
        )
        log = folder / f"replica-{index}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*LLMOPS, "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                env=env,
                cwd=home,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        replicas.append(Replica(f"replica-{index}", port, process, log))
    deadline = time.monotonic() + 120
    for replica in replicas:
        while True:
            if replica.process.poll() is not None:
                raise RuntimeError(f"{replica.name} exited:\n{replica.log.read_text()[-2000:]}")
            if _ready(replica.port):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{replica.name} not ready in 120 s")
            time.sleep(0.2)
    return replicas


def stop_replicas(replicas: list[Replica]) -> None:
    for replica in replicas:
        if replica.process.poll() is None:
            replica.process.send_signal(signal.SIGTERM)
    for replica in replicas:
        try:
            replica.process.wait(60)
        except subprocess.TimeoutExpired:
            replica.process.kill()
            replica.process.wait(10)


# --- load ------------------------------------------------------------------------------------


def request_body(index: int) -> bytes:
    question = " ".join(WORDS[index % len(WORDS) :] + WORDS[: index % len(WORDS)])
    body = {"model": "echo", "messages": [{"role": "user", "content": question}], "max_tokens": MAX_TOKENS}
    return json.dumps(body).encode()


async def load(
    replicas: list[Replica], secret: str, clients: int, *, seconds: float, idle_stop: float | None = None
) -> Tally:
    """``clients`` connections per replica, back to back, for ``seconds`` (or until ``idle_stop``
    seconds pass without an admission after the first refusal)."""
    tally = Tally()
    began = time.perf_counter()
    stop = asyncio.Event()
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}

    async def client(session: aiohttp.ClientSession, url: str, index: int) -> None:
        body = request_body(index)
        while not stop.is_set():
            try:
                async with session.post(url, data=body, headers=headers) as answer:
                    payload = await answer.read()
                    now = time.perf_counter() - began
                    if answer.status == 200:
                        tally.admitted.append(now)
                        tally.last_admitted = now
                    elif answer.status == 429:
                        tally.refused += 1
                        code = json.loads(payload)["error"]["code"]
                        tally.refused_codes[code] = tally.refused_codes.get(code, 0) + 1
                    else:
                        tally.errors += 1
            except (aiohttp.ClientError, TimeoutError, ValueError):
                tally.errors += 1
                await asyncio.sleep(0.05)

    async def watch() -> None:
        while True:
            await asyncio.sleep(0.2)
            now = time.perf_counter() - began
            if now >= seconds:
                break
            if idle_stop is not None and tally.refused and now - tally.last_admitted > idle_stop:
                break
        stop.set()

    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        tasks = [
            asyncio.create_task(client(session, replica.url, index))
            for replica in replicas
            for index in range(clients)
        ]
        await watch()
        await asyncio.wait(tasks, timeout=40)
        for task in tasks:
            task.cancel()
    return tally


def most_in_any_minute(times: list[float]) -> int:
    ordered = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= 60.0:
            start += 1
        best = max(best, end - start + 1)
    return best


# --- phases ----------------------------------------------------------------------------------


def rpm_phase(replicas: list[Replica], secret: str, args: argparse.Namespace) -> bool:
    say(f"rpm: {len(replicas)} replicas x {args.clients} clients, limit {args.rpm}/min, {args.minutes} min")
    tally = asyncio.run(load(replicas, secret, args.clients, seconds=args.minutes * 60))
    minutes = [0] * args.minutes
    for moment in tally.admitted:
        minute = int(moment // 60)
        if minute < args.minutes:
            minutes[minute] += 1
    answered = len(tally.admitted) + tally.refused
    print(f"\nrpm limit {args.rpm} across {len(replicas)} replicas, {2 * args.clients} clients in all")
    print(
        f"  answers: {answered} ({answered / (args.minutes * 60):.0f}/s), {tally.refused} refused, "
        f"{tally.errors} errors"
    )
    for index, count in enumerate(minutes):
        label = "first minute" if index == 0 else f"minute {index + 1} (steady state)"
        print(f"  {label:<28} admitted {count}")
    peak = most_in_any_minute(tally.admitted)
    print(f"  most admitted in any 60 s (by arrival of the answers): {peak}")
    low, high = args.rpm, args.rpm + RPM_TARGET_SLACK
    ok = all(low <= count <= high for count in minutes) and tally.errors == 0
    first, steady = minutes[0], minutes[1:] or [minutes[0]]
    print(
        f"rpm_result first_minute={first} steady_min={min(steady)} steady_max={max(steady)} "
        f"any_60s_max={peak} errors={tally.errors} target={low}..{high} {'PASS' if ok else 'FAIL'}"
    )
    return ok


def budget_phase(
    replicas: list[Replica],
    keys: list[tuple[str, str]],
    args: argparse.Namespace,
    database_url: str,
    home: Path,
) -> bool:
    max_cost = (20 * PRICES["input_price_per_1m"] + MAX_TOKENS * PRICES["output_price_per_1m"]) / 1e6
    print(
        f"\nbudget ${BUDGET:.2f} in total, {len(replicas)} replicas x {args.clients} clients; "
        "a request may cost"
    )
    print(
        f"  up to ~${max_cost:.4f} (prompt ~20 tokens + max_tokens {MAX_TOKENS}); "
        f"limit ${BUDGET + max_cost:.4f}"
    )
    results = []
    for run, (key_id, secret) in enumerate(keys, 1):
        tally = asyncio.run(load(replicas, secret, args.clients, seconds=90, idle_stop=3.0))
        time.sleep(args.flush_seconds * 2 + 0.5)  # both replicas write their settled spend
        in_redis = redis_spend(args.redis_url, key_id)
        stored = database_spend(database_url, home, key_id)
        redis_usd = None if in_redis is None else in_redis / 1e9
        spent = max(stored, redis_usd or 0.0)
        ok = spent <= BUDGET + max_cost and tally.errors == 0
        results.append((ok, spent))
        print(
            f"  run {run:>2}: admitted {len(tally.admitted):>4}, refused {tally.refused:>6} "
            f"({', '.join(f'{c} {n}' for c, n in sorted(tally.refused_codes.items()))}), "
            f"errors {tally.errors}; "
            f"spent ${redis_usd if redis_usd is not None else float('nan'):.6f} (Redis) "
            f"${stored:.6f} (database) {'PASS' if ok else 'FAIL'}"
        )
    worst = max(spent for _, spent in results)
    ok = all(passed for passed, _ in results)
    print(
        f"budget_result runs={len(results)} worst_spend={worst:.6f} limit={BUDGET + max_cost:.6f} "
        f"{'PASS' if ok else 'FAIL'}"
    )
    return ok


def overhead_phase(args: argparse.Namespace, out: Path) -> bool:
    models = json.dumps([{"name": "fake-model", "provider": "openai", "base_url": "UPSTREAM_BASE", **PRICES}])
    limited = "--rpm 1000000000 --tpm 1000000000 --budget 1000000/day --budget 1000000/total"
    summaries: dict[str, list[dict[str, str]]] = {"plain": [], "limited": []}
    for round_number in range(1, args.rounds + 1):
        for label, options in (("plain", ""), ("limited", limited)):
            folder = out / f"{label}-{round_number}"
            env = {
                **os.environ,
                "BENCH_MODELS": models,
                "BENCH_REDIS_URL": args.redis_url,
                "BENCH_KEY_OPTIONS": options,
            }
            command = [
                "bash",
                str(ROOT / "bench" / "run.sh"),
                "-d", str(args.duration),
                "-r", "1",
                "-w", "2",
                "-c", args.concurrency,
                "--ttft-concurrency", "",
                "--label", label,
                "--upstream-port", str(args.upstream_port),
                "--gateway-port", str(args.gateway_port),
                "--out", str(folder),
            ]  # fmt: skip
            say(f"overhead round {round_number}: {label}")
            before = limited_key_ids(args.redis_url)
            try:
                done = subprocess.run(
                    command, env=env, capture_output=True, text=True, timeout=args.duration * 20 + 300
                )
            finally:  # the run's key was made in its own database, gone now: its counters go too
                delete_redis_keys(args.redis_url, sorted(limited_key_ids(args.redis_url) - before))
            found = re.search(r"^summary (.*)$", done.stdout, re.MULTILINE)
            if done.returncode != 0 or not found:
                print(
                    f"  {label} round {round_number}: run.sh failed ({done.returncode}):\n"
                    f"{done.stderr[-1500:]}"
                )
                return False
            fields = dict(item.split("=", 1) for item in found.group(1).split() if "=" in item)
            summaries[label].append(fields)
            print(
                f"  round {round_number} {label:<8} added p50 {fields['added_p50_ms']} ms, "
                f"peak {fields['peak_rps']} rps"
            )

    def median(label: str, name: str) -> float:
        return statistics.median(float(run[name]) for run in summaries[label])

    plain_p50, limited_p50 = median("plain", "added_p50_ms"), median("limited", "added_p50_ms")
    plain_rps, limited_rps = median("plain", "peak_rps"), median("limited", "peak_rps")
    added = limited_p50 - plain_p50
    ratio = limited_rps / plain_rps
    ok = added < 1.0 and ratio >= 0.6
    print(f"\noverhead (medians of {args.rounds} rounds; run.sh -d {args.duration} -c '{args.concurrency}')")
    print(f"  added p50 at c=1 over the upstream: plain {plain_p50:.3f} ms, limited {limited_p50:.3f} ms")
    print(f"  limits + budget through Redis add {added:.3f} ms at c=1 (target < 1 ms)")
    print(
        f"  peak throughput: plain {plain_rps:.0f} rps, limited {limited_rps:.0f} rps, "
        f"ratio {ratio:.3f} (target >= 0.6)"
    )
    print(f"overhead_result added_p50_ms={added:.3f} peak_ratio={ratio:.3f} {'PASS' if ok else 'FAIL'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--phases", default="rpm budget overhead", help="which phases, in order")
    parser.add_argument("--minutes", type=int, default=3, help="rpm phase: minutes of load (1..30)")
    parser.add_argument("--rpm", type=int, default=6000, help="rpm phase: the key's limit")
    parser.add_argument("--runs", type=int, default=10, help="budget phase: runs (1..50)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients per replica")
    parser.add_argument("--rounds", type=int, default=2, help="overhead phase: run.sh pairs (1..10)")
    parser.add_argument("-d", "--duration", type=int, default=10, help="overhead phase: run.sh -d")
    parser.add_argument("-c", "--concurrency", default="1 32 64", help="overhead phase: run.sh -c")
    parser.add_argument("--flush-seconds", type=float, default=0.5, help="the replicas' spend_flush_seconds")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "LLMOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
        help="admin URL; a fresh database is made from it and dropped",
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("LLMOPS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--ports", default="19510 19511", help="the two replicas' ports (127.0.0.1)")
    parser.add_argument("--upstream-port", type=int, default=19580)
    parser.add_argument("--gateway-port", type=int, default=19500)
    parser.add_argument(
        "--out", type=Path, default=None, help="results folder (default: a new temporary one)"
    )
    args = parser.parse_args()
    phases = args.phases.split()
    if not set(phases) <= {"rpm", "budget", "overhead"} or not phases:
        parser.error("--phases takes rpm, budget and/or overhead")
    if not (
        1 <= args.minutes <= 30 and 1 <= args.runs <= 50 and 1 <= args.rounds <= 10 and args.clients >= 1
    ):
        parser.error("--minutes 1..30, --runs 1..50, --rounds 1..10, --clients >= 1")
    ports = [int(port) for port in args.ports.split()]
    for port in [*ports, args.upstream_port, args.gateway_port]:
        if not port_free(port):
            parser.error(f"port {port} is in use on 127.0.0.1")
    out = args.out or Path(tempfile.mkdtemp(prefix="llmops-bench-limits-"))
    out.mkdir(parents=True, exist_ok=True)
    say(f"results and logs in {out}")
    passed = True
    if "rpm" in phases or "budget" in phases:
        passed = replica_phases(phases, ports, args, out) and passed
    if "overhead" in phases:
        passed = overhead_phase(args, out) and passed
    print(f"limits_result {'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


def replica_phases(phases: list[str], ports: list[int], args: argparse.Namespace, out: Path) -> bool:
    passed = True
    home = out / "keys-home"
    home.mkdir(exist_ok=True)
    with fresh_database(args.postgres_url) as database_url:
        from llmops.store import open_database

        open_database(database_url).dispose()  # migrated before the replicas start
        specs: dict[str, dict[str, Any]] = {"rpm": {"rpm": args.rpm}}
        specs.update({f"budget-{run}": {"budget_total": BUDGET} for run in range(1, args.runs + 1)})
        keys = create_keys(database_url, home, specs)
        replicas: list[Replica] = []
        try:
            replicas = start_replicas(out, database_url, args.redis_url, ports, args.flush_seconds)
            if "rpm" in phases:
                passed = rpm_phase(replicas, keys["rpm"][1], args) and passed
            if "budget" in phases:
                budget_keys = [keys[f"budget-{run}"] for run in range(1, args.runs + 1)]
                passed = budget_phase(replicas, budget_keys, args, database_url, home) and passed
        finally:
            stop_replicas(replicas)
            delete_redis_keys(args.redis_url, [key_id for key_id, _ in keys.values()])
    return passed


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Turn the raw measurements of bench/run.sh into the report (standard library only).

Input: one or more `raw.txt` files, one measurement per line:
    <kind> <target> <concurrency> <repeat> <wrk_result ...|ttft_result ...>
where kind is `load` (wrk, non-streaming) or `ttft` (ttft.py, streaming) and target is
`direct` (the fake upstream) or `gateway`. Each point is the median over its repeats.

Printed: a table per kind, then one `summary` line of key=value pairs, then the pass/fail
of the latency and error targets that this benchmark can judge on its own.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

ADDED_LATENCY_TARGET_MS = 1.0
ADDED_TTFT_TARGET_MS = 1.0

Point = dict[str, float]


def parse(paths: list[Path]) -> dict[tuple[str, str, int], list[Point]]:
    points: dict[tuple[str, str, int], list[Point]] = defaultdict(list)
    for path in paths:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            fields = line.split()
            if len(fields) < 5 or not fields[4].endswith("_result"):
                continue
            kind, target, concurrency = fields[0], fields[1], int(fields[2])
            values: Point = {}
            for pair in fields[5:]:
                name, _, value = pair.partition("=")
                try:
                    values[name] = float(value)
                except ValueError:
                    print(f"{path}:{number}: cannot read {pair!r}", file=sys.stderr)
            points[(kind, target, concurrency)].append(values)
    return points


def median(runs: list[Point], name: str) -> float:
    values = [run[name] for run in runs if name in run and not math.isnan(run[name])]
    return statistics.median(values) if values else math.nan


def cpu_per_request(runs: list[Point]) -> float:
    """Median over runs of the gateway's CPU milliseconds per request (all its threads)."""
    values = [
        run["gateway_cpu_ms"] / run["requests"]
        for run in runs
        if run.get("requests") and "gateway_cpu_ms" in run
    ]
    return statistics.median(values) if values else math.nan


def errors(runs: list[Point]) -> int:
    return int(sum(run.get("errors", 0) for run in runs))


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("raw", nargs="+", type=Path, help="raw.txt file(s) written by bench/run.sh")
    parser.add_argument("--label", default="llmops", help="name of the gateway column (default llmops)")
    args = parser.parse_args()
    points = parse(args.raw)
    label = args.label
    load_levels = sorted({c for kind, _, c in points if kind == "load"})
    ttft_levels = sorted({c for kind, _, c in points if kind == "ttft"})
    if not load_levels and not ttft_levels:
        print("no measurements found", file=sys.stderr)
        return 1

    summary: dict[str, str] = {}
    total_errors = 0
    traces_dropped = 0
    if load_levels:
        repeats = max(len(points[k]) for k in points if k[0] == "load")
        print("Non-streaming POST /v1/chat/completions: wrk, closed loop, c connections in flight")
        print(
            f"(median of {repeats} run(s); latency in ms; rps = requests per second;"
            f" cpu ms/req = {label}'s CPU time per request, all threads)"
        )
        print(
            f"{'c':>4} | {'direct rps':>10} {'p50':>7} {'p99':>7} |"
            f" {label + ' rps':>11} {'p50':>7} {'p99':>7} {'errors':>6}"
            f" | {'added p50':>9} {'rps ratio':>9} {'cpu ms/req':>10}"
        )
        peak_gateway = (0.0, 0)
        peak_direct = 0.0
        for c in load_levels:
            direct, gateway = points.get(("load", "direct", c), []), points.get(("load", "gateway", c), [])
            d_rps, g_rps = median(direct, "rps"), median(gateway, "rps")
            d_p50, g_p50 = median(direct, "p50_ms"), median(gateway, "p50_ms")
            d_p99, g_p99 = median(direct, "p99_ms"), median(gateway, "p99_ms")
            err = errors(gateway) + errors(direct)
            total_errors += err
            ratio = g_rps / d_rps if d_rps else math.nan
            print(
                f"{c:>4} | {d_rps:>10.0f} {d_p50:>7.3f} {d_p99:>7.3f} |"
                f" {g_rps:>11.1f} {g_p50:>7.3f} {g_p99:>7.3f} {err:>6}"
                f" | {g_p50 - d_p50:>9.3f} {ratio:>9.4f} {cpu_per_request(gateway):>10.3f}"
            )
            if g_rps > peak_gateway[0]:
                peak_gateway = (g_rps, c)
            peak_direct = max(peak_direct, d_rps)
            if c == load_levels[0]:
                summary["added_p50_ms"] = f"{g_p50 - d_p50:.3f}"
                summary["added_p50_at_c"] = str(c)
        if any(
            "traces_written" in run for c in load_levels for run in points.get(("load", "gateway", c), [])
        ):
            print()
            print(f"Tracing during the {label} load runs (from its /metrics; the request path only queues")
            print("a trace, a background writer stores it; the queue drains while the direct runs go on)")
            print(
                f"{'c':>4} | {'requests/s':>10} {'traces stored/s':>15} {'queue at end':>12} {'dropped':>7}"
            )
            for c in load_levels:
                gateway = points.get(("load", "gateway", c), [])
                stored = [run["traces_written"] / run["seconds"] for run in gateway if run.get("seconds")]
                queue = max((run.get("trace_queue_end", 0) for run in gateway), default=0)
                dropped = int(sum(run.get("traces_dropped", 0) for run in gateway))
                traces_dropped += dropped
                stored_rate = statistics.median(stored) if stored else math.nan
                print(
                    f"{c:>4} | {median(gateway, 'rps'):>10.1f} {stored_rate:>15.1f}"
                    f" {queue:>12.0f} {dropped:>7}"
                )
        summary["peak_rps"] = f"{peak_gateway[0]:.1f}"
        summary["peak_rps_at_c"] = str(peak_gateway[1])
        summary["direct_peak_rps"] = f"{peak_direct:.0f}"
        summary["rps_ratio"] = f"{peak_gateway[0] / peak_direct:.5f}" if peak_direct else "nan"
        print()

    if ttft_levels:
        repeats = max(len(points[k]) for k in points if k[0] == "ttft")
        print('Streaming ("stream": true, stream_options.include_usage): time to first SSE event, ttft.py')
        print(f"(median of {repeats} run(s); ms; whole = time to the end of the stream)")
        print(
            f"{'c':>4} | {'direct ttft':>11} {'p99':>7} {'whole':>7} | {label + ' ttft':>11} {'p99':>7}"
            f" {'whole':>7} {'errors':>6} | {'added ttft':>10} {'added whole':>11}"
        )
        for c in ttft_levels:
            direct, gateway = points.get(("ttft", "direct", c), []), points.get(("ttft", "gateway", c), [])
            d_t, g_t = median(direct, "ttft_p50_ms"), median(gateway, "ttft_p50_ms")
            d_t99, g_t99 = median(direct, "ttft_p99_ms"), median(gateway, "ttft_p99_ms")
            d_w, g_w = median(direct, "total_p50_ms"), median(gateway, "total_p50_ms")
            err = errors(gateway) + errors(direct)
            total_errors += err
            print(
                f"{c:>4} | {d_t:>11.3f} {d_t99:>7.3f} {d_w:>7.3f} | {g_t:>11.3f} {g_t99:>7.3f} {g_w:>7.3f}"
                f" {err:>6} | {g_t - d_t:>10.3f} {g_w - d_w:>11.3f}"
            )
            if c == ttft_levels[0]:
                summary["added_ttft_ms"] = f"{g_t - d_t:.3f}"
                summary["added_ttft_at_c"] = str(c)
        print()

    summary["errors"] = str(total_errors)
    summary["traces_dropped"] = str(traces_dropped)
    print("summary " + " ".join(f"{k}={v}" for k, v in summary.items()))
    print("targets (the throughput targets against LiteLLM and the pass-through need the shared harness):")
    if summary.get("added_p50_at_c") == "1":
        added = float(summary["added_p50_ms"])
        print(
            f"  added p50 latency at c=1 < {ADDED_LATENCY_TARGET_MS:g} ms: "
            f"{verdict(added < ADDED_LATENCY_TARGET_MS)} ({added:.3f} ms)"
        )
    else:
        print("  added p50 latency at c=1: not measured (add 1 to --concurrency)")
    if summary.get("added_ttft_at_c") == "1":
        added = float(summary["added_ttft_ms"])
        print(
            f"  added time to first streamed event at c=1 < {ADDED_TTFT_TARGET_MS:g} ms: "
            f"{verdict(added < ADDED_TTFT_TARGET_MS)} ({added:.3f} ms)"
        )
    else:
        print("  added time to first streamed event at c=1: not measured (--ttft-concurrency 1)")
    print(f"  zero errors: {verdict(total_errors == 0)} ({total_errors})")
    print(f"  zero dropped traces: {verdict(traces_dropped == 0)} ({traces_dropped})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

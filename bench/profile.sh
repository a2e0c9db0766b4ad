#!/usr/bin/env bash
# Where llmops spends its CPU under load: the fake upstream (nginx + Lua), the gateway
# (bench/start_llmops.sh, so BENCH_MODELS / BENCH_DATABASE_URL / BENCH_REDIS_URL apply), wrk at a fixed
# concurrency, and py-spy sampling the gateway meanwhile. Prints the functions with the most samples
# (own time and time including callees) and keeps the raw collapsed stacks for a flame graph.
#
# usage: bench/profile.sh [-c CONCURRENCY] [-d SECONDS] [--out DIR]   (non-streaming chat.completions)
# needs: bench/setup.sh (nginx, wrk), py-spy in the venv (bench/setup.sh --profile)
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
CONCURRENCY=32
DURATION=15
OUT=""
UPSTREAM_PORT=${UPSTREAM_PORT:-19280}
GATEWAY_PORT=${GATEWAY_PORT:-19200}
while [ $# -gt 0 ]; do
  case "$1" in
    -c) CONCURRENCY=$2; shift 2 ;;
    -d) DURATION=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "profile.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
PYSPY=${PYSPY:-$ROOT/.venv/bin/py-spy}
[ -x "$PYSPY" ] || { echo "profile.sh: no py-spy at $PYSPY (bench/setup.sh --profile)" >&2; exit 2; }
OUT=${OUT:-/tmp/llmops-bench/profile-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/upstream"

UPSTREAM_PID="" GATEWAY_PID=""
cleanup() {
  [ -n "$GATEWAY_PID" ] && kill -TERM -- "-$GATEWAY_PID" 2>/dev/null && wait "$GATEWAY_PID" 2>/dev/null
  [ -n "$UPSTREAM_PID" ] && kill "$UPSTREAM_PID" 2>/dev/null && wait "$UPSTREAM_PID" 2>/dev/null
}
trap cleanup EXIT

sed -e "s#__PORT__#$UPSTREAM_PORT#g" -e "s#__STATE__#$OUT/upstream#g" -e "s#__LUA__#$HERE/upstream#g" \
  "$HERE/upstream/nginx.conf.in" > "$OUT/upstream/nginx.conf"
nginx -p "$OUT/upstream" -c "$OUT/upstream/nginx.conf" -g 'daemon off;' </dev/null >/dev/null 2>&1 &
UPSTREAM_PID=$!

export UPSTREAM_BASE="http://127.0.0.1:$UPSTREAM_PORT/v1" GATEWAY_PORT
BENCH_LLMOPS_HOME="$OUT/home" setsid "$HERE/start_llmops.sh" >"$OUT/gateway.log" 2>&1 &
GATEWAY_PID=$!
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$GATEWAY_PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$GATEWAY_PORT/readyz" >/dev/null || { echo "gateway not ready" >&2; cat "$OUT/gateway.log" >&2; exit 1; }

export BENCH_KEY=${BENCH_API_KEY:-sk-bench-0123456789abcdef} BENCH_MODEL=${BENCH_MODEL:-fake-model}
timeout $((DURATION + 30)) wrk -t1 -c"$CONCURRENCY" -d"$((DURATION + 2))s" -s "$HERE/wrk_load.lua" \
  "http://127.0.0.1:$GATEWAY_PORT/v1/chat/completions" >"$OUT/wrk.txt" 2>&1 &
WRK=$!
sleep 1
"$PYSPY" record --pid "$GATEWAY_PID" --duration "$DURATION" --rate 500 --format raw --nonblocking \
  --output "$OUT/stacks.txt" >"$OUT/py-spy.log" 2>&1
wait "$WRK"
grep -E "Requests/sec|wrk_result" "$OUT/wrk.txt"

python3 - "$OUT/stacks.txt" <<'EOF'
import collections, sys
own, total = collections.Counter(), collections.Counter()
samples = 0
for line in open(sys.argv[1]):
    stack, _, count = line.rstrip().rpartition(" ")
    if not count.isdigit():
        continue
    count = int(count)
    frames = [frame.split(" (")[0] + " (" + frame.split(" (")[1].split(":")[0].split("/")[-1] + ")"
              if " (" in frame else frame for frame in stack.split(";")]
    samples += count
    own[frames[-1]] += count
    for frame in set(frames):
        total[frame] += count
print(f"{samples} samples")
print("own time (top 25)")
for frame, count in own.most_common(25):
    print(f"  {100 * count / samples:5.1f}%  {frame}")
print("including callees (top 40)")
for frame, count in total.most_common(40):
    print(f"  {100 * count / samples:5.1f}%  {frame}")
EOF
echo "raw stacks: $OUT/stacks.txt"

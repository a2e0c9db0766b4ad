#!/usr/bin/env bash
# Two start-up figures for bench/RESULTS.md:
#   1. idle memory of `llmops serve` with the default settings and no models configured, i.e. with
#      the embedded local models loaded: VmRSS from /proc/PID/status once GET /readyz answers 200;
#   2. wall time of `llmops --help` (the CLI's import cost), with hyperfine when installed, else a loop.
# It uses a fresh LLMOPS_HOME and an empty working folder, so no llmops.yaml or database of the
# user's is read. It stops the server it started (by PID) on exit. Needs the `local` extra installed.
# usage: bench/footprint.sh [--port N (4000, the default port)] [--runs N (3 servers, 20 --help runs x N/3)]
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LLMOPS_BIN=${LLMOPS_BIN:-$ROOT/.venv/bin/llmops}
PORT=4000
RUNS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --port) PORT=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "footprint.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x "$LLMOPS_BIN" ] || { echo "footprint.sh: no llmops at $LLMOPS_BIN" >&2; exit 2; }
if ss -Hltn "sport = :$PORT" 2>/dev/null | grep -q .; then echo "footprint.sh: port $PORT is in use" >&2; exit 1; fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/llmops-footprint.XXXXXX")
SERVER_PID=""
stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=""
}
trap 'stop_server; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM
# nothing from the caller's environment may change the defaults being measured
for name in $(env | sed -n 's/^\(LLMOPS_[A-Z_]*\)=.*/\1/p'); do unset "$name"; done

echo "== idle RSS of 'llmops serve' (default settings, embedded models), $RUNS start(s)"
for run in $(seq 1 "$RUNS"); do
  home="$WORK/home-$run"
  mkdir -p "$home"
  (cd "$home" && LLMOPS_HOME="$home" exec "$LLMOPS_BIN" serve --port "$PORT") >"$WORK/serve-$run.log" 2>&1 &
  SERVER_PID=$!
  started=$(date +%s.%N)
  code=""
  for _ in $(seq 1 600); do  # up to 5 minutes
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$PORT/readyz")
    [ "$code" = 200 ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.5
  done
  if [ "$code" != 200 ]; then echo "not ready (HTTP $code):" >&2; tail -n 20 "$WORK/serve-$run.log" >&2; exit 1; fi
  ready=$(echo "$(date +%s.%N) - $started" | bc)
  sleep 5  # let start-up work settle
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status")
  hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$SERVER_PID/status")
  anon=$(awk '/^RssAnon/ {print $2}' "/proc/$SERVER_PID/status")
  file=$(awk '/^RssFile/ {print $2}' "/proc/$SERVER_PID/status")
  models=$(curl -s --max-time 2 "http://127.0.0.1:$PORT/v1/models" | python3 -c 'import json,sys; print(",".join(m["id"] for m in json.load(sys.stdin)["data"]))')
  printf 'run %d: ready after %.1f s; VmRSS %d kB (%.1f MiB; anon %d kB, file %d kB); VmHWM %d kB; models %s\n' \
    "$run" "$ready" "$rss" "$(echo "$rss / 1024" | bc -l)" "$anon" "$file" "$hwm" "$models"
  stop_server
done

echo "== wall time of 'llmops --help'"
cd "$WORK" || exit 1
if command -v hyperfine >/dev/null 2>&1; then
  hyperfine --warmup 3 --runs $((20 * RUNS / 3 > 10 ? 20 * RUNS / 3 : 10)) -N "$LLMOPS_BIN --help"
else
  n=$((20 * RUNS / 3 > 10 ? 20 * RUNS / 3 : 10))
  "$LLMOPS_BIN" --help >/dev/null
  start=$(date +%s.%N)
  for _ in $(seq 1 "$n"); do "$LLMOPS_BIN" --help >/dev/null; done
  printf 'mean of %d runs: %.1f ms (hyperfine not installed: bench/setup.sh --profile)\n' \
    "$n" "$(echo "($(date +%s.%N) - $start) * 1000 / $n" | bc -l)"
fi

#!/usr/bin/env bash
# llmops gateway benchmark: what does llmops add to a request?
# The same fixed-concurrency load goes straight to a fake OpenAI upstream (nginx + Lua, 127.0.0.1)
# and through llmops pointed at that upstream, interleaved; then a streaming client times the first
# SSE event both ways. See bench/README.md. Everything it starts, it stops (trap on exit and Ctrl-C).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

usage() {
  cat <<'EOF'
usage: bench/run.sh [options]

Measures llmops (or another gateway) against a fake OpenAI upstream on 127.0.0.1:
  load   non-streaming chat.completions, wrk closed loop, at each --concurrency level
  ttft   streaming chat.completions, time to first SSE event, ttft.py at each --ttft-concurrency level
Direct and gateway runs alternate at every point; each point is repeated --repeats times (medians).

options (default):
  -d, --duration S          seconds per measured point (10)
  -r, --repeats N           runs per point; the report shows medians (2)
  -c, --concurrency "L"     requests in flight for the load runs ("1 32 64")
      --ttft-concurrency "L"  streams in flight for the TTFT runs ("1"; "" skips streaming)
  -w, --warmup S            warm-up seconds per target before measuring (3)
      --threads N           wrk threads (1; lowered to c when c is smaller)
      --gateway-cmd CMD     how to start the gateway, run with bash -c in its own process group, with
                            UPSTREAM_BASE, UPSTREAM_PORT and GATEWAY_PORT set (bench/start_llmops.sh)
      --api-key KEY         Bearer key sent to the gateway (sk-bench-0123456789abcdef)
      --model NAME          model name sent in requests (fake-model)
      --label NAME          gateway name in the report and the results folder (llmops)
      --upstream-port N     fake upstream port (19080)
      --gateway-port N      gateway port (19000)
      --ready-timeout S     how long to wait for the gateway to answer (120)
      --pin                 CPU 0: upstream and load clients; CPU 1: the gateway (taskset)
      --out DIR             results folder (/tmp/llmops-bench/LABEL-YYYYmmdd-HHMMSS)
      --keep-db             keep llmops's database (DIR/llmops-home, ~0.8 kB per request) after the run
  -h, --help                this text

Needs nginx with the Lua module, wrk and curl: run bench/setup.sh once.
Output: DIR/report.txt (also printed), DIR/raw.txt (one line per run), DIR/meta.txt, DIR/gateway.log.
Time taken is about (2 x levels + 2 x ttft levels) x duration x repeats, plus warm-up and start-up.
EOF
}

DURATION=10
REPEATS=2
CONCURRENCY="1 32 64"
TTFT_CONCURRENCY="1"
WARMUP=3
THREADS=1
GATEWAY_CMD="$HERE/start_llmops.sh"
API_KEY=sk-bench-0123456789abcdef
MODEL=fake-model
LABEL=llmops
UPSTREAM_PORT=19080
GATEWAY_PORT=19000
READY_TIMEOUT=120
PIN=0
OUT=""
KEEP_DB=0

need_value() { [ $# -ge 2 ] || { echo "run.sh: $1 needs a value" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
  case "$1" in
    -d|--duration) need_value "$@"; DURATION=$2; shift 2 ;;
    -r|--repeats) need_value "$@"; REPEATS=$2; shift 2 ;;
    -c|--concurrency) need_value "$@"; CONCURRENCY=$2; shift 2 ;;
    --ttft-concurrency) need_value "$@"; TTFT_CONCURRENCY=$2; shift 2 ;;
    -w|--warmup) need_value "$@"; WARMUP=$2; shift 2 ;;
    --threads) need_value "$@"; THREADS=$2; shift 2 ;;
    --gateway-cmd) need_value "$@"; GATEWAY_CMD=$2; shift 2 ;;
    --api-key) need_value "$@"; API_KEY=$2; shift 2 ;;
    --model) need_value "$@"; MODEL=$2; shift 2 ;;
    --label) need_value "$@"; LABEL=$2; shift 2 ;;
    --upstream-port) need_value "$@"; UPSTREAM_PORT=$2; shift 2 ;;
    --gateway-port) need_value "$@"; GATEWAY_PORT=$2; shift 2 ;;
    --ready-timeout) need_value "$@"; READY_TIMEOUT=$2; shift 2 ;;
    --pin) PIN=1; shift ;;
    --out) need_value "$@"; OUT=$2; shift 2 ;;
    --keep-db) KEEP_DB=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

is_int() { [[ $1 =~ ^[0-9]+$ ]]; }
for n in "$DURATION" "$REPEATS" "$WARMUP" "$THREADS" "$UPSTREAM_PORT" "$GATEWAY_PORT" "$READY_TIMEOUT"; do
  is_int "$n" || { echo "run.sh: expected a whole number, got '$n'" >&2; exit 2; }
done
for c in $CONCURRENCY $TTFT_CONCURRENCY; do
  { is_int "$c" && [ "$c" -ge 1 ] && [ "$c" -le 1024 ]; } || { echo "run.sh: bad concurrency '$c'" >&2; exit 2; }
done
{ [ "$DURATION" -ge 1 ] && [ "$DURATION" -le 600 ]; } || { echo "run.sh: --duration must be 1..600" >&2; exit 2; }
{ [ "$REPEATS" -ge 1 ] && [ "$REPEATS" -le 20 ]; } || { echo "run.sh: --repeats must be 1..20" >&2; exit 2; }
[ "$UPSTREAM_PORT" != "$GATEWAY_PORT" ] || { echo "run.sh: the two ports must differ" >&2; exit 2; }
[ -n "$CONCURRENCY" ] || [ -n "$TTFT_CONCURRENCY" ] || { echo "run.sh: nothing to measure" >&2; exit 2; }

missing=""
for tool in nginx wrk curl python3 setsid timeout; do command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"; done
[ -e /usr/lib/nginx/modules/ngx_http_lua_module.so ] || missing="$missing nginx-lua-module"
[ "$PIN" = 0 ] || command -v taskset >/dev/null 2>&1 || missing="$missing taskset"
[ -z "$missing" ] || { echo "run.sh: missing:$missing (run bench/setup.sh)" >&2; exit 2; }

port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q . ; }
for p in "$UPSTREAM_PORT" "$GATEWAY_PORT"; do
  if port_busy "$p"; then echo "run.sh: port $p is already in use on this machine" >&2; exit 1; fi
done

OUT=${OUT:-/tmp/llmops-bench/$LABEL-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/upstream" || exit 1
RAW="$OUT/raw.txt"
: > "$RAW"
UPSTREAM_BASE="http://127.0.0.1:$UPSTREAM_PORT/v1"
DIRECT_URL="$UPSTREAM_BASE/chat/completions"
GATEWAY_URL="http://127.0.0.1:$GATEWAY_PORT/v1/chat/completions"
PIN_LOAD=()
PIN_GATEWAY=()
if [ "$PIN" = 1 ]; then PIN_LOAD=(taskset -c 0); PIN_GATEWAY=(taskset -c 1); fi

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---- process bookkeeping: every child is remembered by PID and stopped on exit -------------------
UPSTREAM_PID=""
GATEWAY_PID=""   # also the id of the process group that setsid created for the gateway command
CLIENT_PID=""

stop_pid() {  # pid [is_group]: TERM, wait up to 10 s, then KILL
  local pid=$1 group=${2:-0} target=$1
  [ -n "$pid" ] || return 0
  [ "$group" = 1 ] && target="-$pid"
  kill -TERM -- "$target" 2>/dev/null || return 0
  for _ in $(seq 1 50); do
    if [ "$group" = 1 ]; then pgrep -g "$pid" >/dev/null 2>&1 || break; else kill -0 "$pid" 2>/dev/null || break; fi
    sleep 0.2
  done
  kill -KILL -- "$target" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}

cleanup() {
  trap - EXIT INT TERM
  stop_pid "$CLIENT_PID"; CLIENT_PID=""
  if [ -n "$GATEWAY_PID" ]; then
    # setsid made the gateway command a group leader: stop the whole group by its id
    if [ "$(ps -o pgid= -p "$GATEWAY_PID" 2>/dev/null | tr -d ' ')" = "$GATEWAY_PID" ]; then
      stop_pid "$GATEWAY_PID" 1
    else
      stop_pid "$GATEWAY_PID"
    fi
    GATEWAY_PID=""
  fi
  stop_pid "$UPSTREAM_PID"; UPSTREAM_PID=""
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# Clients run in the background and are waited for, so that Ctrl-C reaches the trap at once.
# `timeout` bounds each one to its duration plus a minute, whatever happens to the target.
run_client() {  # seconds output-file command...
  local secs=$1 out=$2
  shift 2
  timeout -k 5 $((secs + 60)) "${PIN_LOAD[@]}" "$@" > "$out" 2>>"$OUT/client-errors.log" &
  CLIENT_PID=$!
  wait "$CLIENT_PID"
  local rc=$?
  CLIENT_PID=""
  return $rc
}

# CPU time (ms) used so far by every process in the gateway's process group.
TICKS=$(getconf CLK_TCK)
gateway_cpu_ms() {
  local total=0 pid fields
  for pid in $(pgrep -g "$GATEWAY_PID" 2>/dev/null); do
    fields=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
    # after the command name: field 12 = utime, 13 = stime (in clock ticks)
    total=$((total + $(echo "$fields" | awk '{print $12 + $13}')))
  done
  echo $((total * 1000 / TICKS))
}

# The gateway's trace counters from GET /metrics (llmops only; zeros for a gateway without them):
# "written dropped queue_depth". The request path only queues traces; the writer stores them later.
trace_counters() {
  curl -s --max-time 5 "http://127.0.0.1:$GATEWAY_PORT/metrics" 2>/dev/null | awk '
    /^llmops_traces_written_total/ {w += $NF}
    /^llmops_traces_dropped_total/ {d += $NF}
    /^llmops_trace_queue_depth/ {q = $NF}
    END {printf "%d %d %d\n", w, d, q}'
}

# ---- what was measured, on what ------------------------------------------------------------
{
  echo "date: $(date -Is)"
  echo "machine: $(uname -srm); $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p') x $(nproc) CPUs"
  echo "memory: $(free -m | awk '/^Mem:/ {print $2 " MiB"}')"
  echo "tools: $(nginx -v 2>&1 | sed 's/^.*: //'); wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'); $(python3 -V 2>&1) (clients)"
  if [ -x "$ROOT/.venv/bin/llmops" ]; then
    echo "llmops: $("$ROOT/.venv/bin/llmops" --version 2>/dev/null) ($("$ROOT/.venv/bin/python" -V 2>&1)); git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
  fi
  echo "gateway: $LABEL, started with: $GATEWAY_CMD"
  echo "options: concurrency='$CONCURRENCY' ttft_concurrency='$TTFT_CONCURRENCY' duration=${DURATION}s repeats=$REPEATS warmup=${WARMUP}s wrk_threads=$THREADS pin=$PIN"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$OUT/meta.txt"

# ---- the fake upstream ----------------------------------------------------------------------
sed -e "s#__PORT__#$UPSTREAM_PORT#g" -e "s#__STATE__#$OUT/upstream#g" -e "s#__LUA__#$HERE/upstream#g" \
  "$HERE/upstream/nginx.conf.in" > "$OUT/upstream/nginx.conf"
if ! nginx -t -q -p "$OUT/upstream" -c "$OUT/upstream/nginx.conf" -g 'daemon off;' 2>"$OUT/upstream/test.log"; then
  cat "$OUT/upstream/test.log" >&2; exit 1
fi
"${PIN_LOAD[@]}" nginx -p "$OUT/upstream" -c "$OUT/upstream/nginx.conf" -g 'daemon off;' \
  </dev/null >"$OUT/upstream/stdout.log" 2>&1 &
UPSTREAM_PID=$!
for _ in $(seq 1 50); do
  curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$UPSTREAM_PORT/ping" && break
  kill -0 "$UPSTREAM_PID" 2>/dev/null || { echo "run.sh: nginx exited:" >&2; cat "$OUT/upstream/"*.log >&2; exit 1; }
  sleep 0.1
done
say "fake upstream: nginx pid $UPSTREAM_PID at $UPSTREAM_BASE"

# ---- the gateway ----------------------------------------------------------------------------
# start_llmops.sh keeps its SQLite database in the results folder (BENCH_LLMOPS_HOME)
UPSTREAM_BASE=$UPSTREAM_BASE UPSTREAM_PORT=$UPSTREAM_PORT GATEWAY_PORT=$GATEWAY_PORT \
  BENCH_LLMOPS_HOME="$OUT/llmops-home" setsid "${PIN_GATEWAY[@]}" bash -c "$GATEWAY_CMD" </dev/null >"$OUT/gateway.log" 2>&1 &
GATEWAY_PID=$!
say "gateway ($LABEL): pid and process group $GATEWAY_PID, log $OUT/gateway.log"

body() {  # $1 = stream flag (true|false)
  local extra=""
  [ "$1" = true ] && extra=',"stream":true,"stream_options":{"include_usage":true}'
  printf '{"model":"%s","messages":[{"role":"user","content":"What is a gateway benchmark for?"}],"max_tokens":24%s}' \
    "$MODEL" "$extra"
}
AUTH=(-H "Authorization: Bearer $API_KEY")
[ -n "$API_KEY" ] || AUTH=()

started=$SECONDS
until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "${AUTH[@]}" -H 'Content-Type: application/json' \
           -d "$(body false)" "$GATEWAY_URL" 2>/dev/null)" = 200 ]; do
  if ! kill -0 "$GATEWAY_PID" 2>/dev/null; then
    echo "run.sh: the gateway command exited; its log ends with:" >&2; tail -n 20 "$OUT/gateway.log" >&2; exit 1
  fi
  if [ $((SECONDS - started)) -ge "$READY_TIMEOUT" ]; then
    echo "run.sh: the gateway did not answer 200 within ${READY_TIMEOUT}s" >&2; tail -n 20 "$OUT/gateway.log" >&2; exit 1
  fi
  sleep 0.25
done
say "gateway answers after $((SECONDS - started))s"

# ---- correctness first: both targets must give the same, complete answers ---------------------
check() {  # name url [curl args...]
  local name=$1 url=$2
  shift 2
  curl -s --max-time 10 "$@" -H 'Content-Type: application/json' -d "$(body false)" "$url" > "$OUT/check-$name.json"
  curl -s -N --max-time 10 "$@" -H 'Content-Type: application/json' -d "$(body true)" "$url" > "$OUT/check-$name.sse"
  python3 - "$OUT/check-$name.json" "$OUT/check-$name.sse" <<'PY'
import json, sys
whole = json.load(open(sys.argv[1]))
assert whole["choices"][0]["message"]["content"] == "The llmops bench upstream says hello.", whole
assert whole["usage"]["total_tokens"] == 21, whole
events = [line[len("data:"):].strip() for line in open(sys.argv[2]) if line.startswith("data:")]
assert events and events[-1] == "[DONE]", events[-2:]
chunks = [json.loads(e) for e in events[:-1]]
text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
assert text == "The llmops bench upstream says hello.", text
assert any(c.get("usage") for c in chunks), "no usage chunk although include_usage was asked"
PY
}
check direct "$DIRECT_URL" || { echo "run.sh: the fake upstream's answers are wrong (see $OUT/check-direct.*)" >&2; exit 1; }
check gateway "$GATEWAY_URL" "${AUTH[@]}" || { echo "run.sh: the gateway's answers are wrong (see $OUT/check-gateway.*)" >&2; exit 1; }
if [ -n "$API_KEY" ]; then
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H 'Content-Type: application/json' -d "$(body false)" "$GATEWAY_URL")
  [ "$code" = 401 ] || { echo "run.sh: the gateway answered $code, not 401, to a request without a key" >&2; exit 1; }
fi
say "checks passed: same JSON answer with usage, same SSE stream with a usage chunk and [DONE]${API_KEY:+, 401 without the key}"

# ---- measuring ------------------------------------------------------------------------------
load_point() {  # target url c seconds repeat key
  local target=$1 url=$2 c=$3 secs=$4 rep=$5 key=$6 threads=$THREADS cpu0=0 cpu1 line extra=""
  [ "$threads" -gt "$c" ] && threads=$c
  local t0 t1
  if [ "$target" = gateway ]; then cpu0=$(gateway_cpu_ms); read -r -a t0 <<< "$(trace_counters)"; fi
  run_client "$secs" "$OUT/client.out" env BENCH_MODEL="$MODEL" BENCH_KEY="$key" \
    wrk -t"$threads" -c"$c" -d"${secs}s" --timeout 30s -s "$HERE/wrk_load.lua" "$url"
  if [ "$target" = gateway ]; then
    cpu1=$(gateway_cpu_ms)
    read -r -a t1 <<< "$(trace_counters)"
    extra=" gateway_cpu_ms=$((cpu1 - cpu0)) traces_written=$((t1[0] - t0[0])) traces_dropped=$((t1[1] - t0[1]))"
    extra="$extra trace_queue_end=${t1[2]}"
  fi
  line=$(grep -m1 '^wrk_result' "$OUT/client.out")
  [ -n "$line" ] || { line="wrk_result requests=0 rps=0 errors=1"; say "wrk gave no result for $target c=$c"; }
  [ "$rep" = warmup ] && return 0
  echo "load $target $c $rep $line$extra" >> "$RAW"
  say "load  c=$c $target run $rep: $(echo "$line" | awk '{print $4, $5, $7, $9}')"
}
ttft_point() {  # target url c seconds repeat key
  local target=$1 url=$2 c=$3 secs=$4 rep=$5 key=$6 line
  run_client "$secs" "$OUT/client.out" python3 "$HERE/ttft.py" "$url" --model "$MODEL" --key "$key" -c "$c" -d "$secs"
  line=$(grep -m1 '^ttft_result' "$OUT/client.out")
  [ -n "$line" ] || { line="ttft_result requests=0 rps=0 errors=1"; say "ttft.py gave no result for $target c=$c"; }
  [ "$rep" = warmup ] && return 0
  echo "ttft $target $c $rep $line" >> "$RAW"
  say "ttft  c=$c $target run $rep: $(echo "$line" | awk '{print $4, $5, $7}')"
}

if [ "$WARMUP" -gt 0 ]; then
  say "warm-up: ${WARMUP}s per target"
  load_point direct "$DIRECT_URL" 8 "$WARMUP" warmup ""
  load_point gateway "$GATEWAY_URL" 8 "$WARMUP" warmup "$API_KEY"
  [ -z "$TTFT_CONCURRENCY" ] || ttft_point gateway "$GATEWAY_URL" 1 "$WARMUP" warmup "$API_KEY"
fi

for rep in $(seq 1 "$REPEATS"); do
  for c in $CONCURRENCY; do
    load_point direct "$DIRECT_URL" "$c" "$DURATION" "$rep" ""
    load_point gateway "$GATEWAY_URL" "$c" "$DURATION" "$rep" "$API_KEY"
  done
  for c in $TTFT_CONCURRENCY; do
    ttft_point direct "$DIRECT_URL" "$c" "$DURATION" "$rep" ""
    ttft_point gateway "$GATEWAY_URL" "$c" "$DURATION" "$rep" "$API_KEY"
  done
done

if ! kill -0 "$GATEWAY_PID" 2>/dev/null; then say "WARNING: the gateway exited during the run"; fi
read -r -a tc <<< "$(trace_counters)"
echo "trace counters at the end (before shutdown): written=${tc[0]} dropped=${tc[1]} queue_depth=${tc[2]}" >> "$OUT/meta.txt"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/meta.txt"
cleanup
[ "$KEEP_DB" = 1 ] || rm -rf "$OUT/llmops-home"
say "stopped everything this script started; results in $OUT"
{
  cat "$OUT/meta.txt"
  echo
  python3 "$HERE/report.py" --label "$LABEL" "$RAW"
} | tee "$OUT/report.txt"

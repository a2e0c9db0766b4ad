#!/usr/bin/env bash
# Sustained load with tracing on: does the trace writer keep up, so that nothing is lost?
# For each backend (SQLite in a fresh folder, Postgres in a fresh database that is dropped afterwards):
# start the fake upstream and llmops (bench/start_llmops.sh: one worker, default settings, tracing on),
# run wrk at -c in flight for -d seconds (non-streaming chat.completions, as bench/run.sh), read
# /metrics every --sample seconds meanwhile, then check:
#   - traces dropped == 0 (llmops_traces_dropped_total, every reason)
#   - rows in the trace table == requests answered (llmops_requests_total), once the queue is empty,
#     and again after SIGTERM (the drain)
#   - the writer's pace: rows stored per second against requests answered per second, and the
#     deepest the queue got
# and print req/s and latency from wrk. Exit status 1 when a check fails.
#
# usage: bench/sustained.sh [-c 32] [-d 120] [--backend sqlite|postgresql|both] [--sample 10]
#                           [--postgres-url URL] [--upstream-port 19080] [--gateway-port 19000] [--out DIR]
# Postgres: --postgres-url is an admin URL on the server to use (default $LLMOPS_TEST_POSTGRES_URL, else
# postgresql+psycopg://postgres@127.0.0.1:5432/postgres). LLMOPS_BIN picks another llmops (start_llmops.sh).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONCURRENCY=32
DURATION=120
BACKENDS="sqlite postgresql"
SAMPLE=10
POSTGRES_URL=${LLMOPS_TEST_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/postgres}
UPSTREAM_PORT=19080
GATEWAY_PORT=19000
OUT=""
need() { [ $# -ge 2 ] || { echo "sustained.sh: $1 needs a value" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
  case "$1" in
    -c) need "$@"; CONCURRENCY=$2; shift 2 ;;
    -d) need "$@"; DURATION=$2; shift 2 ;;
    --backend) need "$@"; BACKENDS=$2; [ "$2" = both ] && BACKENDS="sqlite postgresql"; shift 2 ;;
    --sample) need "$@"; SAMPLE=$2; shift 2 ;;
    --postgres-url) need "$@"; POSTGRES_URL=$2; shift 2 ;;
    --upstream-port) need "$@"; UPSTREAM_PORT=$2; shift 2 ;;
    --gateway-port) need "$@"; GATEWAY_PORT=$2; shift 2 ;;
    --out) need "$@"; OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "sustained.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
for n in "$CONCURRENCY" "$DURATION" "$SAMPLE" "$UPSTREAM_PORT" "$GATEWAY_PORT"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "sustained.sh: expected a positive whole number, got '$n'" >&2; exit 2; }
done
for b in $BACKENDS; do
  case "$b" in sqlite|postgresql) ;; *) echo "sustained.sh: unknown backend $b" >&2; exit 2 ;; esac
done
OUT=${OUT:-/tmp/llmops-bench/sustained-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT" || exit 1
# shellcheck source=bench/lib_gateway.sh
. "$HERE/lib_gateway.sh"
lib_check_tools || exit $?

PG_NAME=""
finish() {
  trap - EXIT INT TERM
  lib_cleanup
  if [ -n "$PG_NAME" ]; then lib_drop_pg "$POSTGRES_URL" "$PG_NAME"; PG_NAME=""; fi
}
trap finish EXIT
trap 'say "interrupted"; exit 130' INT TERM

{
  echo "date: $(date -Is)"
  echo "machine: $(uname -srm); $(nproc) CPUs; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "llmops: ${LLMOPS_BIN:-$HERE/../.venv/bin/llmops}; git $(git -C "$HERE/.." rev-parse --short HEAD 2>/dev/null)"
  echo "options: c=$CONCURRENCY duration=${DURATION}s backends='$BACKENDS' sample=${SAMPLE}s"
} | tee "$OUT/meta.txt"

FAILED=0
run_backend() {  # backend
  local backend=$1 dir="$OUT/$1" url="" c0 c1 c2 rows rows_after t0 elapsed
  mkdir -p "$dir"
  if [ "$backend" = postgresql ]; then
    PG_NAME="llmops_sustained_$(date +%s)_$$"
    url=$(lib_create_pg "$POSTGRES_URL" "$PG_NAME") || { say "cannot create a Postgres database"; return 1; }
  else
    url="sqlite:///$dir/home/llmops.db"
  fi
  lib_start_upstream || return 1
  lib_start_gateway "$dir/home" "$dir/gateway.log" "$([ "$backend" = postgresql ] && echo "$url")" || return 1
  say "$backend: gateway pid $LIB_GATEWAY_PID; $CONCURRENCY in flight for ${DURATION}s"
  read -r -a c0 <<< "$(lib_counters)"
  t0=$(date +%s.%N)
  (  # the writer's pace while the load runs
    echo "seconds answered stored queue_depth dropped rss_mb"
    start=$SECONDS
    while sleep "$SAMPLE"; do
      read -r -a s <<< "$(lib_counters)"
      echo "$((SECONDS - start)) ${s[0]} ${s[1]} ${s[3]} ${s[2]} $(( $(lib_rss_kb "$LIB_GATEWAY_PID") / 1024 ))"
    done
  ) > "$dir/samples.txt" &
  local sampler=$!
  lib_wrk "$CONCURRENCY" "$DURATION" "$dir/wrk.txt"
  elapsed=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN {printf "%.3f", a - b}')
  read -r -a c1 <<< "$(lib_counters)"
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
  lib_wait_queue_empty 120 || say "$backend: the queue did not empty within 120 s"
  read -r -a c2 <<< "$(lib_counters)"
  rows=$(lib_count_rows "$url")
  lib_stop_gateway  # SIGTERM: drains whatever is left
  rows_after=$(lib_count_rows "$url")
  lib_stop_pid "$LIB_UPSTREAM_PID"; LIB_UPSTREAM_PID=""

  local answered=$((c2[0])) load_answered=$((c1[0] - c0[0])) stored_during=$((c1[1] - c0[1]))
  local dropped=$((c2[2])) max_queue
  max_queue=$(awk 'NR > 1 && $4 > m {m = $4} END {print m + 0}' "$dir/samples.txt")
  {
    echo "== $backend ($url)"
    grep -m1 '^wrk_result' "$dir/wrk.txt"
    cat "$dir/samples.txt"
    awk -v n="$load_answered" -v w="$stored_during" -v s="$elapsed" 'BEGIN {
      printf "answered during the load: %d in %.1f s = %.1f req/s\n", n, s, n / s
      printf "stored during the load:   %d in %.1f s = %.1f rows/s (%.1f%% of answered)\n", w, s, w / s, 100 * w / (n ? n : 1)
    }'
    echo "queue at the end of the load: ${c1[3]}; deepest sampled: $max_queue"
    echo "requests answered (all, /metrics): $answered; rows in the database: $rows (queue empty), $rows_after (after SIGTERM)"
    echo "traces dropped: $dropped"
  } | tee "$dir/result.txt"
  local ok=1
  [ "$dropped" = 0 ] || ok=0
  [ "$rows" = "$answered" ] || ok=0
  [ "$rows_after" = "$answered" ] || ok=0
  [ "$(lib_wrk_field "$dir/wrk.txt" errors)" = 0 ] || ok=0
  local rps p99
  rps=$(lib_wrk_field "$dir/wrk.txt" rps); p99=$(lib_wrk_field "$dir/wrk.txt" p99_ms)
  echo "summary backend=$backend c=$CONCURRENCY seconds=$DURATION rps=$rps p99_ms=$p99 answered=$answered rows=$rows rows_after_sigterm=$rows_after dropped=$dropped max_queue=$max_queue lossless=$([ $ok = 1 ] && echo PASS || echo FAIL)" | tee -a "$OUT/summary.txt"
  [ $ok = 1 ] || FAILED=1
  if [ "$backend" = postgresql ]; then lib_drop_pg "$POSTGRES_URL" "$PG_NAME"; PG_NAME=""; fi
  [ -n "${KEEP_DB:-}" ] || rm -rf "$dir/home"
}

for backend in $BACKENDS; do
  run_backend "$backend" || { say "$backend: could not run"; FAILED=1; lib_cleanup; }
done
say "results in $OUT"
exit $FAILED

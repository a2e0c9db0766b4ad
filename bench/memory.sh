#!/usr/bin/env bash
# Memory under steady load: the gateway's RSS over a long run of requests, tracing on.
# Starts the fake upstream and llmops (bench/start_llmops.sh, SQLite in a fresh folder unless
# --backend postgresql), warms up, then keeps -c requests in flight with wrk, in runs of --chunk
# seconds back to back, until -n requests have been answered after the warm-up. The gateway's VmRSS,
# requests answered and trace queue depth are sampled every --sample seconds. Prints the RSS at the
# start (after the warm-up), at the end (queue empty), the highest, the growth, and the growth over
# the last quarter of the requests; then checks rows stored == requests answered and no trace dropped.
# Target (issue 5): growth under 50 MB over 1,000,000 requests. Exit status 1 when a check fails.
#
# usage: bench/memory.sh [-n 1000000] [-c 4] [--chunk 30] [--sample 5] [--warmup 15]
#                        [--backend sqlite|postgresql] [--postgres-url URL]
#                        [--upstream-port 19080] [--gateway-port 19000] [--out DIR]
# About 1,000,000 / (req/s) seconds: 10-20 minutes on a 2-core machine.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REQUESTS=1000000
CONCURRENCY=4
CHUNK=30
SAMPLE=5
WARMUP=15
BACKEND=sqlite
POSTGRES_URL=${LLMOPS_TEST_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/postgres}
UPSTREAM_PORT=19080
GATEWAY_PORT=19000
OUT=""
LIMIT_MB=50
need() { [ $# -ge 2 ] || { echo "memory.sh: $1 needs a value" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
  case "$1" in
    -n) need "$@"; REQUESTS=$2; shift 2 ;;
    -c) need "$@"; CONCURRENCY=$2; shift 2 ;;
    --chunk) need "$@"; CHUNK=$2; shift 2 ;;
    --sample) need "$@"; SAMPLE=$2; shift 2 ;;
    --warmup) need "$@"; WARMUP=$2; shift 2 ;;
    --backend) need "$@"; BACKEND=$2; shift 2 ;;
    --postgres-url) need "$@"; POSTGRES_URL=$2; shift 2 ;;
    --upstream-port) need "$@"; UPSTREAM_PORT=$2; shift 2 ;;
    --gateway-port) need "$@"; GATEWAY_PORT=$2; shift 2 ;;
    --out) need "$@"; OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "memory.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
for n in "$REQUESTS" "$CONCURRENCY" "$CHUNK" "$SAMPLE" "$WARMUP" "$UPSTREAM_PORT" "$GATEWAY_PORT"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "memory.sh: expected a positive whole number, got '$n'" >&2; exit 2; }
done
case "$BACKEND" in sqlite|postgresql) ;; *) echo "memory.sh: unknown backend $BACKEND" >&2; exit 2 ;; esac
OUT=${OUT:-/tmp/llmops-bench/memory-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT" || exit 1
# shellcheck source=bench/lib_gateway.sh
. "$HERE/lib_gateway.sh"
lib_check_tools || exit $?

PG_NAME=""
SAMPLER=""
finish() {
  trap - EXIT INT TERM
  [ -z "$SAMPLER" ] || { kill "$SAMPLER" 2>/dev/null; wait "$SAMPLER" 2>/dev/null; }
  lib_cleanup
  if [ -n "$PG_NAME" ]; then lib_drop_pg "$POSTGRES_URL" "$PG_NAME"; fi
  [ -n "${KEEP_DB:-}" ] || rm -rf "$OUT/home"
}
trap finish EXIT
trap 'say "interrupted"; exit 130' INT TERM

{
  echo "date: $(date -Is)"
  echo "machine: $(uname -srm); $(nproc) CPUs; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "llmops: ${LLMOPS_BIN:-$HERE/../.venv/bin/llmops}; git $(git -C "$HERE/.." rev-parse --short HEAD 2>/dev/null)"
  echo "options: requests=$REQUESTS c=$CONCURRENCY chunk=${CHUNK}s sample=${SAMPLE}s warmup=${WARMUP}s backend=$BACKEND"
} | tee "$OUT/meta.txt"

URL="sqlite:///$OUT/home/llmops.db"
DATABASE=""
if [ "$BACKEND" = postgresql ]; then
  PG_NAME="llmops_memory_$(date +%s)_$$"
  URL=$(lib_create_pg "$POSTGRES_URL" "$PG_NAME") || exit 1
  DATABASE=$URL
fi
lib_start_upstream || exit 1
lib_start_gateway "$OUT/home" "$OUT/gateway.log" "$DATABASE" || exit 1
PID=$LIB_GATEWAY_PID
say "gateway pid $PID; warm-up ${WARMUP}s at c=$CONCURRENCY"
lib_wrk "$CONCURRENCY" "$WARMUP" "$OUT/warmup.txt"
lib_wait_queue_empty 60 || say "the queue did not empty after the warm-up"
read -r -a c0 <<< "$(lib_counters)"
RSS0=$(lib_rss_kb "$PID")
START=$SECONDS
(
  echo "seconds requests rss_kb queue_depth"
  while :; do
    read -r -a s <<< "$(lib_counters)"
    echo "$((SECONDS - START)) $((s[0] - c0[0])) $(lib_rss_kb "$PID") ${s[3]}"
    sleep "$SAMPLE"
  done
) > "$OUT/samples.txt" &
SAMPLER=$!
say "start: RSS $((RSS0 / 1024)) MB after ${c0[0]} warm-up requests; now $REQUESTS more at c=$CONCURRENCY"

done_requests=0
rate=0
while [ "$done_requests" -lt "$REQUESTS" ]; do
  secs=$CHUNK
  if [ "$rate" -gt 0 ]; then  # the last run: about what is left
    left=$(( (REQUESTS - done_requests) / rate + 1 ))
    [ "$left" -lt "$secs" ] && secs=$left
  fi
  before=$done_requests
  lib_wrk "$CONCURRENCY" "$secs" "$OUT/wrk-last.txt" || { say "wrk failed"; break; }
  [ "$(lib_wrk_field "$OUT/wrk-last.txt" errors)" = 0 ] || say "wrk reported errors: $(grep -m1 '^wrk_result' "$OUT/wrk-last.txt")"
  grep -m1 '^wrk_result' "$OUT/wrk-last.txt" >> "$OUT/wrk-runs.txt"
  read -r -a c1 <<< "$(lib_counters)"
  done_requests=$((c1[0] - c0[0]))
  rate=$(( (done_requests - before) / secs ))
  say "$done_requests requests; RSS $(( $(lib_rss_kb "$PID") / 1024 )) MB; queue ${c1[3]}; ${rate} req/s"
  [ "$rate" -gt 0 ] || { say "no progress"; break; }
done
ELAPSED=$((SECONDS - START))
lib_wait_queue_empty 120 || say "the queue did not empty within 120 s"
RSS1=$(lib_rss_kb "$PID")
read -r -a c2 <<< "$(lib_counters)"
kill "$SAMPLER" 2>/dev/null; wait "$SAMPLER" 2>/dev/null; SAMPLER=""
echo "$ELAPSED $((c2[0] - c0[0])) $RSS1 ${c2[3]}" >> "$OUT/samples.txt"
lib_stop_gateway
ROWS=$(lib_count_rows "$URL")
ERRORS=$(awk '{for (i = 1; i <= NF; i++) if ($i ~ /^errors=/) {split($i, a, "="); e += a[2]}} END {print e + 0}' "$OUT/wrk-runs.txt")

awk -v rss0="$RSS0" -v rss1="$RSS1" -v n="$((c2[0] - c0[0]))" -v secs="$ELAPSED" -v limit="$LIMIT_MB" \
    -v answered="${c2[0]}" -v rows="$ROWS" -v dropped="${c2[2]}" -v errors="$ERRORS" -v c="$CONCURRENCY" '
  NR > 1 { t[NR] = $1; req[NR] = $2; rss[NR] = $3; q[NR] = $4; if ($3 > max) max = $3; if ($4 > qmax) qmax = $4; last = NR }
  END {
    # RSS when the last quarter of the requests began (the first sample at or past 75%)
    for (i = 2; i <= last; i++) if (req[i] >= 0.75 * n) { q3 = rss[i]; break }
    growth = (rss1 - rss0) / 1024
    printf "requests: %d in %d s (%.0f req/s) at c=%d; wrk errors: %d\n", n, secs, n / (secs ? secs : 1), c, errors
    printf "RSS start (after warm-up): %.1f MB\n", rss0 / 1024
    printf "RSS end (queue empty):     %.1f MB\n", rss1 / 1024
    printf "RSS highest sampled:       %.1f MB\n", max / 1024
    printf "growth: %.1f MB; over the last quarter of the requests: %.1f MB\n", growth, (rss1 - q3) / 1024
    printf "trace queue: deepest sampled %d\n", qmax
    printf "requests answered (all, /metrics): %d; rows stored: %d; traces dropped: %d\n", answered, rows, dropped
    ok = growth < limit && rows == answered && dropped == 0 && errors == 0
    printf "summary requests=%d c=%d rss_start_mb=%.1f rss_end_mb=%.1f rss_max_mb=%.1f growth_mb=%.1f growth_last_quarter_mb=%.1f max_queue=%d rows=%d answered=%d dropped=%d result=%s\n", \
      n, c, rss0 / 1024, rss1 / 1024, max / 1024, growth, (rss1 - q3) / 1024, qmax, rows, answered, dropped, ok ? "PASS" : "FAIL"
    exit ok ? 0 : 1
  }' "$OUT/samples.txt" | tee "$OUT/result.txt"
STATUS=${PIPESTATUS[0]}
say "samples (seconds requests rss_kb queue_depth) in $OUT/samples.txt"
exit "$STATUS"

#!/usr/bin/env bash
# What routing and the response cache cost on the /v1 hot path, in one sitting:
#   single   one model, one deployment, no cache (the path of earlier releases)
#   routed   one model, two deployments (weighted-random, both on the fake upstream), exact cache on,
#            every request a different question (BENCH_UNIQUE=1), so each one is a cache miss that
#            is looked up, routed, answered and stored
# Each configuration is a full bench/run.sh (wrk at 1 and 32 in flight by default), alternated
# --rounds times so drifts of a shared machine hit both alike. Prints added p50 at c=1 and peak
# throughput per run, then the medians and the ratio routed/single.
#
# usage: bench/routing.sh [--rounds N] [-d SECONDS] [-c "LEVELS"] [--out DIR]
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROUNDS=2
DURATION=10
LEVELS="1 32"
OUT=/tmp/llmops-bench/routing-$(date +%Y%m%d-%H%M%S)
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    -d) DURATION=$2; shift 2 ;;
    -c) LEVELS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "routing.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"

SINGLE='[{"name":"fake-model","provider":"openai","base_url":"UPSTREAM_BASE"}]'
ROUTED='[{"name":"fake-model","routing":"weighted-random","cache":{"mode":"exact"},"deployments":['
ROUTED+='{"id":"a","provider":"openai","base_url":"UPSTREAM_BASE","weight":1},'
ROUTED+='{"id":"b","provider":"openai","base_url":"UPSTREAM_BASE","weight":1}]}]'

run_one() {  # label models-json
  local label=$1 models=$2 dir="$OUT/$1-$3"
  BENCH_UNIQUE=1 BENCH_MODELS="$models" bash "$HERE/run.sh" -d "$DURATION" -r 1 -w 2 -c "$LEVELS" \
    --ttft-concurrency "" --label "$label" --upstream-port "${UPSTREAM_PORT:-19280}" \
    --gateway-port "${GATEWAY_PORT:-19200}" --out "$dir" >"$dir.log" 2>&1
  local summary
  summary=$(grep '^summary ' "$dir/report.txt" 2>/dev/null || grep '^summary ' "$dir.log")
  echo "$label $summary" | tee -a "$OUT/summaries.txt"
}

for round in $(seq 1 "$ROUNDS"); do
  run_one single "$SINGLE" "$round"
  run_one routed "$ROUTED" "$round"
done

python3 - "$OUT/summaries.txt" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    label, _, rest = line.strip().partition(" summary ")
    fields = dict(item.split("=", 1) for item in rest.split() if "=" in item)
    runs.setdefault(label, []).append(fields)
def median(label, key):
    return statistics.median(float(run[key]) for run in runs[label])
print()
print(f"{'config':8} {'added p50 ms (c=1)':>20} {'peak rps':>10} {'errors':>7} {'dropped':>8}   runs")
for label in ("single", "routed"):
    if label not in runs:
        continue
    print(f"{label:8} {median(label, 'added_p50_ms'):20.3f} {median(label, 'peak_rps'):10.1f} "
          f"{max(int(r['errors']) for r in runs[label]):7d} {max(int(r['traces_dropped']) for r in runs[label]):8d}"
          f"   {len(runs[label])}")
if "single" in runs and "routed" in runs:
    ratio = median("routed", "peak_rps") / median("single", "peak_rps")
    extra = median("routed", "added_p50_ms") - median("single", "added_p50_ms")
    print(f"routed/single peak throughput: {ratio:.3f} (target >= 0.80); routing+cache adds {extra * 1000:.0f} us at p50")
    print(f"summary routed_added_p50_ms={median('routed', 'added_p50_ms'):.3f} "
          f"single_added_p50_ms={median('single', 'added_p50_ms'):.3f} throughput_ratio={ratio:.3f}")
EOF
echo "results: $OUT"

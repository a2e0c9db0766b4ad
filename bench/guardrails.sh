#!/usr/bin/env bash
# What the pattern guardrails cost on the /v1 hot path (issue 12), in one sitting:
#   plain    no guardrail (the path of earlier releases)
#   guarded  four rules on input AND output (LLMOPS_GUARDRAILS): pii (redact), secrets (block),
#            regex (block, one pattern), length (block over 20,000 characters); override with
#            BENCH_GUARDRAILS='[...]'. The nginx upstream answers a fixed text, which the output
#            stage checks on every request; the prompt is wrk_load.lua's (one short user message).
# Each configuration is a full bench/run.sh, alternated --rounds times so drifts of a shared machine
# hit both alike. While the guarded gateway runs, its /metrics is read every second, and once at the
# start two probes must be blocked (a "drop table" prompt, an AWS-like key) and one e-mail redacted:
# that proves the rules are live. Prints added p50 at c=1 and peak req/s per run, the medians, the
# guardrails' own p50 (guarded - plain), the throughput ratio (of the medians, and per round) and the
# decision counters. Exit status 1 when a run fails, a guarded run does not show its rules live, or
# a target is missed (guarded added p50 at c=1 < 1 ms, guarded/plain peak throughput >= 0.70).
#
# usage: bench/guardrails.sh [--rounds N] [-d SECONDS] [-c "LEVELS"] [--ttft "LEVELS"] [--out DIR]
#        (ports: UPSTREAM_PORT (19580) and GATEWAY_PORT (19500) in the environment)
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROUNDS=2
DURATION=10
LEVELS="1 32 64"
TTFT="1"
OUT=/tmp/llmops-bench/guardrails-$(date +%Y%m%d-%H%M%S)
UPSTREAM_PORT=${UPSTREAM_PORT:-19580}
GATEWAY_PORT=${GATEWAY_PORT:-19500}
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    -d) DURATION=$2; shift 2 ;;
    -c) LEVELS=$2; shift 2 ;;
    --ttft) TTFT=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "guardrails.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ $ROUNDS =~ ^[1-9][0-9]?$ ]] || { echo "guardrails.sh: --rounds must be 1..99" >&2; exit 2; }
mkdir -p "$OUT" || exit 1

DEFAULT_RULES='[{"name":"pii","type":"pii","stage":"both","action":"redact"},'
DEFAULT_RULES+='{"name":"secrets","type":"secrets","stage":"both","action":"block"},'
DEFAULT_RULES+='{"name":"re","type":"regex","stage":"both","action":"block","params":{"patterns":["(?i)\\bdrop\\s+table\\b"]}},'
DEFAULT_RULES+='{"name":"len","type":"length","stage":"both","action":"block","params":{"max_chars":20000}}]'
RULES=${BENCH_GUARDRAILS:-$DEFAULT_RULES}
echo "$RULES" > "$OUT/guardrails.json"
GATEWAY=http://127.0.0.1:$GATEWAY_PORT
KEY=${BENCH_API_KEY:-sk-bench-0123456789abcdef}

# One chat request to the gateway; prints the HTTP status and keeps the body in $OUT/probe-NAME.json.
probe() {  # name user-text
  local body
  body=$(python3 -c 'import json, sys; print(json.dumps({"model": "fake-model", "max_tokens": 8,
    "messages": [{"role": "user", "content": sys.argv[1]}]}))' "$2")
  curl -s -o "$OUT/probe-$1.json" -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' -d "$body" "$GATEWAY/v1/chat/completions"
}

# Runs beside run.sh ($1 = its PID): probes once when the gateway is up, then keeps the last
# /metrics that has guardrail counters, until run.sh ends.
watch_gateway() {  # run-pid metrics-file
  local pid=$1 file=$2 probed=0
  while kill -0 "$pid" 2>/dev/null; do
    if curl -s --max-time 2 "$GATEWAY/metrics" > "$file.tmp" 2>/dev/null && [ -s "$file.tmp" ]; then
      if [ "$probed" = 0 ]; then
        probed=1
        {
          echo "probe block-regex $(probe regex 'Please DROP TABLE users; then say hi.')"
          echo "probe block-secret $(probe secret 'my key is AKIAQ3EGRMX7LZ2PWN5K, keep it')"
          echo "probe redact-pii $(probe pii 'write to jane.doe@example.com please')"
        } > "$file.probes"
      fi
      mv "$file.tmp" "$file"
    fi
    sleep 1
  done
  rm -f "$file.tmp"
}

run_one() {  # label round
  local label=$1 dir="$OUT/$1-$2" summary run_pid
  local -a env_cmd=(env -u LLMOPS_GUARDRAILS)
  [ "$label" = guarded ] && env_cmd=(env "LLMOPS_GUARDRAILS=$RULES")
  echo "[$(date +%H:%M:%S)] $label round $2 (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  "${env_cmd[@]}" bash "$HERE/run.sh" -d "$DURATION" -r 1 -w 2 -c "$LEVELS" --ttft-concurrency "$TTFT" \
    --label "$label" --upstream-port "$UPSTREAM_PORT" --gateway-port "$GATEWAY_PORT" --out "$dir" \
    >"$dir.log" 2>&1 &
  run_pid=$!
  watch_gateway "$run_pid" "$dir.metrics" &
  local watch_pid=$!
  wait "$run_pid"
  local rc=$?
  wait "$watch_pid"
  summary=$(grep '^summary ' "$dir/report.txt" 2>/dev/null)
  if [ "$rc" != 0 ] || [ -z "$summary" ]; then
    echo "guardrails.sh: run.sh failed for $label round $2 (status $rc); its log ends with:" >&2
    tail -n 15 "$dir.log" >&2
    return 1
  fi
  echo "$label ${summary#summary }" | tee -a "$OUT/summaries.txt"
  [ "$label" = guarded ] && check_active "$dir"
  return 0
}

# The guarded gateway must have blocked and redacted the probes and counted a decision per request.
check_active() {  # run-folder
  local dir=$1
  python3 - "$dir.metrics" "$dir.metrics.probes" "$dir/raw.txt" <<'EOF' | tee -a "$OUT/active.txt"
import re, sys
metrics, probes, raw = sys.argv[1:4]
counts = {}
for line in open(metrics):
    found = re.match(r'llmops_guardrail_decisions_total\{(.*)\} ([0-9.e+]+)$', line.strip())
    if found:
        labels = dict(re.findall(r'(\w+)="([^"]*)"', found.group(1)))
        counts[(labels["guardrail"], labels["stage"], labels["action"])] = float(found.group(2))
def requests(kinds):
    return sum(int(re.search(r"requests=(\d+)", line).group(1))
               for line in open(raw) if line.split()[:2] in [[kind, "gateway"] for kind in kinds])
answered, whole = requests(("load", "ttft")), requests(("load",))
print(f"{metrics}: guardrail decisions in the last /metrics read (measured requests through the gateway:"
      f" {answered}, of which {whole} not streamed)")
for (rule, stage, action), n in sorted(counts.items()):
    print(f"  {rule:<10} {stage:<7} {action:<13} {n:>10.0f}")
states = dict(line.split()[1:3] for line in open(probes))
print("  probes (HTTP status):", ", ".join(f"{k}={v}" for k, v in states.items()))
ok = (states.get("block-regex") == "400" and states.get("block-secret") == "400"
      and states.get("redact-pii") == "200" and counts.get(("pii", "input", "redact"), 0) >= 1
      # every request passes each input rule; a streamed answer's passes are not counted (only
      # what triggers is), so the output counters cover at least the answers that were not streamed
      and min((n for (r, s, a), n in counts.items() if a == "pass" and s == "input"), default=0) >= answered
      and min((n for (r, s, a), n in counts.items() if a == "pass" and s == "output"), default=0) >= whole)
print(f"  guardrails active: {'yes' if ok else 'NO'}")
EOF
}

failed=0
for round in $(seq 1 "$ROUNDS"); do
  run_one plain "$round" || failed=1
  run_one guarded "$round" || failed=1
done
[ -s "$OUT/summaries.txt" ] || { echo "guardrails.sh: no run finished" >&2; exit 1; }

python3 - "$OUT/summaries.txt" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    label, _, rest = line.strip().partition(" ")
    runs.setdefault(label, []).append(dict(item.split("=", 1) for item in rest.split() if "=" in item))
def median(label, key):
    values = [float(run[key]) for run in runs.get(label, []) if key in run]
    return statistics.median(values) if values else float("nan")
print()
print(f"{'config':8} {'added p50 ms (c=1)':>19} {'peak rps':>9} {'added ttft ms':>14} {'errors':>7} {'dropped':>8}  runs")
for label in ("plain", "guarded"):
    if label in runs:
        print(f"{label:8} {median(label, 'added_p50_ms'):19.3f} {median(label, 'peak_rps'):9.1f}"
              f" {median(label, 'added_ttft_ms'):14.3f} {max(int(r['errors']) for r in runs[label]):7d}"
              f" {max(int(r['traces_dropped']) for r in runs[label]):8d}  {len(runs[label])}")
if "plain" in runs and "guarded" in runs:
    own = median("guarded", "added_p50_ms") - median("plain", "added_p50_ms")
    ratio = median("guarded", "peak_rps") / median("plain", "peak_rps")
    guarded = median("guarded", "added_p50_ms")
    verdict = "PASS" if guarded < 1.0 and ratio >= 0.7 else "FAIL"
    print(f"guarded gateway adds {guarded:.3f} ms at p50, c=1, over the upstream (target < 1 ms); "
          f"the guardrails' own share: {own * 1000:.0f} us")
    rounds = " ".join(f"{float(g['peak_rps']) / float(p['peak_rps']):.3f}"
                      for p, g in zip(runs["plain"], runs["guarded"]))
    print(f"guarded/plain peak throughput: {ratio:.3f} (target >= 0.70); per round: {rounds}")
    print(f"summary guarded_added_p50_ms={guarded:.3f} plain_added_p50_ms={median('plain', 'added_p50_ms'):.3f} "
          f"guardrails_p50_ms={own:.3f} guarded_peak_rps={median('guarded', 'peak_rps'):.1f} "
          f"plain_peak_rps={median('plain', 'peak_rps'):.1f} throughput_ratio={ratio:.3f} {verdict}")
    sys.exit(0 if verdict == "PASS" else 1)
sys.exit(1)
EOF
targets=$?
inactive=$(grep -c 'guardrails active: NO' "$OUT/active.txt" 2>/dev/null)
echo "guarded runs in which the probes and counters show the rules live: $(grep -c 'guardrails active: yes' "$OUT/active.txt" 2>/dev/null) of $ROUNDS"
echo "results: $OUT"
# exit 1 when a run failed, a guarded run did not show its rules live, or a target was missed
[ "$failed" = 0 ] && [ "${inactive:-0}" = 0 ] && [ "$targets" = 0 ]

#!/usr/bin/env bash
# Starts `llmops serve` for a benchmark, in the foreground (it ends by exec'ing the server, so the
# PID that started this script is the server's PID).
#   - one worker (llmops serve always runs one), tracing and metrics on (the defaults),
#   - one model, fake-model, routed with the openai provider to $UPSTREAM_BASE,
#   - an inference-scope API key, so every request goes through the key check:
#       Authorization: Bearer $BENCH_API_KEY   (default sk-bench-0123456789abcdef)
#   - its own SQLite database in a fresh folder, never the user's ~/.llmops or $LLMOPS_HOME.
# Environment (bench/run.sh and the shared harness's --gateway-cmd both set the first two):
#   UPSTREAM_BASE   e.g. http://127.0.0.1:19080/v1          (required)
#   GATEWAY_PORT    port to listen on, on 127.0.0.1          (default 4000)
#   LLMOPS_BIN      the llmops executable                    (default <repo>/.venv/bin/llmops)
#   BENCH_LLMOPS_HOME  data folder, must not exist or be empty  (default: mktemp -d, left behind: a few MB)
#   BENCH_API_KEY   the key's secret                         (default sk-bench-0123456789abcdef)
#   BENCH_MODELS    the models as JSON (LLMOPS_MODELS), where the word UPSTREAM_BASE stands for
#                   $UPSTREAM_BASE           (default: one model, fake-model, one deployment)
#   BENCH_DATABASE_URL  database to trace into (default: SQLite in the data folder)
#   BENCH_REDIS_URL     Redis for the shared response cache, rate limits and budgets (default: none, in memory)
#   BENCH_KEY_OPTIONS   more options for `llmops keys create` of the bench key, e.g. limits and budgets:
#                   "--rpm 100000000 --budget 1000000/day" (default: none, an unlimited key)
#   BENCH_PROMPTS_DIR   prompt YAML files pushed to the registry before serving, so that requests can
#                   name them (--model 'prompt:support@production' with bench/prompts; default: none)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LLMOPS_BIN=${LLMOPS_BIN:-$ROOT/.venv/bin/llmops}
: "${UPSTREAM_BASE:?set UPSTREAM_BASE to the fake upstream, e.g. http://127.0.0.1:19080/v1}"
GATEWAY_PORT=${GATEWAY_PORT:-4000}
BENCH_API_KEY=${BENCH_API_KEY:-sk-bench-0123456789abcdef}
[ -x "$LLMOPS_BIN" ] || { echo "start_llmops.sh: no llmops at $LLMOPS_BIN (make install-dev, or set LLMOPS_BIN)" >&2; exit 2; }

if [ -n "${BENCH_LLMOPS_HOME:-}" ]; then
  mkdir -p "$BENCH_LLMOPS_HOME"
  [ -z "$(ls -A "$BENCH_LLMOPS_HOME")" ] || { echo "start_llmops.sh: $BENCH_LLMOPS_HOME is not empty" >&2; exit 2; }
  LLMOPS_HOME=$BENCH_LLMOPS_HOME
else
  LLMOPS_HOME=$(mktemp -d "${TMPDIR:-/tmp}/llmops-bench-home.XXXXXX")
fi
export LLMOPS_HOME
DEFAULT_MODELS='[{"name":"fake-model","provider":"openai","base_url":"UPSTREAM_BASE"}]'
LLMOPS_MODELS=${BENCH_MODELS:-$DEFAULT_MODELS}
export LLMOPS_MODELS=${LLMOPS_MODELS//UPSTREAM_BASE/$UPSTREAM_BASE}
# nothing else from the environment or a stray llmops.yaml may change what is measured
unset LLMOPS_CONFIG LLMOPS_DATABASE_URL LLMOPS_TRACE_CONTENT LLMOPS_REDIS_URL
if [ -n "${BENCH_DATABASE_URL:-}" ]; then export LLMOPS_DATABASE_URL=$BENCH_DATABASE_URL; fi
if [ -n "${BENCH_REDIS_URL:-}" ]; then export LLMOPS_REDIS_URL=$BENCH_REDIS_URL; fi
PROMPTS_DIR=""
if [ -n "${BENCH_PROMPTS_DIR:-}" ]; then PROMPTS_DIR=$(realpath "$BENCH_PROMPTS_DIR"); fi
cd "$LLMOPS_HOME"

# shellcheck disable=SC2086  # BENCH_KEY_OPTIONS is a list of options, split on purpose
"$LLMOPS_BIN" keys create --name bench --scope inference --secret "$BENCH_API_KEY" ${BENCH_KEY_OPTIONS:-} >/dev/null
if [ -n "$PROMPTS_DIR" ]; then  # through the service function (what `llmops prompts push` calls)
  "$(dirname "$LLMOPS_BIN")/python" -c '
import sys
from pathlib import Path
from llmops.services import open_store
from llmops.settings import load_settings
store = open_store(load_settings())
for pushed in store.prompts.push_dir(Path(sys.argv[1])):
    print(f"start_llmops.sh: prompt {pushed.version.name}#{pushed.version.number} labels {pushed.labels_moved}", file=sys.stderr)
store.close()' "$PROMPTS_DIR"
fi
echo "start_llmops.sh: LLMOPS_HOME=$LLMOPS_HOME upstream=$UPSTREAM_BASE port=$GATEWAY_PORT" >&2
exec "$LLMOPS_BIN" serve --host 127.0.0.1 --port "$GATEWAY_PORT" --log-level warning

# Shared by bench/sustained.sh and bench/memory.sh (source it; it defines functions only).
# Starts the fake upstream (nginx + Lua) and llmops (bench/start_llmops.sh) on 127.0.0.1, reads the
# gateway's /metrics and RSS, makes and drops a fresh Postgres database, and stops by PID everything
# it started. Callers set: HERE (the bench folder), OUT (results folder), UPSTREAM_PORT, GATEWAY_PORT.

LIB_UPSTREAM_PID=""
LIB_GATEWAY_PID=""   # also the process group that setsid made for the gateway command
LIB_CLIENT_PID=""
LIB_PYTHON=${LIB_PYTHON:-$(cd "$HERE/.." && pwd)/.venv/bin/python}
BENCH_API_KEY=${BENCH_API_KEY:-sk-bench-0123456789abcdef}

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

lib_port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q . ; }

lib_check_tools() {
  local missing="" tool
  for tool in nginx wrk curl setsid timeout ss; do command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"; done
  [ -e /usr/lib/nginx/modules/ngx_http_lua_module.so ] || missing="$missing nginx-lua-module"
  [ -x "$LIB_PYTHON" ] || missing="$missing $LIB_PYTHON"
  [ -z "$missing" ] || { echo "missing:$missing (run bench/setup.sh; make install-dev)" >&2; return 2; }
  for p in "$UPSTREAM_PORT" "$GATEWAY_PORT"; do
    if lib_port_busy "$p"; then echo "port $p is already in use on this machine" >&2; return 1; fi
  done
}

lib_stop_pid() {  # pid [is_group]: TERM, wait up to 60 s (the gateway drains its trace queue), then KILL
  local pid=$1 group=${2:-0} target=$1
  [ -n "$pid" ] || return 0
  [ "$group" = 1 ] && target="-$pid"
  kill -TERM -- "$target" 2>/dev/null || return 0
  for _ in $(seq 1 300); do
    if [ "$group" = 1 ]; then pgrep -g "$pid" >/dev/null 2>&1 || break; else kill -0 "$pid" 2>/dev/null || break; fi
    sleep 0.2
  done
  kill -KILL -- "$target" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}

lib_stop_gateway() {
  [ -n "$LIB_GATEWAY_PID" ] || return 0
  if [ "$(ps -o pgid= -p "$LIB_GATEWAY_PID" 2>/dev/null | tr -d ' ')" = "$LIB_GATEWAY_PID" ]; then
    lib_stop_pid "$LIB_GATEWAY_PID" 1
  else
    lib_stop_pid "$LIB_GATEWAY_PID"
  fi
  LIB_GATEWAY_PID=""
}

lib_cleanup() {
  lib_stop_pid "$LIB_CLIENT_PID"; LIB_CLIENT_PID=""
  lib_stop_gateway
  lib_stop_pid "$LIB_UPSTREAM_PID"; LIB_UPSTREAM_PID=""
}

lib_start_upstream() {
  mkdir -p "$OUT/upstream"
  sed -e "s#__PORT__#$UPSTREAM_PORT#g" -e "s#__STATE__#$OUT/upstream#g" -e "s#__LUA__#$HERE/upstream#g" \
    "$HERE/upstream/nginx.conf.in" > "$OUT/upstream/nginx.conf"
  nginx -p "$OUT/upstream" -c "$OUT/upstream/nginx.conf" -g 'daemon off;' </dev/null >"$OUT/upstream/stdout.log" 2>&1 &
  LIB_UPSTREAM_PID=$!
  for _ in $(seq 1 50); do
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$UPSTREAM_PORT/ping" && return 0
    kill -0 "$LIB_UPSTREAM_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "the fake upstream did not start:" >&2; cat "$OUT/upstream/"*.log >&2; return 1
}

lib_start_gateway() {  # home-folder log-file [database-url]: start_llmops.sh in its own process group
  local home=$1 log=$2 database=${3:-}
  UPSTREAM_BASE="http://127.0.0.1:$UPSTREAM_PORT/v1" GATEWAY_PORT=$GATEWAY_PORT BENCH_LLMOPS_HOME=$home \
    BENCH_DATABASE_URL=$database setsid bash "$HERE/start_llmops.sh" </dev/null >"$log" 2>&1 &
  LIB_GATEWAY_PID=$!
  local started=$SECONDS
  until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$GATEWAY_PORT/readyz")" = 200 ]; do
    kill -0 "$LIB_GATEWAY_PID" 2>/dev/null || { echo "the gateway exited:" >&2; tail -n 20 "$log" >&2; return 1; }
    [ $((SECONDS - started)) -lt 120 ] || { echo "the gateway was not ready in 120 s" >&2; return 1; }
    sleep 0.25
  done
}

lib_gateway_server_pid() {  # the python process serving (start_llmops.sh execs it: same PID)
  echo "$LIB_GATEWAY_PID"
}

lib_rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# "answered written dropped queue_depth waits" from the gateway's /metrics
lib_counters() {
  curl -s --max-time 10 "http://127.0.0.1:$GATEWAY_PORT/metrics" 2>/dev/null | awk '
    /^llmops_requests_total/ {a += $NF}
    /^llmops_traces_written_total/ {w += $NF}
    /^llmops_traces_dropped_total/ {d += $NF}
    /^llmops_trace_queue_depth/ {q = $NF}
    /^llmops_trace_backpressure_waits_total/ {b += $NF}
    END {printf "%d %d %d %d %d\n", a, w, d, q, b}'
}

lib_wait_queue_empty() {  # seconds: until the writer has stored everything queued (or time is up)
  local limit=$1 started=$SECONDS c
  while [ $((SECONDS - started)) -lt "$limit" ]; do
    read -r -a c <<< "$(lib_counters)"
    [ "${c[3]:-1}" = 0 ] && return 0
    sleep 0.5
  done
  return 1
}

lib_wrk() {  # concurrency seconds output-file: the non-streaming load of bench/run.sh
  local c=$1 secs=$2 out=$3
  BENCH_MODEL=fake-model BENCH_KEY=$BENCH_API_KEY timeout -k 5 $((secs + 60)) \
    wrk -t1 -c"$c" -d"${secs}s" --timeout 30s -s "$HERE/wrk_load.lua" \
    "http://127.0.0.1:$GATEWAY_PORT/v1/chat/completions" >"$out" 2>>"$OUT/client-errors.log" &
  LIB_CLIENT_PID=$!
  wait "$LIB_CLIENT_PID"
  local rc=$?
  LIB_CLIENT_PID=""
  return $rc
}

lib_wrk_field() {  # file key: a key=value of the wrk_result line
  grep -m1 '^wrk_result' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# A fresh Postgres database on the server of an admin URL; prints its URL. Dropped by lib_drop_pg.
lib_create_pg() {  # admin-url name
  "$LIB_PYTHON" - "$1" "$2" <<'PY'
import sys
from sqlalchemy import create_engine, text
admin_url, name = sys.argv[1:3]
engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
with engine.connect() as connection:
    connection.execute(text(f'CREATE DATABASE "{name}"'))
engine.dispose()
print(admin_url.rpartition("/")[0] + "/" + name)
PY
}

lib_drop_pg() {  # admin-url name
  "$LIB_PYTHON" - "$1" "$2" <<'PY'
import sys
from sqlalchemy import create_engine, text
admin_url, name = sys.argv[1:3]
engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
with engine.connect() as connection:
    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
engine.dispose()
PY
}

lib_count_rows() {  # database-url: rows in the trace table
  "$LIB_PYTHON" - "$1" <<'PY'
import sys
from sqlalchemy import create_engine, text
engine = create_engine(sys.argv[1])
with engine.connect() as connection:
    print(connection.execute(text("SELECT count(*) FROM trace")).scalar_one())
engine.dispose()
PY
}

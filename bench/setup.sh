#!/usr/bin/env bash
# Installs the system tools bench/run.sh needs (Debian/Ubuntu, as root or with sudo):
#   nginx + its Lua module  -> the fake OpenAI upstream
#   wrk                     -> the closed-loop load generator
#   curl                    -> readiness and correctness checks
# Optional: --profile also installs hyperfine (CLI start-up timing) and py-spy into the project venv.
# The Python side (the llmops venv) is the project's own: `make install-dev` or `pip install -e .`.
set -euo pipefail

want_profile=0
case "${1:-}" in
  --profile) want_profile=1 ;;
  "") ;;
  -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
  *) echo "unknown option: $1" >&2; exit 2 ;;
esac

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=()
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_http_lua_module.so ] || missing+=(libnginx-mod-http-lua)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ "$want_profile" = 1 ]; then
  command -v hyperfine >/dev/null 2>&1 || missing+=(hyperfine)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ "$want_profile" = 1 ]; then
  ROOT=$(cd "$(dirname "$0")/.." && pwd)
  VENV=${LLMOPS_VENV:-$ROOT/.venv}
  "$VENV/bin/python" -m pip install -q py-spy
fi

echo "ready: $(nginx -v 2>&1 | sed 's/^.*: //'), $(wrk -v 2>&1 | head -1 | awk '{print "wrk " $2}'), lua module ok"

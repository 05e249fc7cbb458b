#!/usr/bin/env bash
# Starts and stops the two local identity providers the specs talk to:
#   oidc_server.js   a real OpenID provider (npm oidc-provider)   -> MSAL_TEST_OIDC
#   entra_server.js  a scriptable Entra-like authority             -> MSAL_TEST_ENTRA
# Both bind 127.0.0.1 on ports the kernel picks (port 0); each server writes its
# port to a file once it accepts connections, so there is no port race.
#
#   servers.sh start <statedir>   start both, wait until they answer, write
#                                 <statedir>/env (export MSAL_TEST_OIDC=... MSAL_TEST_ENTRA=...),
#                                 <statedir>/{oidc,entra}.pid and .log; on failure print
#                                 the server's log, stop whatever started, exit 1
#   servers.sh stop <statedir>    stop both (TERM, then KILL after 5 s); never fails
#
# Extra environment for oidc_server.js (OIDC_AT_TTL, ...) passes through. The
# servers also exit by themselves once the process that ran "start" is gone
# (MSAL_IDP_WATCH_PID=<pid> watches another process, MSAL_IDP_WATCH_PID=0 none:
# use that when starting them from a one-shot shell).
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
node_dir="$here/node"

die() { echo "servers.sh: $*" >&2; exit 1; }

stop_one() { # stop_one <pidfile>
  local pidfile=$1 pid i
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile" 2>/dev/null)
  rm -f "$pidfile"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null
  return 0
}

stop_all() { # stop_all <statedir>
  stop_one "$1/oidc.pid"
  stop_one "$1/entra.pid"
}

# start_one <statedir> <name> <script> <ready-path>: prints the base URL.
start_one() {
  local dir=$1 name=$2 script=$3 ready=$4
  local portfile="$dir/$name.port" log="$dir/$name.log" pid port i
  rm -f "$portfile"
  # Output goes to the log, so the server never holds the test command's stdout.
  # MSAL_IDP_WATCH_PID: the server exits when that process (by default whoever
  # ran "servers.sh start", i.e. the test command) is gone.
  MSAL_IDP_WATCH_PID=${MSAL_IDP_WATCH_PID:-$PPID} node "$node_dir/$script" 0 --port-file "$portfile" >"$log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$dir/$name.pid"
  for i in $(seq 300); do # up to 30 s: oidc-provider's first import is slow on a cold disk
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "servers.sh: $name exited during start-up; its log:" >&2
      sed 's/^/  | /' "$log" >&2
      return 1
    fi
    if [ -s "$portfile" ]; then
      port=$(tr -dc '0-9' <"$portfile")
      if curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$port$ready"; then
        echo "http://127.0.0.1:$port"
        return 0
      fi
    fi
    sleep 0.1
  done
  echo "servers.sh: $name did not become ready in 30 s; its log:" >&2
  sed 's/^/  | /' "$log" >&2
  return 1
}

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: servers.sh start|stop <statedir>"

case "$cmd" in
  start)
    command -v node >/dev/null || die "node is not installed (scripts/setup installs it)"
    command -v curl >/dev/null || die "curl is not installed"
    [ -d "$node_dir/node_modules/oidc-provider" ] ||
      die "missing $node_dir/node_modules/oidc-provider: run scripts/setup (npm ci in spec/support/node)"
    mkdir -p "$dir" || die "cannot create $dir"
    dir=$(cd "$dir" && pwd)
    stop_all "$dir" # a previous run's leftovers, if any
    rm -f "$dir/env"
    oidc=$(start_one "$dir" oidc oidc_server.js /.well-known/openid-configuration) || { stop_all "$dir"; exit 1; }
    entra=$(start_one "$dir" entra entra_server.js /common/v2.0/.well-known/openid-configuration) || { stop_all "$dir"; exit 1; }
    printf 'export MSAL_TEST_OIDC=%s MSAL_TEST_ENTRA=%s\n' "$oidc" "$entra" >"$dir/env"
    ;;
  stop)
    [ -d "$dir" ] && stop_all "$dir"
    exit 0
    ;;
  *)
    die "usage: servers.sh start|stop <statedir>"
    ;;
esac

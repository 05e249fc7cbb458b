#!/usr/bin/env bash
# Wall time of `msal token` for a cache hit, as a whole process (start, load
# a 100-account cache file, find the account, print the token), on Lua 5.4
# and LuaJIT, beside msal-python doing the same silent call
# (bench/cli_bench.py, Debian's python3-msal). See bench/README.md.
#
#   bench/cli_bench.sh [RUNS] [ACCOUNTS]     (default 50 runs, 100 accounts)
#
# Every process runs on one CPU (MSAL_BENCH_CPU, 0 by default; "" leaves it
# to the kernel), as scripts/bench does: this machine's two vCPUs differ.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s all
runs=${1:-50}
accounts=${2:-100}
cpu=${MSAL_BENCH_CPU-0}
pin=()
if [ -n "$cpu" ] && command -v taskset >/dev/null; then pin=(taskset -c "$cpu"); fi

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cache="$dir/token_cache.json"
LUA_PATH_5_4="lua/?.lua;;" lua5.4 bench/gen_cache.lua "$accounts" "$cache" >/dev/null
chmod 600 "$cache"

client=11111111-2222-3333-4444-555555555555
tenant=00000000-0000-0000-bbbb-000000000002
authority=https://login.microsoftonline.com/$tenant
user=user$((accounts / 2))@example.com
scope=api://res1/Data.Read
msal_args=(token --client-id "$client" --authority "$authority" --cache "$cache" --account "$user"
  --scope "$scope" --interactive never)

export LUA_PATH_5_4="$PWD/lua/?.lua;$PWD/lua/?/init.lua;;" LUA_CPATH_5_4="$PWD/build/lua5.4/?.so;;"
export LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;;" LUA_CPATH="$PWD/build/luajit/?.so;;"

# measure LABEL CHECK CMD...: (CHECK = 1) checks the command prints the
# expected token; then the median, min and max wall time of RUNS runs, and
# with perf(1) the mean CPU time and page faults per run (on a VM shared
# with other work, CPU time says more than wall time; a first-touch page
# fault costs 10-15 us on these VMs, see above in bench/README.md).
expected=""
measure() {
  local label=$1 check=$2
  shift 2
  if [ "$check" = 1 ]; then
    local out
    out=$("${pin[@]}" "$@")
    if [ -z "$expected" ]; then expected=$out; fi
    if [ "$out" != "$expected" ]; then
      echo "$label printed another token" >&2
      exit 1
    fi
  fi
  local cpu=""
  if command -v perf >/dev/null; then
    cpu=$(perf stat -x, -r "$runs" "${pin[@]}" "$@" 2>&1 >/dev/null |
      awk -F, '$3 == "task-clock" { c = $1 } $3 == "page-faults" { f = $1 }
        END { printf "cpu %6.1f ms  %5d faults", c, f }')
  fi
  for _ in $(seq "$runs"); do
    local s e
    s=$(date +%s%N)
    "${pin[@]}" "$@" >/dev/null
    e=$(date +%s%N)
    echo $(((e - s) / 1000))
  done | sort -n | awk -v label="$label" -v cpu="$cpu" '{ t[NR] = $1 }
    END { printf "%-30s wall median %6.1f ms (min %6.1f, max %6.1f)   %s\n", label,
      t[int((NR + 1) / 2)] / 1000, t[1] / 1000, t[NR] / 1000, cpu }'
}

echo "msal token, cache hit, $accounts accounts ($(stat -c %s "$cache") bytes), $runs runs each, ${pin[*]:-no pinning}"
measure "lua5.4 bin/msal" 1 lua5.4 bin/msal "${msal_args[@]}"
measure "luajit bin/msal" 1 luajit bin/msal "${msal_args[@]}"
measure "python3 msal $(/usr/bin/python3 -c 'import importlib.metadata as m; print(m.version("msal"))' 2>/dev/null)" \
  1 /usr/bin/python3 -I bench/cli_bench.py "$cache" "$client" "$authority" "$user" "$scope"
echo "parts:"
measure "lua5.4 -e ''" 0 lua5.4 -e ""
measure "lua5.4 require msal.core" 0 lua5.4 -e 'require("msal.core")'
measure "lua5.4 require msal" 0 lua5.4 -e 'require("msal")'
measure "python3 -I -c ''" 0 /usr/bin/python3 -I -c ""
measure "python3 -I -c 'import msal'" 0 /usr/bin/python3 -I -c "import msal"

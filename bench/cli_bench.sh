#!/usr/bin/env bash
# Wall time of `msal token` for a cache hit, as a whole process (start, load
# a 100-account cache file, find the account, print the token), on Lua 5.4
# and LuaJIT, beside msal-python doing the same silent call
# (bench/cli_bench.py, Debian's python3-msal). See bench/README.md.
#
#   bench/cli_bench.sh [RUNS] [ACCOUNTS]     (default 50 rounds, 100 accounts)
#
# MSAL_BENCH_SCOPE picks another of each account's five access tokens
# (api://res1/Data.Read ... api://res5/Data.Read); MSAL_BENCH_SECRETS="AT,RT"
# sets the tokens' lengths (bench/gen_cache.lua: 1200,800 by default).
#
# Every process runs on one CPU (MSAL_BENCH_CPU, 0 by default; "" leaves it
# to the kernel), as scripts/bench does: this machine's two vCPUs differ.
# The script pins itself, so its children inherit the CPU without a taskset
# process each (a fork and exec costs ~4.5 ms of wall time on these VMs).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s all
runs=${1:-50}
accounts=${2:-100}
cpu=${MSAL_BENCH_CPU-0}
pinned=""
if [ -n "$cpu" ] && command -v taskset >/dev/null; then
  taskset -cp "$cpu" $$ >/dev/null
  pinned="pinned to CPU $cpu"
fi

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cache="$dir/token_cache.json"
LUA_PATH_5_4="lua/?.lua;;" lua5.4 bench/gen_cache.lua "$accounts" "$cache" >/dev/null
chmod 600 "$cache"

client=11111111-2222-3333-4444-555555555555
tenant=00000000-0000-0000-bbbb-000000000002
authority=https://login.microsoftonline.com/$tenant
user=user$((accounts > 1 ? accounts / 2 : 1))@example.com
scope=${MSAL_BENCH_SCOPE:-api://res1/Data.Read} # res1..res5
msal_args=(token --client-id "$client" --authority "$authority" --cache "$cache" --account "$user"
  --scope "$scope" --interactive never)

# the command's compiled modules (msal.cli.bytecode) live under the run's
# own cache home: the first, checked, run of each interpreter writes them
export XDG_CACHE_HOME="$dir/xdg"
export LUA_PATH_5_4="$PWD/lua/?.lua;$PWD/lua/?/init.lua;;" LUA_CPATH_5_4="$PWD/build/lua5.4/?.so;;"
export LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;;" LUA_CPATH="$PWD/build/luajit/?.so;;"

# The commands, by label; CHECKED ones must print the expected token.
labels=() checked=()
declare -A cmd
add() { # add LABEL CHECK CMD...
  local label=$1
  labels+=("$label")
  checked+=("$2")
  shift 2
  cmd[$label]=$(printf '%q ' "$@")
}
add "lua5.4 bin/msal" 1 lua5.4 bin/msal "${msal_args[@]}"
add "luajit bin/msal" 1 luajit bin/msal "${msal_args[@]}"
# The command as `luarocks install` leaves it (a tree's bin/msal, run as a
# command: its shell preamble starts lua5.4).
if command -v luarocks >/dev/null; then
  luarocks --lua-version=5.4 --tree="$dir/tree" make --deps-mode=none lua-msal-scm-1.rockspec >"$dir/luarocks.log" 2>&1 ||
    { cat "$dir/luarocks.log" >&2; exit 1; }
  add "msal (luarocks tree, Lua 5.4)" 1 "$dir/tree/bin/msal" "${msal_args[@]}"
fi
add "lua5.4 bin/msal, no bytecode" 1 env MSAL_BYTECODE_CACHE=0 lua5.4 bin/msal "${msal_args[@]}"
add "luajit bin/msal, no bytecode" 1 env MSAL_BYTECODE_CACHE=0 luajit bin/msal "${msal_args[@]}"
add "python3 msal $(/usr/bin/python3 -c 'import importlib.metadata as m; print(m.version("msal"))' 2>/dev/null)" \
  1 /usr/bin/python3 -I bench/cli_bench.py "$cache" "$client" "$authority" "$user" "$scope"
add "lua5.4 -e ''" 0 lua5.4 -e ""
add "lua5.4 require msal.core" 0 lua5.4 -e 'require("msal.core")'
add "lua5.4 require msal" 0 lua5.4 -e 'require("msal")'
add "python3 -I -c ''" 0 /usr/bin/python3 -I -c ""
add "python3 -I -c 'import msal'" 0 /usr/bin/python3 -I -c "import msal"

# Every checked command prints the same token (the first run of each bin/msal
# also writes its compiled modules: msal.cli.bytecode).
expected=""
for i in "${!labels[@]}"; do
  label=${labels[$i]}
  [ "${checked[$i]}" = 1 ] || continue
  out=$(eval "${cmd[$label]}")
  if [ -z "$expected" ]; then expected=$out; fi
  if [ "$out" != "$expected" ]; then
    echo "$label printed another token" >&2
    exit 1
  fi
done

# RUNS rounds, each running every command once, so that the host's noise
# (this VM's neighbours come and go) falls on all of them alike: per run the
# wall time (bash's clock around the command), and with perf(1), in a second run
# of the same round, its CPU time (task-clock) and page faults. A first-touch
# page fault costs 10-15 us on these VMs (see above in bench/README.md).
rows="$dir/rows"
for _ in $(seq "$runs"); do
  for label in "${labels[@]}"; do
    s=${EPOCHREALTIME/./}
    eval "${cmd[$label]}" >/dev/null
    e=${EPOCHREALTIME/./}
    c=-1 f=-1
    if command -v perf >/dev/null; then
      read -r c f < <(eval "perf stat -x, -e task-clock,page-faults ${cmd[$label]}" 2>&1 >/dev/null |
        awk -F, '$3 == "task-clock" { c = $1 } $3 == "page-faults" { f = $1 } END { print c, f }')
    fi
    printf '%s\t%s\t%s\t%s\n' "$label" "$((e - s))" "$c" "$f" >>"$rows"
  done
done

echo "msal token, cache hit, $accounts accounts ($(stat -c %s "$cache") bytes), $runs rounds, ${pinned:-not pinned}"
echo "medians per process; ratio = msal-python's median / this one's"
python_label=$(printf '%s\n' "${labels[@]}" | grep '^python3 msal')
awk -F'\t' -v order="$(printf '%s\n' "${labels[@]}")" -v py="$python_label" '
  function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  { wall[$1] = wall[$1] " " $2 / 1000; cpu[$1] = cpu[$1] " " $3; faults[$1] = faults[$1] " " $4 }
  END {
    n = split(order, names, "\n")
    pw = median(wall[py]); pc = median(cpu[py])
    for (i = 1; i <= n; i++) {
      l = names[i]; if (l == "") continue
      w = median(wall[l]); c = median(cpu[l])
      printf "%-30s wall %6.1f ms (%5.1fx)   cpu %6.1f ms (%5.1fx)   %5d faults\n", l, w, pw / w, c, pc / c, median(faults[l])
    }
  }' "$rows"

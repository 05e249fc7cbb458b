-- acquire_token_silent inside nginx (2 workers), from a shared-dictionary
-- cache of 10,000 accounts, under wrk; beside it the same handler returning
-- a constant. Prints requests/s of both (wrk -t2 -c50, 10 s) and the p50
-- latency of both on one connection: their difference is what msal adds to
-- a request.
--
--   scripts/bench-openresty      (or: luajit bench/openresty_bench.lua [accounts] [seconds])
local proc = require("proc")
local nginx = require("nginx")

local ROOT = os.getenv("MSAL_TEST_ROOT") or "."
local accounts = tonumber(arg[1] or os.getenv("MSAL_BENCH_ACCOUNTS") or "10000")
local seconds = tonumber(arg[2] or "10")
-- partitions each worker keeps parsed (the plugin's local_max_partitions):
-- by default all of them; MSAL_BENCH_PARSED=1000 is the plugin's default
local parsed = tonumber(os.getenv("MSAL_BENCH_PARSED") or accounts)

local dir, remove_dir = proc.tempdir()
local cache = dir .. "/cache.json"
local _, gen_code, gen_err = proc.run(("luajit %s/bench/gen_cache.lua %d %s"):format(ROOT, accounts, cache))
assert(gen_code == 0, gen_err)

local srv = nginx.start({
  workers = 2,
  http = ([[
    lua_shared_dict tokens 512m;
    init_by_lua_block {
      package.path = "$ROOT/bench/openresty/?.lua;" .. package.path
      require("bench_app").load("%s")
    }
    init_worker_by_lua_block { require("bench_app").init(%d) }
  ]]):format(cache, parsed),
  server = [[
    location = /hit { content_by_lua_block { require("bench_app").hit() } }
    location = /constant { content_by_lua_block { require("bench_app").constant() } }
  ]],
})

local function wrk(path, threads, conns, secs)
  local out, code, err = proc.run(("MSAL_BENCH_ACCOUNTS=%d wrk -t%d -c%d -d%ds --latency -s %s/bench/openresty/wrk_accounts.lua %s%s")
    :format(accounts, threads, conns, secs, ROOT, srv.base, path))
  assert(code == 0, "wrk failed: " .. tostring(err))
  local rps = tonumber(out:match("Requests/sec:%s*([%d%.]+)"))
  local function us(s)
    local v, unit = s:match("([%d%.]+)(%a+)")
    v = tonumber(v)
    return unit == "us" and v or unit == "ms" and v * 1000 or unit == "s" and v * 1e6 or v
  end
  local p50, p99 = out:match("50%%%s+(%S+)"), out:match("99%%%s+(%S+)")
  local non2xx = tonumber(out:match("Non%-2xx or 3xx responses:%s*(%d+)") or "0")
  assert(rps and p50, "could not read wrk's output:\n" .. out)
  assert(non2xx == 0, non2xx .. " failed requests:\n" .. out)
  return { rps = rps, p50 = us(p50), p99 = us(p99) }
end

local ok, err = pcall(function()
  -- warm-up: every worker meets the accounts once (first hits load partitions)
  wrk("/hit", 2, 50, math.max(2, math.floor(seconds / 2)))
  wrk("/constant", 2, 50, 2)
  local const, hit = wrk("/constant", 2, 50, seconds), wrk("/hit", 2, 50, seconds)
  local const1, hit1 = wrk("/constant", 1, 1, seconds), wrk("/hit", 1, 1, seconds)
  print(("nginx, 2 workers, shared-dictionary cache of %d accounts (%d kept parsed per worker), %d s per run")
    :format(accounts, parsed, seconds))
  print(("wrk -t2 -c50  constant %9.0f req/s   silent hit %9.0f req/s   ratio %.2f")
    :format(const.rps, hit.rps, hit.rps / const.rps))
  print(("wrk -t1 -c1   constant p50 %6.1f us  silent hit p50 %6.1f us  added %.1f us (p99 %.0f / %.0f us)")
    :format(const1.p50, hit1.p50, hit1.p50 - const1.p50, const1.p99, hit1.p99))
  print(("              per request on 2 workers at -c50: %.1f us of worker time added")
    :format((2 / hit.rps - 2 / const.rps) * 1e6))
end)
local log = srv:error_log()
srv:stop()
remove_dir()
if not ok then
  io.stderr:write(tostring(err), "\n", log:sub(-2000), "\n")
  os.exit(1)
end

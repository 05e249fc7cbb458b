-- Single flight across processes: 8 processes sharing one cache (a file,
-- or Redis) need the same account's refresh at once, 10 rounds; token
-- requests made, refusals (the authority rotates refresh tokens) and wall
-- time per round (from the moment the 8 waiting processes are released to
-- the last one's exit; polled every 10 ms), with single flight across processes on and off
-- (`refresh_lock_wait_ms = 0`). Each refresh takes 50 ms at the authority.
--
--   scripts/bench-xflight   (starts the local authority, runs lua5.4 and luajit)
package.path = "spec/?.lua;spec/support/?.lua;" .. package.path
local entra = require("entra")
local xflight = require("xflight")

local ROUNDS = 10

local median = dofile("bench/stats.lua").median

local function run(backend, wait)
  entra.reset()
  require("msal.authority").clear_cache()
  entra.config({ rt_single_use = true })
  entra.next({ endpoint = "token", when = { grant_type = "refresh_token" }, override = {}, delay_ms = 50, count = 10000 })
  local dir = xflight.fresh_dir()
  local cache = backend.cache(dir, wait)
  xflight.seed(cache)
  local script = xflight.child_script(dir)
  local requests, refused, times = 0, 0, {}
  for _ = 1, ROUNDS do
    xflight.expire(cache)
    local before = entra.refresh_requests()
    local outs, ms = xflight.round(dir, script, cache)
    times[#times + 1] = ms
    requests = requests + entra.refresh_requests() - before
    for _, o in ipairs(outs) do
      if o:match("^err") then refused = refused + 1 end
    end
    if refused > 0 then xflight.seed(cache) end -- signed in again after lost refresh tokens
  end
  return requests / ROUNDS, refused / ROUNDS, median(times)
end

print(("%d processes x %d rounds, one refresh needed per round (%s)"):format(xflight.N, ROUNDS, _VERSION))
print(("%-6s %-4s %18s %18s %18s"):format("cache", "lock", "requests/round", "refused/round", "ms from go (median)"))
for _, name in ipairs({ "file", "redis" }) do
  for _, mode in ipairs({ { "on", 10000 }, { "off", 0 } }) do
    local req, ref, ms = run(xflight.BACKENDS[name], mode[2])
    print(("%-6s %-4s %18.1f %18.1f %18.0f"):format(name, mode[1], req, ref, ms))
  end
end
xflight.cleanup()

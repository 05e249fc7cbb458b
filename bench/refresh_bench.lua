-- Refresh benchmark against the local Entra-like authority (loopback):
--   1. 100 coroutines call acquire_token_silent on one expired token: how
--      many token requests reach the server (single flight: 1);
--   2. refresh round trip (force_refresh) over a kept-alive connection vs a
--      new connection (a new transport) for each request;
--   3. CPU time of an idle 5-second wait on a slow token endpoint.
--
--   scripts/bench-refresh   (starts the server, runs this with lua5.4 and luajit)
package.path = "spec/?.lua;spec/support/?.lua;" .. package.path
local msal = require("msal")
local entra = require("entra")
local core = require("msal.core")

local median = dofile("bench/stats.lua").median

local function new_app(skew, transport)
  return msal.PublicClientApplication.new({
    auth = { client_id = "lua-msal-app", authority = entra.base() .. "/" .. entra.TENANT },
    system = { clock = function() return os.time() + skew[1] end, transport = transport },
  })
end

entra.reset()
local skew = { 0 }
local app = new_app(skew)
entra.sign_in(app)
local account = app:get_all_accounts()[1]
local cache_json = app:get_token_cache():serialize()

-- 1. single flight
skew[1] = 3600
local before = #entra.requests("token")
local done = 0
for _ = 1, 100 do
  msal.async(function()
    assert(app:acquire_token_silent({ scopes = { "User.Read" }, account = account }):await())
    done = done + 1
  end)
end
msal.run()
print(("single flight: 100 concurrent silent calls on an expired token -> %d token request(s), %d results")
  :format(#entra.requests("token") - before, done))

-- 2. kept-alive vs new connection
local N = 200
local function round_trips(make_transport)
  local times = {}
  local shared = make_transport()
  for i = 1, N do
    local a = new_app({ 0 }, shared or make_transport(true))
    a:get_token_cache():deserialize(cache_json)
    local t = core.now_ms()
    assert(a:acquire_token_silent({ scopes = { "User.Read" }, account = account, force_refresh = true }):await())
    times[i] = core.now_ms() - t
    if not shared then require("msal.network").transport(a):close() end
  end
  return median(times)
end
local curl = require("msal.transport.curl")
-- discovery is cached per process: warm it so both runs time the token request only
local warm = new_app({ 0 })
warm:get_token_cache():deserialize(cache_json)
assert(warm:acquire_token_silent({ scopes = { "User.Read" }, account = account, force_refresh = true }):await())
local keep = round_trips(function(fresh) if not fresh then return curl.new() end end)
local fresh = round_trips(function(fresh) if fresh then return curl.new() end end)
print(("refresh round trip (median of %d): kept-alive %.3f ms, new connection each time %.3f ms, ratio %.2fx")
  :format(N, keep, fresh, fresh / keep))

-- 3. idle wait
entra.next({ endpoint = "token", delay_ms = 5000, canned = "invalid_grant", when = { grant_type = "refresh_token" } })
local c0, t0 = os.clock(), core.now_ms()
local a = new_app({ 0 })
a:get_token_cache():deserialize(cache_json)
a:acquire_token_silent({ scopes = { "User.Read" }, account = account, force_refresh = true }):await()
print(("idle wait on a 5 s slow token endpoint: %.0f ms wall, %.1f ms CPU"):format(core.now_ms() - t0,
  (os.clock() - c0) * 1000))

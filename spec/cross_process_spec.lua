-- Single flight across processes (#18 item 1): processes that share a
-- cache (a file, or Redis) and need the same refresh at once make one token
-- request. The authority rotates refresh tokens (a redeemed one is refused),
-- so a second request for the same refresh would also fail.
local cjson = require("cjson")
local core = require("msal.core")
local entra = require("entra")
local files = require("files")
local proc = require("proc")
local xflight = require("xflight")

local N = xflight.N
local fresh_dir, child_script, authority = xflight.fresh_dir, xflight.child_script, xflight.authority
local seed, expire, valid, round, tally = xflight.seed, xflight.expire, xflight.valid, xflight.round, xflight.tally
teardown(function() xflight.cleanup() end)

for name, backend in pairs(xflight.BACKENDS) do
describe("single flight across processes sharing a " .. name .. " cache", function()
  before_each(function()
    entra.reset()
    require("msal.authority").clear_cache()
    -- a redeemed refresh token is refused; each refresh takes 150 ms, so
    -- the eight processes are all waiting while it is in flight
    entra.config({ rt_single_use = true })
    entra.next({ endpoint = "token", when = { grant_type = "refresh_token" }, override = {}, delay_ms = 150,
      count = 1000 })
  end)

  it("makes one token request per round for 8 processes, 20 rounds, and keeps the cache readable", function()
    local dir = fresh_dir()
    local cache = backend.cache(dir, 10000)
    seed(cache)
    local script = child_script(dir)
    for r = 1, 20 do
      expire(cache)
      local before = entra.refresh_requests()
      local t = tally(round(dir, script, cache))
      assert.equal(1, entra.refresh_requests() - before, "round " .. r .. ": " .. cjson.encode(t))
      assert.same({ ["ok false"] = 1, ["ok true"] = N - 1 }, t, "round " .. r)
      assert.is_true(valid(cache), "round " .. r)
    end
  end)

  it("makes one client-credentials request for 8 daemons that need the same app token", function()
    entra.next({ endpoint = "token", when = { grant_type = "client_credentials" }, override = {}, delay_ms = 150,
      count = 1000 })
    local dir = fresh_dir()
    local cache = backend.cache(dir, 10000)
    local t = tally(round(dir, xflight.app_child_script(dir), cache))
    assert.equal(1, #entra.grant_forms("client_credentials"), cjson.encode(t))
    assert.same({ ["ok false"] = 1, ["ok true"] = N - 1 }, t)
  end)

  it("without it (refresh_lock_wait_ms = 0) the processes race and lose their refresh tokens", function()
    local dir = fresh_dir()
    local cache = backend.cache(dir, 0)
    seed(cache)
    expire(cache)
    local t = tally(round(dir, child_script(dir), cache))
    assert.is_true(entra.refresh_requests() > 1)
    assert.is_true((t["err bad_token"] or 0) + (t["err invalid_grant"] or 0) > 0, cjson.encode(t))
  end)

  it("lets the others proceed when the holder of the refresh lock is killed", function()
    entra.reset()
    -- the first refresh hangs for 20 s: its process is killed meanwhile
    entra.next({ endpoint = "token", when = { grant_type = "refresh_token" }, override = {}, delay_ms = 20000 })
    local dir = fresh_dir()
    -- Redis frees a dead holder's lock when it expires (30 s): waiters
    -- stop waiting after refresh_lock_wait_ms instead
    local cache = backend.cache(dir, name == "redis" and 1000 or 10000)
    seed(cache)
    expire(cache)
    local script = child_script(dir)
    io.open(dir .. "/go", "w"):close()
    local holder = proc.background(("%s %s %s %s %s %s"):format(proc.LUA, proc.quote(script), proc.quote(dir),
      proc.quote(authority()), proc.quote(cjson.encode(cache)), proc.quote(dir .. "/holder.pid")), dir .. "/holder")
    local deadline = core.now_ms() + 10000
    while not (backend.lock_left(dir) and entra.refresh_requests() == 1) and core.now_ms() < deadline do
      core.sleep_ms(10)
    end
    assert.truthy(backend.lock_left(dir), "the holder took no refresh lock")
    local pid = assert(files.read(dir .. "/holder.pid"))
    assert(os.execute("kill -9 " .. pid))
    holder:wait(5000)
    local t0 = core.now_ms()
    local other = proc.background(("%s %s %s %s %s ''"):format(proc.LUA, proc.quote(script), proc.quote(dir),
      proc.quote(authority()), proc.quote(cjson.encode(cache))), dir .. "/other")
    assert.equal(0, other:wait(15000))
    assert.equal("ok false", (other:output():gsub("\n", "")))
    assert.is_true(core.now_ms() - t0 < 5000, "waited for a dead holder")
    assert.equal(2, entra.refresh_requests())
  end)
end)
end

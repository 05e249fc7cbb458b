-- Single flight across processes (#18 item 1, file cache): processes that
-- share a cache file and need the same refresh at once make one token
-- request. The authority rotates refresh tokens (a redeemed one is refused),
-- so a second request for the same refresh would also fail.
local msal = require("msal")
local cjson = require("cjson")
local core = require("msal.core")
local entra = require("entra")
local proc = require("proc")
local files = require("files")

local N = 8
local CLIENT = "lua-msal-app"
local tmp, remove_tmp = proc.tempdir()
teardown(function() remove_tmp() end)

local seq = 0
local function fresh_dir()
  seq = seq + 1
  local dir = ("%s/c%d"):format(tmp, seq)
  assert(os.execute("mkdir -m 700 " .. proc.quote(dir)))
  return dir
end

-- A child: opens the shared file cache, says it is ready, waits for `go`,
-- then one acquire_token_silent; prints "ok <from_cache>" or "err <code>".
local CHILD = [[
local msal = require("msal")
local core = require("msal.core")
local dir, authority, cache, pidfile = arg[1], arg[2], require("cjson").decode(arg[3]), arg[4]
if pidfile ~= "" then local f = io.open(pidfile, "w"); f:write(core.fileio.pid()); f:close() end
local app = msal.PublicClientApplication.new({ auth = { client_id = "lua-msal-app", authority = authority },
  cache = cache })
local account = app:get_account({ home_account_id = "00000000-0000-0000-aaaa-000000000001.00000000-0000-0000-bbbb-000000000002" })
io.open(dir .. "/ready." .. core.fileio.pid(), "w"):close()
local go = dir .. "/go"
while not core.fileio.stat(go) do core.sleep_ms(1) end
local r, err = app:acquire_token_silent({ scopes = { "User.Read" }, account = account }):await()
print(r and ("ok " .. tostring(r.from_cache)) or ("err " .. tostring(err.error_code)))
]]

local function child_script(dir)
  return proc.lua_script(dir .. "/child.lua", CHILD)
end

local function authority() return entra.base() .. "/" .. entra.TENANT end

-- Where the processes share their cache: a file, or a Redis server.
local redis_server = require("redis_server")
local server
local BACKENDS = {
  file = {
    cache = function(dir, wait) return { location = "file", path = dir .. "/cache.json", refresh_lock_wait_ms = wait } end,
    lock_left = function(dir)
      for _, name in ipairs(proc.ls(dir)) do
        if name:match("^cache%.json%.refresh%-%x+%.lockfile$") then return name end
      end
    end,
  },
  redis = {
    cache = function(dir, wait)
      server = server or redis_server.start()
      return { location = "redis", url = server:url(), key_prefix = "xp" .. dir:match("(%d+)$"),
        refresh_lock_wait_ms = wait }
    end,
    lock_left = function(dir)
      local conn = assert(core.redis.connect({ host = "127.0.0.1", port = server.port, timeout_ms = 1000 }))
      local keys = conn:command("KEYS", "xp" .. dir:match("(%d+)$") .. ":refresh-lock:*")
      conn:close()
      return keys and keys[1]
    end,
  },
}
teardown(function() if server then server:stop() end end)

local function new_app(cache)
  return msal.PublicClientApplication.new({ auth = { client_id = CLIENT, authority = authority() }, cache = cache })
end

-- Signs the user in through the shared cache.
local function seed(cache)
  entra.sign_in(new_app(cache))
end

-- Every access token gone from the shared cache: the next silent call
-- refreshes.
local function expire(cache)
  local app = new_app(cache)
  local tc = app:get_token_cache()
  local acct = assert(app:get_account({ home_account_id = entra.UID .. "." .. entra.TENANT }))
  tc:for_partition({ home_account_id = acct.home_account_id, tenant_id = acct.tenant_id }):access(true, function()
    for _, k in ipairs(tc.store:find("AccessToken", {})) do tc.store:remove("AccessToken", k) end
  end)
end

-- The shared cache still reads, with the account in it. (A Redis cache
-- partitioned by account lists no accounts yet: #18 item 5.)
local function valid(cache)
  return new_app(cache):get_account({ home_account_id = entra.UID .. "." .. entra.TENANT }) ~= nil
end

local function count_ready(dir)
  local n = 0
  for _, name in ipairs(proc.ls(dir)) do
    if name:match("^ready%.") then n = n + 1 end
  end
  return n
end

-- One round: N children started, released together; their outputs.
local rounds = 0
local function round(dir, script, cache)
  rounds = rounds + 1
  for _, name in ipairs(proc.ls(dir)) do
    if name:match("^ready%.") or name == "go" then os.remove(dir .. "/" .. name) end
  end
  local jobs = {}
  for i = 1, N do
    jobs[i] = proc.background(("%s %s %s %s %s ''"):format(proc.LUA, proc.quote(script), proc.quote(dir),
      proc.quote(authority()), proc.quote(cjson.encode(cache))), ("%s/job%d.%d"):format(dir, rounds, i))
  end
  local deadline = core.now_ms() + 15000
  while count_ready(dir) < N and core.now_ms() < deadline do core.sleep_ms(5) end
  assert.equal(N, count_ready(dir))
  io.open(dir .. "/go", "w"):close()
  local outs = {}
  for i, job in ipairs(jobs) do
    assert.equal(0, job:wait(30000), job:output())
    outs[i] = job:output():match("[^\n]*\n?$"):gsub("\n", "")
  end
  return outs
end

local function tally(outs)
  local t = {}
  for _, o in ipairs(outs) do t[o] = (t[o] or 0) + 1 end
  return t
end

for name, backend in pairs(BACKENDS) do
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

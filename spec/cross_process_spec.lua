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
local dir, authority, wait, pidfile = arg[1], arg[2], tonumber(arg[3]), arg[4]
if pidfile ~= "" then local f = io.open(pidfile, "w"); f:write(core.fileio.pid()); f:close() end
local app = msal.PublicClientApplication.new({ auth = { client_id = "lua-msal-app", authority = authority },
  cache = { location = "file", path = dir .. "/cache.json", refresh_lock_wait_ms = wait } })
local account = app:get_all_accounts()[1]
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

-- Signs the user in with a file cache at dir/cache.json.
local function seed(dir)
  local app = msal.PublicClientApplication.new({ auth = { client_id = CLIENT, authority = authority() },
    cache = { location = "file", path = dir .. "/cache.json" } })
  entra.sign_in(app)
end

-- Every access token gone from the file: the next silent call refreshes.
local function expire(dir)
  local path = dir .. "/cache.json"
  local doc = cjson.decode((assert(files.read(path))))
  doc.AccessToken = {}
  files.write(path, cjson.encode(doc))
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
local function round(dir, script, wait)
  rounds = rounds + 1
  for _, name in ipairs(proc.ls(dir)) do
    if name:match("^ready%.") or name == "go" then os.remove(dir .. "/" .. name) end
  end
  local jobs = {}
  for i = 1, N do
    jobs[i] = proc.background(("%s %s %s %s %d ''"):format(proc.LUA, proc.quote(script), proc.quote(dir),
      proc.quote(authority()), wait), ("%s/job%d.%d"):format(dir, rounds, i))
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

describe("single flight across processes sharing a file cache", function()
  before_each(function()
    entra.reset()
    require("msal.authority").clear_cache()
    -- a redeemed refresh token is refused; each refresh takes 150 ms, so
    -- the eight processes are all waiting while it is in flight
    entra.config({ rt_single_use = true })
    entra.next({ endpoint = "token", when = { grant_type = "refresh_token" }, override = {}, delay_ms = 150,
      count = 1000 })
  end)

  it("makes one token request per round for 8 processes, 20 rounds, and keeps the file valid", function()
    local dir = fresh_dir()
    seed(dir)
    local script = child_script(dir)
    for r = 1, 20 do
      expire(dir)
      local before = entra.refresh_requests()
      local t = tally(round(dir, script, 10000))
      assert.equal(1, entra.refresh_requests() - before, "round " .. r .. ": " .. cjson.encode(t))
      assert.same({ ["ok false"] = 1, ["ok true"] = N - 1 }, t, "round " .. r)
      assert.is_table(cjson.decode((assert(files.read(dir .. "/cache.json")))))
    end
  end)

  it("without it (refresh_lock_wait_ms = 0) the processes race and lose their refresh tokens", function()
    local dir = fresh_dir()
    seed(dir)
    expire(dir)
    local t = tally(round(dir, child_script(dir), 0))
    assert.is_true(entra.refresh_requests() > 1)
    assert.is_true((t["err bad_token"] or 0) + (t["err invalid_grant"] or 0) > 0, cjson.encode(t))
  end)

  it("lets the others proceed when the holder of the refresh lock is killed", function()
    entra.reset()
    -- the first refresh hangs for 20 s: its process is killed meanwhile
    entra.next({ endpoint = "token", when = { grant_type = "refresh_token" }, override = {}, delay_ms = 20000 })
    local dir = fresh_dir()
    seed(dir)
    expire(dir)
    local script = child_script(dir)
    io.open(dir .. "/go", "w"):close()
    local holder = proc.background(("%s %s %s %s 10000 %s"):format(proc.LUA, proc.quote(script), proc.quote(dir),
      proc.quote(authority()), proc.quote(dir .. "/holder.pid")), dir .. "/holder")
    local deadline = core.now_ms() + 10000
    local function lock_file()
      for _, name in ipairs(proc.ls(dir)) do
        if name:match("^cache%.json%.refresh%-%x+%.lockfile$") then return name end
      end
    end
    while not (lock_file() and entra.refresh_requests() == 1) and core.now_ms() < deadline do core.sleep_ms(10) end
    assert.truthy(lock_file(), "the holder took no refresh lock")
    local pid = assert(files.read(dir .. "/holder.pid"))
    assert(os.execute("kill -9 " .. pid))
    holder:wait(5000)
    local t0 = core.now_ms()
    local other = proc.background(("%s %s %s %s 10000 ''"):format(proc.LUA, proc.quote(script), proc.quote(dir),
      proc.quote(authority())), dir .. "/other")
    assert.equal(0, other:wait(15000))
    assert.equal("ok false", (other:output():gsub("\n", "")))
    assert.is_true(core.now_ms() - t0 < 5000, "waited for a dead holder")
    assert.equal(2, entra.refresh_requests())
  end)
end)

--- Processes that share a token cache and need one refresh at once: the
-- machinery of spec/cross_process_spec.lua and bench/xflight_bench.lua.
-- Children run this interpreter and build (proc.lua_script); each opens the
-- shared cache, says it is ready, waits for a `go` file and makes one
-- acquire_token_silent, printing "ok <from_cache>" or "err <code>".
-- @module xflight
local msal = require("msal")
local cjson = require("cjson")
local core = require("msal.core")
local entra = require("entra")
local proc = require("proc")
local redis_server = require("redis_server")

local M = {}

M.N = 8
local N = M.N
local CLIENT = "lua-msal-app"
local tmp, remove_tmp = proc.tempdir()

local seq = 0
function M.fresh_dir()
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

function M.child_script(dir)
  return proc.lua_script(dir .. "/child.lua", CHILD)
end

-- The same for a daemon: a confidential client's app token (client
-- credentials), no account.
local APP_CHILD = [[
local msal = require("msal")
local core = require("msal.core")
local dir, authority, cache = arg[1], arg[2], require("cjson").decode(arg[3])
local app = msal.ConfidentialClientApplication.new({ auth = { client_id = "lua-msal-confidential",
  client_secret = "s3cret", authority = authority }, cache = cache })
io.open(dir .. "/ready." .. core.fileio.pid(), "w"):close()
local go = dir .. "/go"
while not core.fileio.stat(go) do core.sleep_ms(1) end
local r, err = app:acquire_token_by_client_credential({ scopes = { "https://graph.microsoft.com/.default" } }):await()
print(r and ("ok " .. tostring(r.from_cache)) or ("err " .. tostring(err.error_code)))
]]

function M.app_child_script(dir)
  return proc.lua_script(dir .. "/app_child.lua", APP_CHILD)
end

function M.authority() return entra.base() .. "/" .. entra.TENANT end

-- Where the processes share their cache: a file, or a Redis server.
local server
M.BACKENDS = {
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
      local keys = conn:command("KEYS", "xp" .. dir:match("(%d+)$") .. ":{*}:lock:*")
      conn:close()
      return keys and keys[1]
    end,
  },
}
--- Stops what the module started (the Redis server, the temporary files).
function M.cleanup()
  if server then server:stop() end
  server = nil
  remove_tmp()
end

local function new_app(cache)
  return msal.PublicClientApplication.new({ auth = { client_id = CLIENT, authority = M.authority() }, cache = cache })
end

-- Signs the user in through the shared cache.
function M.seed(cache)
  entra.sign_in(new_app(cache))
end

-- Every access token gone from the shared cache: the next silent call
-- refreshes.
function M.expire(cache)
  local app = new_app(cache)
  local tc = app:get_token_cache()
  local acct = assert(app:get_account({ home_account_id = entra.UID .. "." .. entra.TENANT }))
  tc:for_partition({ home_account_id = acct.home_account_id, tenant_id = acct.tenant_id }):access(true, function()
    for _, k in ipairs(tc.store:find("AccessToken", {})) do tc.store:remove("AccessToken", k) end
  end)
end

-- The shared cache still reads, with the account in it. (A Redis cache
-- partitioned by account lists no accounts yet: #18 item 5.)
function M.valid(cache)
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
function M.round(dir, script, cache)
  rounds = rounds + 1
  for _, name in ipairs(proc.ls(dir)) do
    if name:match("^ready%.") or name == "go" then os.remove(dir .. "/" .. name) end
  end
  local jobs = {}
  for i = 1, N do
    jobs[i] = proc.background(("%s %s %s %s %s ''"):format(proc.LUA, proc.quote(script), proc.quote(dir),
      proc.quote(M.authority()), proc.quote(cjson.encode(cache))), ("%s/job%d.%d"):format(dir, rounds, i))
  end
  local deadline = core.now_ms() + 15000
  while count_ready(dir) < N and core.now_ms() < deadline do core.sleep_ms(5) end
  assert(count_ready(dir) == N, "not every child became ready")
  io.open(dir .. "/go", "w"):close()
  local go_at = core.now_ms()
  local outs = {}
  for i, job in ipairs(jobs) do
    assert(job:wait(30000) == 0, job:output())
    outs[i] = job:output():match("[^\n]*\n?$"):gsub("\n", "")
  end
  return outs, core.now_ms() - go_at
end

function M.tally(outs)
  local t = {}
  for _, o in ipairs(outs) do t[o] = (t[o] or 0) + 1 end
  return t
end

return M

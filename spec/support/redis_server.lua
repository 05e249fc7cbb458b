-- A private redis-server on a free loopback port, for the Redis cache spec
-- and benchmark: no persistence, stopped by its PID.
local core = require("msal.core")

local M = {}

local Server = {}
Server.__index = Server

local function sh_ok(cmd)
  local a = os.execute(cmd) -- true (5.4) or 0 (LuaJIT) on success
  return a == true or a == 0
end

--- The path of redis-server, or raises saying how to get it.
function M.binary()
  local p = io.popen("command -v redis-server 2>/dev/null")
  local path = p and p:read("*l")
  if p then p:close() end
  if not path or path == "" then
    error("redis-server is missing: run scripts/setup (it installs Debian's redis-server)", 2)
  end
  return path
end

local function ping(port)
  local conn = core.redis.connect({ host = "127.0.0.1", port = port, timeout_ms = 200 })
  if not conn then return false end
  local pong = conn:command("PING")
  conn:close()
  return pong == "PONG"
end

-- Running, and not a zombie: the server outlives the shell that started it,
-- so who reaps it (and when) is up to the system.
function Server:alive()
  if not self.pid then return false end
  local f = io.open("/proc/" .. self.pid .. "/stat")
  if not f then return sh_ok("kill -0 " .. self.pid .. " 2>/dev/null") end
  local stat = f:read("*a") or ""
  f:close()
  local state = stat:match("^%d+ %b() (%a)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end

-- Starts redis-server on self.port; true once it answers PING.
function Server:launch()
  local log = os.tmpname()
  self.log = log
  local cmd = ("%s --port %d --bind 127.0.0.1 --save '' --appendonly no --daemonize no > %s 2>&1 & echo $!")
    :format(self.binary, self.port, log)
  local p = assert(io.popen(cmd))
  self.pid = tonumber(p:read("*l"))
  p:close()
  for _ = 1, 300 do
    if ping(self.port) then return true end
    if not self:alive() then return false end
    core.sleep_ms(10)
  end
  return false
end

--- Stops the server and waits until it is gone.
function Server:stop()
  if not self.pid then return end
  os.execute("kill " .. self.pid .. " 2>/dev/null")
  for _ = 1, 500 do
    if not self:alive() then break end
    core.sleep_ms(10)
  end
  self.pid = nil
  if self.log then os.remove(self.log) end
end

--- Starts it again on the same port (empty: nothing is persisted).
function Server:restart()
  self:stop()
  assert(self:launch(), "redis-server did not come back on port " .. self.port)
end

--- The URL of the server's database 0.
function Server:url()
  return "redis://127.0.0.1:" .. self.port .. "/0"
end

--- Starts a server on a free port (tries a few).
-- @treturn table `{port, pid, url(), stop(), restart()}`
function M.start()
  local bin = M.binary()
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
  for _ = 1, 20 do
    local s = setmetatable({ binary = bin, port = math.random(20000, 60000) }, Server)
    if not ping(s.port) then
      if s:launch() then return s end
      s:stop()
    end
  end
  error("could not start redis-server on a free loopback port")
end

return M

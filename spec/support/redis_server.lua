-- A private redis-server on a free loopback port, for the Redis specs and
-- benchmark: no persistence, stopped by its PID. Optionally over TLS only
-- (certificates made here with `openssl req`), with ACL users, or as a
-- node of a cluster (redis_cluster.lua).
local core = require("msal.core")
local proc = require("proc")

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

--- Makes, in dir, a test CA and what it signs, with `openssl req` (P-256
-- keys: fast): ca.crt/ca.key; server.crt/server.key for 127.0.0.1, ::1 and
-- localhost; client.crt/client.key (mTLS); and other-ca.crt, a CA that
-- signed none of them.
-- @treturn table the paths: `{ca, server_cert, server_key, client_cert, client_key, other_ca}`
function M.make_certs(dir)
  local function run(cmd)
    local out, code = proc.sh(cmd, { dir = dir, plain = true })
    assert(code == 0, cmd .. ": " .. out)
  end
  local key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
  run("openssl req -x509 " .. key .. " -keyout ca.key -out ca.crt -days 2 -subj /CN=lua-msal-test-ca")
  run("openssl req -x509 " .. key .. " -keyout other-ca.key -out other-ca.crt -days 2 -subj /CN=other-ca")
  run("printf 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\\n' > server.ext")
  run("openssl req " .. key .. " -keyout server.key -out server.csr -subj /CN=localhost")
  run("openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 " ..
    "-extfile server.ext")
  run("openssl req " .. key .. " -keyout client.key -out client.csr -subj /CN=app")
  run("openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 2")
  return { ca = dir .. "/ca.crt", server_cert = dir .. "/server.crt", server_key = dir .. "/server.key",
    client_cert = dir .. "/client.crt", client_key = dir .. "/client.key", other_ca = dir .. "/other-ca.crt" }
end

--- What core.redis.connect needs to reach this server (TLS with the test
-- CA, the client certificate when the server asks for one), plus extra.
function Server:conn_opts(extra)
  local o = { host = "127.0.0.1", port = self.port, timeout_ms = 2000 }
  if self.tls then
    o.tls = { ca_file = self.tls.ca }
    if self.mtls then o.tls.cert_file, o.tls.key_file = self.tls.client_cert, self.tls.client_key end
  end
  if self.auth then o.username, o.password = self.auth[1], self.auth[2] end
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

local function ping(s, timeout_ms)
  local conn = core.redis.connect(s:conn_opts({ timeout_ms = timeout_ms or 200 }))
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

-- The command line's options.
function Server:args()
  local a = { "--bind 127.0.0.1", "--save ''", "--appendonly no", "--daemonize no" }
  if self.tls then
    a[#a + 1] = ("--port 0 --tls-port %d --tls-cert-file %s --tls-key-file %s --tls-ca-cert-file %s " ..
      "--tls-auth-clients %s"):format(self.port, proc.quote(self.tls.server_cert), proc.quote(self.tls.server_key),
      proc.quote(self.tls.ca), self.mtls and "yes" or "no")
    if self.cluster then a[#a + 1] = "--tls-cluster yes" end
  else
    a[#a + 1] = "--port " .. self.port
  end
  for _, u in ipairs(self.users or {}) do a[#a + 1] = "--user " .. u end
  if self.cluster then
    a[#a + 1] = ("--cluster-enabled yes --cluster-config-file %s --cluster-node-timeout 2000 --dir %s")
      :format(proc.quote("nodes-" .. self.port .. ".conf"), proc.quote(self.dir))
  end
  return table.concat(a, " ")
end

-- Starts redis-server on self.port; true once it answers PING.
function Server:launch()
  local log = os.tmpname()
  self.log = log
  local cmd = ("%s %s > %s 2>&1 & echo $!"):format(self.binary, self:args(), log)
  local p = assert(io.popen(cmd))
  self.pid = tonumber(p:read("*l"))
  p:close()
  for _ = 1, 300 do
    if ping(self) then return true end
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

--- The URL of the server's database 0 (rediss:// over TLS), with the
-- credentials when userinfo is given ("user:password").
function Server:url(userinfo)
  return (self.tls and "rediss://" or "redis://") .. (userinfo and userinfo .. "@" or "") .. "127.0.0.1:"
    .. self.port .. "/0"
end

--- Starts a server on a free port (tries a few).
-- @tparam[opt] table opts `{tls = make_certs' paths (TLS only), mtls = true
--   (clients must show a certificate), users = {"app on >secret ~* +@all"},
--   auth = {user, password} (for the helper's own connections), cluster =
--   true, dir = where a cluster node keeps its nodes file}`
-- @treturn table `{port, pid, url(), conn_opts(), stop(), restart()}`
function M.start(opts)
  opts = opts or {}
  local bin = M.binary()
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
  for _ = 1, 20 do
    local s = setmetatable({ binary = bin, port = math.random(20000, opts.cluster and 55000 or 60000), tls = opts.tls, mtls = opts.mtls,
      users = opts.users, auth = opts.auth, cluster = opts.cluster, dir = opts.dir }, Server)
    -- (a cluster node also listens on its bus port, 10000 up)
    if not ping(s) then
      if s:launch() then return s end
      s:stop()
    end
  end
  error("could not start redis-server on a free loopback port")
end

return M

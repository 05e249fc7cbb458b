--- A private nginx with the Lua module for the #host specs and the OpenResty
-- benchmark: Debian's nginx + libnginx-mod-http-lua in a temporary prefix,
-- on free loopback ports, loading this tree's `lua/` and the LuaJIT build of
-- msal.core.
--
--     local nginx = require("nginx")
--     local srv = nginx.start{ workers = 2, http = "...", server = "...", servers = "..." }
--     local status, body, headers = srv:get("/path")
--     srv:stop()
--
-- In the `http`, `server` and `servers` texts, `$PREFIX` becomes the prefix
-- directory, `$ROOT` the repository root and `$PORT2` a second free port
-- (for an extra server block, e.g. a TLS one); `$PORT` is the main port.
-- @module nginx
local core = require("msal.core")
local files = require("files")
local proc = require("proc")

local M = {}

local Server = {}
Server.__index = Server

local MODULES = {
  "/usr/lib/nginx/modules/ndk_http_module.so",
  "/usr/lib/nginx/modules/ngx_http_lua_module.so",
}

-- How long start() waits for nginx to answer, and stop() for a graceful exit.
local START_LIMIT_MS = 10000
local QUIT_LIMIT_MS = 5000

local function root()
  local r = os.getenv("MSAL_TEST_ROOT")
  if r and r ~= "" then return r end
  return (proc.run("pwd", { plain = true }):gsub("\n$", ""))
end

local function binary()
  local out = proc.run("command -v nginx || ls /usr/sbin/nginx", { plain = true })
  local path = out:match("^(/[^\n]+)")
  if not path then
    error("nginx is missing: run scripts/setup (Debian's nginx and libnginx-mod-http-lua)", 3)
  end
  for _, m in ipairs(MODULES) do
    if not files.exists(m) then
      error(m .. " is missing: run scripts/setup (Debian's libnginx-mod-http-lua)", 3)
    end
  end
  return path
end

-- A port nobody listens on now: the kernel picks it for a listener that is
-- closed at once. Another process may take it before nginx binds it; start()
-- then tries again with new ports.
local function free_port()
  local ls = assert(core.loopback.listen({ host = "127.0.0.1", port = 0 }))
  local port = ls:port()
  ls:close()
  return port
end

-- gsub with a literal replacement (a prefix path may hold a '%').
local function subst(text, vars)
  return (text:gsub("%$(%u[%u%d_]*)", function(name)
    return vars[name]
  end))
end

local function conf(opts, vars)
  local loads = {}
  for _, m in ipairs(MODULES) do loads[#loads + 1] = "load_module " .. m .. ";" end
  local text = table.concat(loads, "\n") .. [[

daemon on;
master_process on;
worker_processes $WORKERS;
error_log $PREFIX/logs/error.log info;
pid $PREFIX/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $PREFIX/tmp;
  proxy_temp_path $PREFIX/tmp;
  fastcgi_temp_path $PREFIX/tmp;
  uwsgi_temp_path $PREFIX/tmp;
  scgi_temp_path $PREFIX/tmp;
  lua_package_path "$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;";
  lua_package_cpath "$ROOT/build/luajit/?.so;;";
  lua_socket_log_errors off;
]] .. (opts.http or "") .. [[

  server {
    listen 127.0.0.1:$PORT$LISTEN_OPTS;
    # what start() polls: an answer that logs nothing, whatever the caller's
    # locations are
    location = /__nginx_spec_ready { return 204; }
]] .. (opts.server or "") .. [[

  }
]] .. (opts.servers or "") .. [[

}
]]
  return subst(text, vars)
end

-- Running, and not a zombie: a daemonized master is reparented, and who
-- reaps it (and when) is up to the system, so `kill -0` alone would lie.
local function alive(pid)
  local stat = files.read("/proc/" .. pid .. "/stat")
  if not stat then return false end
  local state = stat:match("^%d+ %b() (%a)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end

local function tail(text, n)
  n = n or 3000
  if #text <= n then return text end
  return "..." .. text:sub(-n)
end

--- A blocking one-shot GET on the main server, through this repository's
-- curl transport (a connection of its own, closed afterwards).
-- @tparam string path starting with "/"
-- @tparam[opt] table headers `{name = value}`
-- @return status, body, headers (lower-case names); or nil and
-- "kind: message" when no response came
function Server:get(path, headers)
  local h = { connection = "close" }
  for k, v in pairs(headers or {}) do h[k] = v end
  local t = require("msal.transport.curl").new()
  local res, err = t:send({ method = "GET", url = self.base .. path, headers = h, timeout_ms = 20000 }):await()
  t:close()
  if not res then return nil, tostring(err.kind) .. ": " .. tostring(err.message) end
  return res.status, res.body, res.headers
end

local shared_transport
local function transport()
  shared_transport = shared_transport or require("msal.transport.curl").new()
  return shared_transport
end

--- A request on a connection of its own, so that requests spread over the
-- workers (reuseport).
-- @tparam string path starting with "/"
-- @tparam[opt] table opts `{method = "GET", body, headers}`
-- @return promise of the response `{status, headers, body}`
function Server:send(path, opts)
  opts = opts or {}
  local h = { connection = "close" }
  for k, v in pairs(opts.headers or {}) do h[k] = v end
  return transport():send({ method = opts.method or "GET", url = self.base .. path, body = opts.body, headers = h,
    timeout_ms = 20000 })
end

--- A GET on a connection of its own, its body decoded.
-- @return status, the JSON body (`{body = text}` when it is not JSON), the
-- worker that answered (`x-worker`)
function Server:get_json(path)
  local res = assert(self:send(path):await())
  local doc = require("cjson.safe").decode(res.body)
  return res.status, type(doc) == "table" and doc or { body = res.body }, res.headers["x-worker"]
end

--- n GETs of path at once, each on a connection of its own. Raises unless
-- every one answered 200 with JSON.
-- @treturn table the decoded bodies, in order
-- @treturn integer how many workers answered (the `x-worker` header each
--   handler sets to `ngx.worker.pid()`)
function Server:concurrent(path, n)
  local list = {}
  for i = 1, n do list[i] = self:send(path) end
  local docs, workers, nworkers = {}, {}, 0
  for i, res in ipairs(assert(require("msal.promise").all(list):await())) do
    assert(res.status == 200, ("request %d: HTTP %s %s"):format(i, tostring(res.status), tostring(res.body)))
    docs[i] = assert(require("cjson.safe").decode(res.body), res.body)
    local w = res.headers["x-worker"]
    if w and not workers[w] then workers[w], nworkers = true, nworkers + 1 end
  end
  return docs, nworkers
end

--- Signs a browser in to an example web app: GET /login, follow the
-- authority's redirect (it signs the test user in at once) back to
-- /auth/callback, and keep the session cookie that sets. Raises when a
-- step does not answer as a sign-in should.
-- @treturn string the authorize URL /login redirected to
-- @treturn string the `msal_account=…` cookie
-- @treturn string the callback path and query the browser came back to
function Server:sign_in()
  local status, _, headers = self:get("/login")
  assert(status == 302, "/login answered " .. tostring(status))
  local authorize = headers.location
  local page = assert(require("msal.transport.curl").new():send({ url = authorize }):await())
  assert(page.status == 302, "the authority answered " .. tostring(page.status))
  local back = page.headers.location:gsub("^https?://[^/]+", "")
  assert(back:find("^/auth/callback%?"), back)
  status, _, headers = self:get(back)
  assert(status == 302, "the callback answered " .. tostring(status))
  return authorize, assert(headers["set-cookie"]):match("^(msal_account=[^;]+)"), back
end

--- The whole error log so far ("" when there is none yet).
-- @treturn string
function Server:error_log()
  return files.read(self.prefix .. "/logs/error.log") or ""
end

--- The worker processes' PIDs (children of the master), sorted.
-- @treturn table list of integers
function Server:worker_pids()
  local out = proc.run("pgrep -P " .. self.pid, { plain = true })
  local pids = {}
  for pid in out:gmatch("%d+") do pids[#pids + 1] = tonumber(pid) end
  table.sort(pids)
  return pids
end

--- Stops nginx (QUIT, then KILL for whatever is left after 5 s) and removes
-- the prefix. Never raises, so teardown code can call it unconditionally;
-- a second call does nothing.
function Server:stop()
  if self.stopped then return end
  self.stopped = true
  pcall(function()
    if self.pid and alive(self.pid) then
      local workers = self:worker_pids()
      proc.run("kill -QUIT " .. self.pid, { plain = true })
      local deadline = core.now_ms() + QUIT_LIMIT_MS
      while alive(self.pid) and core.now_ms() < deadline do core.sleep_ms(10) end
      local left = {}
      for _, pid in ipairs(workers) do
        if alive(pid) then left[#left + 1] = pid end
      end
      if alive(self.pid) then left[#left + 1] = self.pid end
      if #left > 0 then proc.run("kill -KILL " .. table.concat(left, " ") .. " 2>/dev/null", { plain = true }) end
    end
  end)
  if self.remove_prefix then pcall(self.remove_prefix) end
end

-- One attempt on fresh ports: the server, or nil and why not (and whether
-- another attempt with other ports might help).
local function launch(bin, opts)
  local prefix, remove_prefix = proc.tempdir()
  -- nginx's workers may run as another user (nobody, when started as root):
  -- they must reach the prefix; nginx makes tmp/ itself, owned by them.
  proc.run("chmod 755 " .. proc.quote(prefix) .. " && mkdir " .. proc.quote(prefix .. "/logs"), { plain = true })
  local port, port2 = free_port(), free_port()
  while port2 == port do port2 = free_port() end
  local srv = setmetatable({
    port = port, port2 = port2, base = "http://127.0.0.1:" .. port,
    prefix = prefix, remove_prefix = remove_prefix,
  }, Server)
  local vars = {
    PREFIX = prefix, ROOT = root(), PORT = tostring(port), PORT2 = tostring(port2),
    WORKERS = tostring(opts.workers or 2),
    -- a socket per worker, the kernel spreading connections over them: with
    -- one shared socket a burst may all land on one worker
    LISTEN_OPTS = opts.reuseport and " reuseport" or "",
  }
  local conf_path = files.write(prefix .. "/nginx.conf", opts.conf and subst(opts.conf, vars) or conf(opts, vars))
  local env = {}
  for k, v in pairs(opts.env or {}) do env[#env + 1] = k .. "=" .. proc.quote(v) .. " " end
  local out, code, err = proc.run(("%s%s -p %s -c %s 2>&1"):format(table.concat(env), bin, proc.quote(prefix .. "/"),
    proc.quote(conf_path)), { plain = true })
  if code ~= 0 then
    local log = out .. (err or "") .. "\n" .. srv:error_log()
    srv:stop()
    return nil, "nginx did not start (exit " .. tostring(code) .. "):\n" .. tail(log),
      log:find("Address already in use", 1, true) ~= nil
  end
  local deadline = core.now_ms() + START_LIMIT_MS
  while not srv.pid and core.now_ms() < deadline do
    srv.pid = tonumber((files.read(prefix .. "/nginx.pid") or ""):match("%d+"))
    if not srv.pid then core.sleep_ms(10) end
  end
  local why
  while srv.pid and core.now_ms() < deadline do
    if not alive(srv.pid) then why = "the nginx master exited" break end
    local t = require("msal.transport.curl").new()
    local res = t:send({ url = srv.base .. "/__nginx_spec_ready", headers = { connection = "close" }, timeout_ms = 1000 }):await()
    t:close()
    if res then return srv end
    core.sleep_ms(20)
  end
  local log = srv:error_log()
  srv:stop()
  why = why or (srv.pid and "nginx did not answer within 10 s" or "nginx wrote no pid file within 10 s")
  return nil, why .. "; its error log:\n" .. tail(log), log:find("Address already in use", 1, true) ~= nil
end

--- Starts nginx and waits (at most 10 s) until it answers on its port.
-- @tparam table opts `workers` (default 2); `http` (text for the http
-- block); `server` (the main server block's body); `servers` (whole extra
-- server blocks); `reuseport` (spread connections over the workers); or `conf`, a whole nginx.conf of the caller's (the same
-- `$` names; it must log to `$PREFIX/logs/error.log` and write its pid to
-- `$PREFIX/nginx.pid`; any answer on `$PORT` counts as ready); `env`
-- (`{NAME = value}` for nginx's environment, which `env` directives pass
-- to the workers)
-- @return the server: `port`, `port2`, `base` ("http://127.0.0.1:<port>"),
-- `prefix`, `pid` (the master's), and `get`, `error_log`, `worker_pids`,
-- `stop`
-- @raise when nginx does not start or answer, with its error log's tail
function M.start(opts)
  opts = opts or {}
  local bin = binary()
  local last
  for _ = 1, 3 do
    local srv, why, port_taken = launch(bin, opts)
    if srv then return srv end
    last = why
    if not port_taken then break end
  end
  error(last, 2)
end

--- nginx with two workers (reuseport) running one of the host apps in
-- spec/support/openresty: `http` first (its shared dictionaries), then an
-- init_worker_by_lua that puts that folder on package.path and calls
-- `require(app).init(<init>)`, and `server` as given.
-- @tparam table opts `{app, init (Lua source of init's arguments), http, server}`
-- @return the server, as `start`'s
function M.start_app(opts)
  local dir = os.getenv("MSAL_TEST_ROOT") .. "/spec/support/openresty"
  return M.start({
    workers = 2,
    reuseport = true,
    http = (opts.http or "") .. ([[
      init_worker_by_lua_block {
        package.path = %q .. package.path
        require(%q).init(%s)
      }
    ]]):format(dir .. "/?.lua;", opts.app, opts.init),
    server = opts.server,
  })
end

--- An examples/<dir>/nginx.conf as a user runs it, with only its port, pid
-- file and paths pointed at this tree (for `start{conf = …}`).
-- @tparam string dir the example's folder under examples/
-- @tparam string listen its `listen` address, e.g. "127.0.0.1:8080"
-- @treturn string the configuration
-- @raise when the example no longer has a line this rewrites
function M.example_conf(dir, listen)
  local root = os.getenv("MSAL_TEST_ROOT")
  local text = assert(files.read(root .. "/examples/" .. dir .. "/nginx.conf"))
  local function sub(from, to)
    local n
    text, n = text:gsub(from:gsub("%p", "%%%0"), (to:gsub("%%", "%%%%")))
    assert(n > 0, "the example no longer has " .. from)
  end
  sub("listen " .. listen .. ";", "listen 127.0.0.1:$PORT;")
  sub("pid logs/nginx.pid;", "pid $PREFIX/nginx.pid;")
  sub("$prefix/?.lua;", "$ROOT/examples/" .. dir .. "/?.lua;")
  sub("/usr/local/share/lua/5.1/?.lua;/usr/local/share/lua/5.1/?/init.lua;", "$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;")
  sub("/usr/local/lib/lua/5.1/?.so;", "$ROOT/build/luajit/?.so;")
  return text
end

return M

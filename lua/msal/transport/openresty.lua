--- The OpenResty HTTP transport: HTTP/1.1 over nginx cosockets
-- (`ngx.socket.tcp`), for lua-msal inside nginx workers.
--
-- C code cannot yield to nginx, so inside a worker libcurl (the default
-- transport) would block every request the worker serves. This transport
-- keeps the same contract as `msal.transport.curl` — `request(req, done)`,
-- `done(err, res)` exactly once and from the loop, `handle:close()`
-- cancels, the same options, limits and error kinds — with the I/O done by
-- nginx's event loop:
--
-- - each request runs in a light thread of its own (`ngx.thread.spawn`),
--   so `request()` returns at once and never yields its caller; the thread
--   hands its outcome to `msal.loop` and steps it, so promise callbacks run
--   right when the answer arrives;
-- - connections are kept alive in nginx's cosocket pool, one pool per
--   scheme, host, port and TLS server name, so TLS and plain connections
--   never mix;
-- - TLS is always verified, against the CAs of nginx's
--   `lua_ssl_trusted_certificate` directive (per location or server; depth
--   from `lua_ssl_verify_depth`), with the URL's host as the server name;
-- - cosockets exist only in rewrite, access, content, timer and the ssl_*
--   phases: elsewhere `done` gets `{kind = "phase"}` instead of a raise, so
--   a library call in a log or header filter handler fails softly.
--
-- The request's bytes and the response's framing are msal.transport.http1;
-- this file keeps the connection's life (threads, pool, TLS, delivery).
--
-- nginx has no stub resolver: a URL with a host name needs nginx's
-- `resolver` directive, except `localhost`, which is the IPv4 loopback
-- here (RFC 6761) so that local development authorities work out of the box.
-- @module msal.transport.openresty
local loop = require("msal.loop")
local common = require("msal.transport.common")
local http1 = require("msal.transport.http1")

local now_ms, fail, left, timeout_error = http1.now_ms, http1.fail, http1.left, http1.timeout_error
local parse_url, build_request = http1.parse_url, http1.build_request
local read_head, read_body, has_token = http1.read_head, http1.read_body, http1.has_token

local find, format = string.find, string.format

local M = {}

local Transport = {}
Transport.__index = Transport

local Handle = {}
Handle.__index = Handle

local DEFAULTS = {
  max_response_bytes = 1024 * 1024,
  max_header_bytes = 64 * 1024,
  connect_timeout_ms = 10000,
  timeout_ms = 30000,
  keepalive_idle_ms = 60000,
  keepalive_pool_size = 32,
}

-- Beyond a request's own deadline, how long the sweeper waits before it
-- settles a request whose light thread never reported (see `sweep`).
local SWEEP_GRACE_MS = 1000
local SWEEP_EVERY_S = 1

-- Phases in which cosockets and light threads work (lua-nginx-module's
-- ngx.socket.tcp context list).
local COSOCKET_PHASES = {
  rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true, preread = true,
}

local function check_ms(opts, name, def)
  local v = opts and opts[name]
  if v == nil then return def end
  if type(v) ~= "number" or not (v >= 1 and v < math.huge) then
    error(format("'%s' must be a positive number of milliseconds", name), 3)
  end
  return v
end

local function check_size(opts, name, def)
  local v = opts and opts[name]
  if v == nil then return def end
  if type(v) ~= "number" or not (v >= 0 and v <= 4 * 1024 ^ 3) then
    error(format("'%s' must be a size between 0 and 4 GiB", name), 3)
  end
  return v
end

local function tls_hint(u)
  local hint = "the CA must be configured with nginx's lua_ssl_trusted_certificate (and lua_ssl_verify_depth for "
    .. "longer chains) in the http, server or location block making the request"
  if find(u.host, "^[%d.]+$") or find(u.host, ":", 1, true) then
    -- nginx checks the name with X509_check_host, which never looks at
    -- a certificate's IP addresses
    hint = hint .. "; nginx matches a certificate only against DNS names, so https needs a host name, "
      .. "not an IP address"
  end
  return hint
end

-- Connects (from the pool when it can) and does the TLS handshake on a
-- new connection. Returns the socket and whether it came from the pool.
local function open(st)
  local u = st.u
  local sock = ngx.socket.tcp()
  st.sock = sock
  local ms = left(st)
  if not ms then return nil, timeout_error(st) end
  local cms = math.min(ms, st.connect_timeout_ms)
  sock:settimeouts(cms, ms, ms)
  local ok, err = sock:connect(u.address, u.port, { pool = st.pool, pool_size = st.pool_size })
  if not ok then
    if err == "timeout" then
      return nil, fail("timeout", format("connecting to %s:%d timed out after %d ms", u.host, u.port, cms))
    end
    local hint = find(tostring(err), "resolver", 1, true)
      and " (host names need nginx's resolver directive)" or ""
    return nil, fail("connect", format("cannot connect to %s:%d: %s%s", u.host, u.port, tostring(err), hint))
  end
  local reused = (sock:getreusedtimes() or 0) > 0
  if u.scheme == "https" and not reused then
    ms = left(st)
    if not ms then return nil, timeout_error(st) end
    sock:settimeouts(ms, ms, ms)
    -- nil, not false, for the session: with false lua-resty-core 0.1.25
    -- answers true for a handshake that failed verification at once
    -- (openresty/lua-nginx-module#2506); with nil it raises an assertion
    -- there instead (openresty/lua-resty-core#499), which is a refusal too
    local pok, session, herr = pcall(sock.sslhandshake, sock, nil, u.host, true)
    if not pok then
      session, herr = nil, "certificate verification failed (lua-resty-core raised: " .. tostring(session) .. ")"
    end
    if not session then
      if herr == "timeout" then return nil, timeout_error(st) end
      return nil, fail("tls", format("TLS handshake with %s:%d failed: %s; %s", u.host, u.port, tostring(herr), tls_hint(u)))
    end
  end
  return sock, reused
end

-- How a pooled connection that the server closed while it idled fails
-- (on send, or on the first read with nothing received): the request never
-- reached a server that will answer it, so a new connection may carry it.
local STALE = { closed = true, ["broken pipe"] = true, ["connection reset by peer"] = true }

-- The whole exchange; returns err or nil, res. Pools the connection when
-- the response ended cleanly, allows it and nobody dropped the request.
local function exchange(h)
  local st = h.st
  local status, version, headers
  -- A pooled connection may have been closed by the server meanwhile: then
  -- the same request goes out again on another one (a pool holds at most
  -- pool_size of them, all possibly stale).
  for _ = 1, st.pool_size + 1 do
    local sock, reused_or_err = open(st)
    if not sock then return reused_or_err end
    local reused = reused_or_err
    if h.claimed then
      sock:close()
      return fail("canceled", "the request was canceled")
    end
    st.buf, st.pos, st.head_bytes, st.raw_err = "", 1, 0, nil
    local ms = left(st)
    if not ms then return timeout_error(st) end
    sock:settimeouts(ms, ms, ms)
    local sent, serr = sock:send(st.wire)
    local retry = false
    if not sent then
      if serr == "timeout" then return timeout_error(st) end
      if not (reused and STALE[serr]) then
        return fail("io", format("sending the request to %s:%d failed: %s", st.u.host, st.u.port, tostring(serr)))
      end
      retry = true
    else
      local err
      status, version, headers = read_head(st)
      if not status then
        err = version
        retry = reused and st.head_bytes == 0 and #st.buf == 0 and STALE[st.raw_err]
        if not retry then return err end
      end
    end
    if not retry then break end
    sock:close()
    st.sock = nil
  end
  if not status then return fail("io", format("every pooled connection to %s:%d was closed", st.u.host, st.u.port)) end
  local body, clean = read_body(st, st.method, status, headers)
  if not body then return clean end
  local sock = st.sock
  if h.claimed then
    -- canceled meanwhile: nobody reads this answer, and the connection
    -- goes away with it
    sock:close()
  elseif clean and version == "1.1" and not st.close and not has_token(headers.connection, "close")
      and st.pos > #st.buf then
    sock:setkeepalive(st.idle_ms, st.pool_size)
  else
    sock:close()
  end
  st.sock = nil
  return nil, { status = status, headers = headers, body = body }
end

-- ---------------------------------------------------------------------------
-- Delivery, cancellation and the sweeper.

-- Requests whose light thread runs (across every transport of the worker),
-- for the sweeper.
local running = {}
local sweeper_armed = false

-- Runs the queued jobs (done callbacks and the promise reactions they
-- settle) now. A callback that raises is logged instead of aborting the
-- light thread or the timer, and the jobs behind it still run.
local function step_loop()
  for _ = 1, 100 do
    local ok, err = pcall(loop.step, 0)
    if ok then return end
    ngx.log(ngx.ERR, "msal: a callback raised: ", tostring(err))
  end
end

local function deliver(h)
  local t = h._t
  if t._live[h] then
    t._live[h] = nil
    t._n = t._n - 1
  end
  local done = h._done
  h._done = nil
  done(h._err, h._res)
end

-- The outcome is now fixed: later ones (a cancel, the thread's late answer)
-- are dropped. False when it already was.
local function claim(h, err, res)
  if h.claimed then return false end
  h.claimed = true
  h._err, h._res = err, res
  running[h] = nil
  loop.defer(deliver, h)
  return true
end

-- nginx kills a request's light threads when the request ends early
-- (ngx.exit, ngx.exec, ngx.redirect; a request made from inside another
-- request's callbacks is a light thread of that other request). A killed
-- thread never reports, so once a request is past its deadline by a grace
-- period its done gets a timeout from here instead: "exactly once" holds
-- even then. One timer per worker, armed only while requests run.
local function sweep(premature)
  sweeper_armed = false
  if premature then return end
  local now, any = now_ms(), false
  for h in pairs(running) do
    if now > h.st.deadline + SWEEP_GRACE_MS then
      claim(h, fail("timeout", format("no outcome from the request to %s:%d within %d ms: its light thread was "
        .. "aborted (the nginx request that ran it ended with ngx.exit, ngx.exec or ngx.redirect) or is stuck",
        h.st.u.host, h.st.u.port, h.st.timeout_ms)))
      any = true
    end
  end
  if any then step_loop() end
  if next(running) then
    local ok = ngx.timer.at(SWEEP_EVERY_S, sweep)
    sweeper_armed = ok and true or false
  end
end

local function arm_sweeper()
  if sweeper_armed then return end
  local ok = ngx.timer.at(SWEEP_EVERY_S, sweep)
  sweeper_armed = ok and true or false
end

-- The light thread's body: the exchange under pcall (done must be called
-- even when it raises), then the outcome through the loop.
local function run(h)
  local ok, err, res = pcall(exchange, h)
  if not ok then
    err, res = fail("io", "internal error in the openresty transport: " .. tostring(err)), nil
  end
  -- a connection left over from a failure is closed now rather than when
  -- the nginx request ends: the worker's descriptors are shared by all
  local sock = h.st.sock
  if sock then
    h.st.sock = nil
    pcall(sock.close, sock)
  end
  -- done must never run inside request(): when the exchange ended before
  -- its first yield (a connect that fails at once), wait for a turn of
  -- nginx's event loop, by which request() has returned. Not sleep(0):
  -- without OpenResty's own nginx patches it logs a warning every time.
  if not h._returned then ngx.sleep(0.001) end
  if claim(h, err, res) then step_loop() end
end

-- ---------------------------------------------------------------------------
-- The public face.

--- Make a transport. One per worker is enough: the connections live in
-- nginx's cosocket pool, shared by every transport of the worker.
-- @tparam[opt] table opts `max_response_bytes` (default 1 MiB),
-- `max_header_bytes` (default 64 KiB), `connect_timeout_ms` (default
-- 10000), `timeout_ms` (whole request, default 30000); also
-- `keepalive_idle_ms` (how long a pooled connection may idle, default
-- 60000) and `keepalive_pool_size` (connections kept per host, default 32).
-- `ca_file` and `ca_path` are refused: nginx takes its CAs from
-- `lua_ssl_trusted_certificate`.
-- @treturn table transport
-- @raise outside nginx, on `ca_file`/`ca_path`, or on a bad option value
function M.new(opts)
  if opts ~= nil and type(opts) ~= "table" then error("opts must be a table", 2) end
  if type(ngx) ~= "table" or not (ngx.socket and ngx.socket.tcp) then
    error("msal.transport.openresty runs inside nginx with the Lua module (no ngx.socket.tcp here)", 2)
  end
  for _, name in ipairs({ "ca_file", "ca_path" }) do
    if opts and opts[name] ~= nil then
      error(("'%s' cannot be used with msal.transport.openresty: cosocket TLS trusts the CAs of nginx's "
        .. "lua_ssl_trusted_certificate directive (and lua_ssl_verify_depth); configure them there"):format(name), 2)
    end
  end
  local pool_size = opts and opts.keepalive_pool_size
  if pool_size ~= nil and (type(pool_size) ~= "number" or pool_size < 1 or pool_size % 1 ~= 0) then
    error("'keepalive_pool_size' must be a positive integer", 2)
  end
  return setmetatable({
    _max_response_bytes = check_size(opts, "max_response_bytes", DEFAULTS.max_response_bytes),
    _max_header_bytes = check_size(opts, "max_header_bytes", DEFAULTS.max_header_bytes),
    _connect_timeout_ms = check_ms(opts, "connect_timeout_ms", DEFAULTS.connect_timeout_ms),
    _timeout_ms = check_ms(opts, "timeout_ms", DEFAULTS.timeout_ms),
    _idle_ms = check_ms(opts, "keepalive_idle_ms", DEFAULTS.keepalive_idle_ms),
    _pool_size = pool_size or DEFAULTS.keepalive_pool_size,
    _live = {}, -- handle -> true until its done has run
    _n = 0,
    _closed = false,
  }, Transport)
end

--- The worker's transport with default options, made on first use.
-- @function default
-- @treturn table transport
M.default = common.default_of(M)

--- Start a request: `msal.transport.curl`'s contract (the same req
-- fields, `done(err, res)` once from the loop, the same err kinds), plus
-- kind "phase" when nginx's current phase has no cosockets (init,
-- init_worker, set, header_filter, body_filter, log, balancer). Returns at
-- once (the I/O runs in a light thread of its own) and never yields the
-- caller.
-- @tparam table req
-- @tparam function done
-- @treturn table handle; `handle:close()` cancels the request
-- @raise on a malformed request (no url, not http/https, userinfo, bad
-- header name, CR/LF in a header...) or a closed transport
function Transport:request(req, done)
  if type(req) ~= "table" then error("request: req must be a table", 2) end
  if type(done) ~= "function" then error("request: done must be a function", 2) end
  if self._closed then error("the transport is closed", 2) end
  local u = parse_url(req.url)
  local wire, method, close = build_request(req, u)
  local timeout_ms = check_ms(req, "timeout_ms", self._timeout_ms)
  local st = {
    u = u, wire = wire, method = method, close = close,
    timeout_ms = timeout_ms,
    connect_timeout_ms = check_ms(req, "connect_timeout_ms", self._connect_timeout_ms),
    max_response_bytes = check_size(req, "max_response_bytes", self._max_response_bytes),
    max_header_bytes = self._max_header_bytes,
    -- the URL's host, not the address: "localhost" and "127.0.0.1" are two
    -- pools; the TLS server name too, so a connection verified for one name
    -- never carries a request for another
    pool = u.scheme .. "://" .. u.hostport .. (u.scheme == "https" and ("/" .. u.host) or ""),
    pool_size = self._pool_size, idle_ms = self._idle_ms,
  }
  local h = setmetatable({ _t = self, _done = done, st = st }, Handle)
  self._live[h] = true
  self._n = self._n + 1
  local phase = ngx.get_phase()
  if not COSOCKET_PHASES[phase] then
    h._returned = true
    claim(h, fail("phase", ("cosockets are not available in nginx's %s phase; make HTTP requests in "
      .. "rewrite_by_lua, access_by_lua, content_by_lua or a timer (ngx.timer.at)"):format(phase)))
    return h
  end
  st.deadline = now_ms() + timeout_ms
  running[h] = true
  local ok, err = pcall(ngx.thread.spawn, run, h)
  if not ok then
    claim(h, fail("io", "cannot start a light thread for the request: " .. tostring(err)))
  else
    arm_sweeper()
  end
  h._returned = true
  return h
end

--- Cancel the request: done receives `{kind = "canceled"}` from the loop,
-- once; the light thread's late answer is dropped and its connection
-- closed, not pooled. Does nothing once the outcome is known.
function Handle:close()
  claim(self, fail("canceled", "the request was canceled"))
end

--- Start a request and get a promise for its response (see
-- msal.transport.common).
-- @function Transport:send
Transport.send = common.send

--- Requests in flight (or finished and not yet delivered).
-- @treturn integer
function Transport:pending()
  return self._n
end

--- Cancel every request (their done get "canceled" from the loop). The
-- transport cannot be used afterwards; pooled connections stay in nginx's
-- pool, which closes them when idle.
function Transport:close()
  self._closed = true
  for h in pairs(self._live) do
    claim(h, fail("canceled", "the transport was closed"))
  end
end

return M

--- A Redis connection over OpenResty cosockets, with the interface of a
-- msal.core.redis connection (command, pipeline, close, is_open), so the
-- router can use it where C must not block the nginx worker.
-- Replies are scanned by the C core's buffer parser (msal.core.redis.parse),
-- so the same caps (bulk, array, nesting, total bytes) and the same typed
-- errors (EPROTO, EMSGSIZE) apply as with the C client.
--
-- A cosocket belongs to the request (or timer) that made it, so a
-- connection lives for one cache access only (msal.cache.redis opens them
-- through a router session and closes them when the access ends); `close`
-- hands the socket to nginx's keepalive pool, which is where reuse comes
-- from. A pooled socket was authenticated and SELECTed when it was made:
-- AUTH and SELECT run only on a fresh one (`getreusedtimes() == 0`), and
-- the pool's name holds everything those depend on (address, TLS name,
-- user, database, and a hash of the password).
--
-- TLS (`rediss://`): lua-nginx-module 0.10.23 (Debian 12) takes no CA per
-- socket, so the server's certificate and name are verified against
-- nginx's `lua_ssl_trusted_certificate` (and `lua_ssl_verify_depth`);
-- `tls.ca_file`/`ca_path` do not apply here. nginx checks the certificate
-- for a host name only, never an IP address: with an IP in the URL, name
-- the certificate's host in `tls.server_name` (also sent as SNI). A client certificate
-- (`tls.cert_file`, `key_file`) is shown through lua-resty-core's
-- `setclientcert`.
-- @module msal.cache.redis_cosocket
local core = require("msal.core")

local parse = core.redis.parse
local concat = table.concat

local M = {
  --- Connections made (fresh) and taken from the keepalive pool (reused)
  -- in this worker, for tests and tuning.
  stats = { fresh = 0, reused = 0 },
}

-- A pooled socket is kept this long idle, this many per pool and worker.
local KEEPALIVE_MS, POOL_SIZE = 60000, 32

-- Commands that leave state on the connection until their end: a socket
-- in the middle of one is closed, not pooled (the next user would inherit
-- a WATCH or an open MULTI).
local OPENS = { WATCH = true, MULTI = true }
local ENDS = { EXEC = true, DISCARD = true, UNWATCH = true }

local Conn = {}
Conn.__index = Conn

local function encode(cmd, out)
  out[#out + 1] = "*" .. #cmd .. "\r\n"
  for i = 1, #cmd do
    local a = tostring(cmd[i])
    out[#out + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
  end
end

local function fail(self, msg, code)
  if self.sock then self.sock:close() end
  self.sock = nil
  return nil, msg, code
end

-- Reads one reply: what parse says is incomplete makes it read more.
function Conn:_read_one()
  while true do
    if #self.buf > 0 then
      local v, used, code = parse(self.buf, self.limits)
      if v ~= nil then
        self.buf = self.buf:sub(used + 1)
        return true, v
      end
      if code ~= "EAGAIN" then return false, used, code end
    end
    local data, err = self.sock:receiveany(65536)
    if not data then
      return false, "Redis read failed: " .. tostring(err), err == "timeout" and "ETIMEDOUT" or "EOF"
    end
    self.buf = self.buf .. data
  end
end

--- Sends one command and waits for its reply (as msal.core.redis's conn:command).
-- @param ... the command and its arguments
-- @return the reply, or nil, message, code (SERVER: an error reply)
function Conn:command(...)
  local rs, msg, code = self:pipeline({ { ... } })
  if not rs then return nil, msg, code end
  local r = rs[1]
  if type(r) == "table" and r.err and #r == 0 then return nil, r.err, "SERVER" end
  if r == false then return nil end
  return r
end

--- Sends several commands in one write and reads their replies in order.
-- @tparam table cmds an array of commands
-- @treturn table replies (nil reply is false, error reply `{err = msg}`)
-- @return or nil, message, code (the connection is gone and closed)
function Conn:pipeline(cmds)
  if not self.sock then return nil, "Redis connection is closed", "EPIPE" end
  local out = {}
  for i = 1, #cmds do
    encode(cmds[i], out)
    local name = tostring(cmds[i][1]):upper()
    if OPENS[name] then self.pending = true elseif ENDS[name] then self.pending = false end
  end
  local ok, err = self.sock:send(concat(out))
  if not ok then return fail(self, "Redis send failed: " .. tostring(err), "EPIPE") end
  local rs = {}
  for i = 1, #cmds do
    local got, v, code = self:_read_one()
    if not got then return fail(self, v, code) end
    if v == nil then v = false end
    rs[i] = v
  end
  return rs
end

--- Whether the connection can still be used.
-- @treturn boolean
function Conn:is_open() return self.sock ~= nil end

--- Returns the socket to nginx's keepalive pool (closes it when that fails).
function Conn:close()
  if not self.sock then return end
  if #self.buf > 0 or self.pending or not self.sock:setkeepalive(KEEPALIVE_MS, POOL_SIZE) then
    self.sock:close()
  end
  self.sock = nil
end

-- The client certificate and key of tls.cert_file/key_file, parsed once
-- per worker (lua-resty-core's ngx.ssl): cdata, or nil and why.
local client_certs = {}
local function client_cert(tls)
  local id = tls.cert_file .. "\0" .. (tls.key_file or tls.cert_file)
  local c = client_certs[id]
  if c then return c[1], c[2] end
  local ok_ssl, ssl = pcall(require, "ngx.ssl")
  if not ok_ssl then return nil, "client certificates need lua-resty-core's ngx.ssl: " .. tostring(ssl) end
  local function read(path)
    local f, err = io.open(path, "rb")
    if not f then return nil, err end
    local text = f:read("*a")
    f:close()
    return text
  end
  local cert_pem, err = read(tls.cert_file)
  if not cert_pem then return nil, "cannot read cache.tls.cert_file: " .. tostring(err) end
  local key_pem
  key_pem, err = read(tls.key_file or tls.cert_file)
  if not key_pem then return nil, "cannot read cache.tls.key_file: " .. tostring(err) end
  local cert, key
  cert, err = ssl.parse_pem_cert(cert_pem)
  if not cert then return nil, "cache.tls.cert_file: " .. tostring(err) end
  key, err = ssl.parse_pem_priv_key(key_pem)
  if not key then return nil, "cache.tls.key_file: " .. tostring(err) end
  client_certs[id] = { cert, key }
  return cert, key
end

-- nginx checks a certificate for host names only (X509_check_host), never
-- an IP address: what to say when the name checked was one.
local function ip_hint(server_name)
  if server_name:match("^[%d.]+$") or server_name:find(":", 1, true) then
    return " (nginx checks the certificate for a host name, not an IP address: give cache.tls.server_name)"
  end
  return ""
end

--- Connects, as msal.core.redis.connect does (host, port, db, username,
-- password, tls = true or {server_name, cert_file, key_file}, timeout_ms,
-- reply caps), or takes a connection from nginx's keepalive pool.
-- TLS trust comes from nginx's lua_ssl_trusted_certificate: lua-nginx-module
-- 0.10.23 (Debian 12) cannot take tls.ca_file per socket.
-- @tparam table o options
-- @return a connection (`reused`: it came from the pool), or nil, message,
-- code (ECONNREFUSED, ETIMEDOUT, CERT, TLS, AUTH or a SELECT's code)
function M.connect(o)
  local sock = ngx.socket.tcp()
  local t = o.timeout_ms or 1000
  sock:settimeouts(t, t, t)
  local port = o.port or 6379
  local tls = o.tls and (type(o.tls) == "table" and o.tls or {}) or nil
  local server_name = tls and (tls.server_name or o.host) or nil
  local pool = ("redis:%s:%d:%s:%s:%d:%s"):format(o.host, port, server_name or "-", o.username or "",
    o.db or 0, o.password and core.crypto.sha256_hex(o.password):sub(1, 16) or "")
  local where = ("%s:%d"):format(o.host:find(":", 1, true) and "[" .. o.host .. "]" or o.host, port)
  local ok, err = sock:connect(o.host, port, { pool = pool })
  if not ok then
    return nil, ("cannot connect to %s: %s"):format(where, tostring(err)), err == "timeout" and "ETIMEDOUT" or "ECONNREFUSED"
  end
  local reused = (sock:getreusedtimes() or 0) > 0
  local self = setmetatable({ sock = sock, buf = "", limits = o, reused = reused, pending = false }, Conn)
  if reused then
    M.stats.reused = M.stats.reused + 1
    return self
  end
  M.stats.fresh = M.stats.fresh + 1
  if tls then
    if tls.cert_file then
      local cert, key = client_cert(tls)
      if not cert then return fail(self, ("cannot connect to %s: %s"):format(where, key), "TLS") end
      ok, err = sock:setclientcert(cert, key)
      if not ok then return fail(self, ("cannot connect to %s: %s"):format(where, tostring(err)), "TLS") end
    end
    -- false: no session object back (nil asks for one, which this
    -- lua-resty-core asserts on)
    ok, err = sock:sslhandshake(false, server_name, true)
    if not ok then
      -- "<verify result number>: <reason>" is a certificate nginx's trust
      -- store refused, "certificate host mismatch" one not for the name
      local text = tostring(err)
      local mismatch = text:find("host mismatch", 1, true) ~= nil
      local cert = mismatch or text:match("^%d+: ") ~= nil
      if mismatch then text = text .. ip_hint(server_name) end
      return fail(self, ("cannot connect to %s: %s%s"):format(where,
        cert and "certificate check failed: " or "TLS handshake failed: ", text), cert and "CERT" or "TLS")
    end
    -- lua-nginx-module 0.10.23 can report success for a handshake that
    -- finished at once although the certificate check failed; it has
    -- closed the socket then (seen on loopback, now and then): a socket
    -- closed right after the handshake is that check's failure
    if not sock:getreusedtimes() then
      self.sock = nil
      return nil, ("cannot connect to %s: certificate check failed: nginx closed the connection after the "
        .. "handshake (a certificate lua_ssl_trusted_certificate does not trust, or one not for %s)%s")
        :format(where, server_name, ip_hint(server_name)), "CERT"
    end
  end
  if o.password then
    local _, msg, code = self:command("AUTH", o.username or o.password, o.username and o.password or nil)
    if msg then return fail(self, "Redis AUTH failed: " .. msg, code == "SERVER" and "AUTH" or code) end
  end
  if o.db and o.db ~= 0 then
    local _, msg, code = self:command("SELECT", o.db)
    if msg then return fail(self, "Redis SELECT failed: " .. msg, code) end
  end
  return self
end

return M

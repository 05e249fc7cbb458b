--- A Redis connection over OpenResty cosockets, with the interface of a
-- msal.core.redis connection (command, pipeline, close, is_open), so the
-- router can use it where C must not block the nginx worker.
-- Replies are scanned by the C core's buffer parser (msal.core.redis.parse),
-- so the same caps (bulk, array, nesting, total bytes) and the same typed
-- errors (EPROTO, EMSGSIZE) apply as with the C client.
--
-- DRAFT (h/cosock): not yet wired into redis_router.lua and not yet run in
-- nginx; see the branch report for what is left.
-- @module msal.cache.redis_cosocket
local core = require("msal.core")

local parse = core.redis.parse
local concat = table.concat

local M = {}

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
  for i = 1, #cmds do encode(cmds[i], out) end
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
  if #self.buf > 0 or not self.sock:setkeepalive(self.keepalive_ms, self.pool_size) then
    self.sock:close()
  end
  self.sock = nil
end

--- Connects, as msal.core.redis.connect does (host, port, db, username,
-- password, tls = {server_name, verify}, timeout_ms, reply caps).
-- TLS trust comes from nginx's lua_ssl_trusted_certificate: lua-nginx-module
-- 0.10.23 (Debian 12) cannot take tls.ca_file per socket.
-- @tparam table o options
-- @return a connection, or nil, message, code
function M.connect(o)
  local sock = ngx.socket.tcp()
  local t = o.timeout_ms or 1000
  sock:settimeouts(t, t, t)
  local port = o.port or 6379
  local ok, err = sock:connect(o.host, port, { pool = (o.host .. ":" .. port .. ":" .. (o.db or 0) .. ":" .. (o.username or "")) })
  if not ok then return nil, "Redis connect failed: " .. tostring(err), "ECONNREFUSED" end
  local self = setmetatable({ sock = sock, buf = "", limits = o, keepalive_ms = 60000, pool_size = 16 }, Conn)
  local reused = sock:getreusedtimes() or 0
  if o.tls and reused == 0 then
    ok, err = sock:sslhandshake(nil, o.tls.server_name or o.host, o.tls.verify ~= false)
    if not ok then return fail(self, "Redis TLS failed: " .. tostring(err), "TLS") end
  end
  if reused == 0 then
    if o.password then
      local _, msg = self:command("AUTH", o.username or o.password, o.username and o.password or nil)
      if msg then return fail(self, "Redis AUTH failed: " .. msg, "AUTH") end
    end
    if o.db and o.db ~= 0 then
      local _, msg, code = self:command("SELECT", o.db)
      if msg then return fail(self, "Redis SELECT failed: " .. msg, code) end
    end
  end
  return self
end

return M

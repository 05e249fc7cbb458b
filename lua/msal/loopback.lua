--- The loopback redirect listener of the interactive ("popup") flow
-- (RFC 8252 §7.3), over `msal.core.loopback`.
--
-- `wait_for_redirect` listens on the loopback interface, tells the caller
-- the redirect URI to put in the authorization request, and resolves with
-- the query parameters of the one redirect that carries the expected
-- `state`. Anything else that reaches the port (a favicon fetch, a stale
-- tab, a local process guessing) is answered with an error status and
-- does not end the wait. After the redirect the listener closes, so the
-- same URL cannot be replayed against it.
--
-- While it waits it is a `msal.loop` source, so `promise:await()` at top
-- level (or any host loop driving `msal.loop`) runs it.
-- @module msal.loopback
local loop = require("msal.loop")
local Promise = require("msal.promise")
local errors = require("msal.errors")

local M = {}

--- How long `wait_for_redirect` waits by default (MSAL's 5 minutes).
M.DEFAULT_TIMEOUT_MS = 300000

--- The page the browser shows after a successful redirect. It names no
-- code, token or parameter, so nothing secret ends up on screen or in a
-- screenshot.
M.SUCCESS_PAGE = [[<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Authentication complete</title></head>
<body><p>Authentication complete. You can close this window and return to the application.</p></body>
</html>
]]

--- The page shown when the redirect carried an `error`. The error itself
-- is not echoed: it comes from the URL, which anyone can craft.
M.ERROR_PAGE = [[<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Authentication failed</title></head>
<body><p>Authentication did not complete. You can close this window and return to the application.</p></body>
</html>
]]

-- The pages sit at a URL holding the code: nothing may cache them, and
-- nothing they link to may learn that URL through a Referer.
local PAGE_HEADERS = {
  ["Content-Type"] = "text/html; charset=utf-8",
  ["Cache-Control"] = "no-store",
  ["Referrer-Policy"] = "no-referrer",
  ["X-Content-Type-Options"] = "nosniff",
}

local function refusal_headers(extra)
  local h = {
    ["Content-Type"] = "text/plain; charset=utf-8",
    ["Cache-Control"] = "no-store",
    ["X-Content-Type-Options"] = "nosniff",
  }
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end

local constant_time_equal

local function unescape(s)
  s = s:gsub("%+", " ")
  -- Any '%' left once the valid escapes are taken out is a broken one.
  if s:gsub("%%%x%x", ""):find("%", 1, true) then return nil end
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

--- Decodes an `application/x-www-form-urlencoded` query string.
-- OAuth parameters "MUST NOT be included more than once" (RFC 6749 §3.1),
-- so a repeated name makes the whole query invalid: which copy to believe
-- is exactly what a mix-up attack would like to choose.
-- @tparam string query the raw query (without the `?`)
-- @treturn ?table name → value, or nil when the query is malformed
-- @treturn ?string why it is malformed
function M.parse_query(query)
  local params = {}
  for pair in query:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=(.*)$")
    if not k then k, v = pair, "" end
    k, v = unescape(k), unescape(v)
    if not k or not v then return nil, "malformed percent-encoding" end
    if params[k] ~= nil then return nil, "repeated parameter" end
    params[k] = v
  end
  return params
end

local function redirect_uri(host, port, path)
  if host == "localhost" then
    return ("http://localhost:%d%s"):format(port, path)
  elseif host == "::1" then
    return ("http://[::1]:%d%s"):format(port, path)
  end
  return ("http://127.0.0.1:%d%s"):format(port, path)
end

-- One wait: the listener, the promise's settle functions, and the loop
-- source (pending/step) in one table.
local Waiter = {}
Waiter.__index = Waiter

function Waiter:settle(ok, value)
  if self.settled then return end
  self.settled = true
  if self.timer then self.timer:close() end
  self.timer = nil
  loop.remove_source(self)
  self.l:close()
  if ok then self.resolve(value) else self.reject(value) end
end

function Waiter:fail(err)
  self:settle(false, err)
end

function Waiter:refuse(req, status, body, extra)
  self.l:respond(req.conn, status, refusal_headers(extra), body)
end

-- Decides about one request: everything but the expected redirect is
-- refused and the wait goes on.
-- Whether a Host header names this listener: a loopback name and our own
-- port. A page on another site that makes the browser send a request here
-- (DNS rebinding: evil.example resolving to 127.0.0.1) says its own name.
local function our_host(host, port)
  if type(host) ~= "string" then return false end
  local name, p = host:lower():match("^(.-):(%d+)$")
  return tonumber(p) == port and (name == "localhost" or name == "127.0.0.1" or name == "[::1]")
end

function Waiter:handle(req)
  if not our_host(req.headers and req.headers.host, self.port) then
    return self:refuse(req, 400, "400 Bad Request: wrong Host\n")
  end
  if req.path ~= self.path then
    return self:refuse(req, 404, "404 Not Found\n")
  end
  if req.method ~= "GET" then
    return self:refuse(req, 405, "405 Method Not Allowed\n", { Allow = "GET" })
  end
  local params = M.parse_query(req.query)
  if not params then
    return self:refuse(req, 400, "400 Bad Request\n")
  end
  local state = params.state
  if type(state) ~= "string" or not constant_time_equal(state, self.expected_state) then
    return self:refuse(req, 400, "400 Bad Request: this is not the response this application is waiting for\n")
  end
  if params.code == nil and params.error == nil then
    return self:refuse(req, 400, "400 Bad Request\n")
  end
  self.params = params
  local page = params.error and self.error_page or self.success_page
  self.l:respond(req.conn, 200, PAGE_HEADERS, page)
  -- The port closes now; the page is still delivered by step() below.
  self.l:stop()
  if self.timer then self.timer:close() end
  self.timer = nil
end

-- msal.loop source: waiting counts as pending until the promise settles.
-- pollfd/timeout let the loop wait on it together with other sources.
function Waiter:pollfd()
  return self.l:pollfd()
end

function Waiter:timeout()
  return self.l:timeout()
end

function Waiter:pending()
  return not self.settled
end

function Waiter:step(timeout_ms)
  if self.settled then return false end
  local l = self.l
  local ok, err = pcall(l.step, l, timeout_ms)
  if not ok then
    self:fail(errors.BrowserAuthError("loopback_failed", "loopback listener: " .. tostring(err)))
    return true
  end
  local ran = false
  while not self.params do
    local req = l:take()
    if not req then break end
    ran = true
    self:handle(req)
  end
  -- Resolving only once the page is out means a caller that exits right
  -- after await does not cut the browser off mid-page.
  if self.params and l:pending() == 0 then
    self:settle(true, { params = self.params, redirect_uri = self.redirect_uri })
    ran = true
  end
  return ran
end

function Waiter:on_timeout()
  self.timer = nil
  if self.params then
    return self:settle(true, { params = self.params, redirect_uri = self.redirect_uri })
  end
  self:fail(errors.BrowserAuthError("timed_out",
    ("no redirect reached the loopback listener within %d ms"):format(self.timeout_ms)))
end

local Handle = {}
Handle.__index = Handle

--- Stop waiting: the port closes and the promise rejects with
-- `BrowserAuthError("user_cancelled")`. Does nothing once settled.
function Handle:close()
  self._w:fail(errors.BrowserAuthError("user_cancelled", "the wait for the redirect was cancelled"))
end

local function listen(opts, port)
  local lb = require("msal.core").loopback
  return lb.listen{
    host = opts.host or "localhost", port = port, path = opts.path or "/",
    max_request_bytes = opts.max_request_bytes, request_timeout_ms = opts.request_timeout_ms,
  }
end

--- Listen on loopback and wait for the authorization redirect.
-- @tparam table opts
-- @tparam string opts.expected_state the `state` sent in the authorization
-- request; compared in constant time
-- @tparam[opt=0] integer opts.port port to listen on; 0 picks a free one,
-- and a busy one falls back to a free one (as msal-node does)
-- @tparam[opt="/"] string opts.path the redirect URI's path
-- @tparam[opt="localhost"] string opts.host "localhost" (127.0.0.1 and
-- ::1), "127.0.0.1" or "::1"; nothing else is accepted
-- @tparam[opt] number opts.timeout_ms how long to wait (default 5 minutes;
-- `math.huge` for no limit)
-- @tparam[opt] string opts.success_page HTML shown after the redirect
-- @tparam[opt] string opts.error_page HTML shown when the redirect carries `error`
-- @tparam[opt] integer opts.max_request_bytes cap on one request (16 KiB)
-- @tparam[opt] integer opts.request_timeout_ms time a client has to send
-- its request (5000)
-- @tparam[opt] function opts.on_listening `(redirect_uri)`, called once the
-- port is open, typically to open the browser; if it throws, or returns a
-- promise that rejects, the wait ends with that error
-- @treturn Promise resolving `{params = {code=…, state=…, …}, redirect_uri = …}`
-- (also when `params.error` is set: classifying it is the flow's job), or
-- rejecting with `BrowserAuthError` `timed_out`, `user_cancelled`,
-- `loopback_listen_failed` (its `reason` is msal.core's code: EINVAL for a
-- host that is not loopback, else an errno name such as EACCES) or
-- `loopback_failed`
-- @treturn table handle: `redirect_uri`, `port`, and `close()` to cancel
function M.wait_for_redirect(opts)
  assert(type(opts) == "table", "wait_for_redirect: opts must be a table")
  assert(type(opts.expected_state) == "string" and opts.expected_state ~= "",
    "wait_for_redirect: expected_state must be a non-empty string")
  local timeout_ms = opts.timeout_ms or M.DEFAULT_TIMEOUT_MS
  assert(type(timeout_ms) == "number" and timeout_ms > 0, "wait_for_redirect: timeout_ms must be positive")
  constant_time_equal = constant_time_equal or require("msal.core").crypto.constant_time_equal

  local w = setmetatable({
    expected_state = opts.expected_state,
    path = opts.path or "/",
    timeout_ms = timeout_ms,
    success_page = opts.success_page or M.SUCCESS_PAGE,
    error_page = opts.error_page or M.ERROR_PAGE,
  }, Waiter)
  local handle = setmetatable({ _w = w }, Handle)
  local p = Promise.new(function(resolve, reject) w.resolve, w.reject = resolve, reject end)

  local port = opts.port or 0
  local l, msg, code = listen(opts, port)
  if not l and code == "EADDRINUSE" and port ~= 0 then
    l, msg, code = listen(opts, 0)
  end
  if not l then
    w.settled = true
    w.reject(errors.BrowserAuthError("loopback_listen_failed", msg, { reason = code }))
    return p, handle
  end
  w.l = l
  w.port = l:port()
  w.redirect_uri = redirect_uri(opts.host or "localhost", w.port, w.path)
  handle.redirect_uri, handle.port = w.redirect_uri, l:port()
  loop.add_source(w)
  if timeout_ms ~= math.huge then
    w.timer = loop.set_timeout(timeout_ms, function() w:on_timeout() end)
  end
  if opts.on_listening then
    local ok, r = pcall(opts.on_listening, w.redirect_uri)
    if not ok then
      w:fail(r)
    elseif Promise.is_promise(r) then
      r:next(nil, function(e) w:fail(e) end)
    end
  end
  return p, handle
end

return M

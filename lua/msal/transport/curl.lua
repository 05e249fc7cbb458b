--- The default HTTP transport: libcurl's multi interface in the C core
-- (`msal.core.http`), driven by `msal.loop`.
--
-- Implements the host-neutral transport contract:
-- `transport:request(req, done) -> handle`, `done(err, res)` called exactly
-- once and always from the loop, `handle:close()` cancels. All requests of
-- one transport share one multi handle, so connections to a host are kept
-- alive and reused. TLS certificates are always verified.
--
-- Each transport registers one source with `msal.loop` while it has
-- requests in flight; the loop's idle wait then blocks in the source's
-- `step`, inside `epoll_wait`, instead of spinning.
-- @module msal.transport.curl
local loop = require("msal.loop")
local common = require("msal.transport.common")

local M = {}

local Transport = {}
Transport.__index = Transport

local Handle = {}
Handle.__index = Handle

-- Per-transport settings the C side takes as defaults for every request.
local OPTION_NAMES = {
  "ca_file", "ca_path", "max_response_bytes", "max_header_bytes", "connect_timeout_ms", "timeout_ms",
}

-- Request fields passed through to msal.core.http; anything else in `req`
-- is ignored, so callers may carry their own bookkeeping in it.
local REQUEST_NAMES = {
  "method", "url", "headers", "body", "timeout_ms", "connect_timeout_ms", "max_response_bytes",
}

local function pick(from, names)
  local out = {}
  if from then
    for i = 1, #names do out[names[i]] = from[names[i]] end
  end
  return out
end

-- The loop source: pending while the multi has work, step = one multi
-- step, then every finished request's done is queued as a loop job (one
-- job each, so a done that throws cannot swallow the others).
local Source = {}
Source.__index = Source

function Source:pending()
  return self.t._multi:pending() > 0
end

function Source:step(timeout_ms)
  local t = self.t
  local multi = t._multi
  local ids = multi:step(timeout_ms)
  for i = 1, #ids do
    local id = ids[i]
    local done = t._done[id]
    t._done[id] = nil
    local res, err = multi:result(id)
    if done then
      if res then loop.defer(done, nil, res) else loop.defer(done, err) end
    end
  end
  -- An idle transport leaves the loop, so it can be collected (its
  -- connections closed) once its owner drops it; request() re-registers.
  if multi:pending() == 0 then loop.remove_source(self) end
  return #ids > 0
end

--- The fd a host loop can watch (readable when step has socket work).
-- @treturn integer
function Source:pollfd()
  return self.t._multi:pollfd()
end

--- Milliseconds until step has timer work, or nil.
-- @treturn ?integer
function Source:timeout()
  return self.t._multi:timeout()
end

--- Make a transport with its own connection pool.
-- @tparam[opt] table opts `ca_file`, `ca_path` (trust these CAs instead of
-- the system's), `max_response_bytes` (default 1 MiB), `max_header_bytes`
-- (default 64 KiB), `connect_timeout_ms` (default 10000), `timeout_ms`
-- (whole request, default 30000)
-- @treturn table transport
function M.new(opts)
  local http = require("msal.core.http")
  local self = setmetatable({
    _multi = http.new(pick(opts, OPTION_NAMES)),
    _done = {}, -- request id -> done callback, while in flight
  }, Transport)
  self._source = setmetatable({ t = self }, Source)
  return self
end

--- The process-wide transport with default options, made on first use.
-- @function default
-- @treturn table transport
M.default = common.default_of(M)

--- Start a request.
-- @tparam table req `method` (default "GET"), `url` (http or https only),
-- `headers` (`{name = value}`), `body` (string), `timeout_ms`; also
-- `connect_timeout_ms` and `max_response_bytes` to override the
-- transport's defaults
-- @tparam function done `done(err, res)`, called once from the loop:
-- `res = {status, headers, body}` with lower-case header names (repeated
-- headers joined with ", "); `err = {kind, message}` with kind "timeout",
-- "connect", "tls", "too_large", "io" or "canceled". An HTTP error status
-- is a response, not an err.
-- @treturn table handle; `handle:close()` cancels the request
-- @raise on a malformed request (no url, bad header name, CR/LF in a
-- header value...) or a closed transport
function Transport:request(req, done)
  assert(type(req) == "table", "request: req must be a table")
  assert(type(done) == "function", "request: done must be a function")
  local id = self._multi:request(pick(req, REQUEST_NAMES))
  self._done[id] = done
  loop.add_source(self._source)
  return setmetatable({ _t = self, _id = id }, Handle)
end

--- Cancel the request: done receives `{kind = "canceled"}` from the loop.
-- Does nothing once the request has finished or the transport is closed.
function Handle:close()
  local t = self._t
  -- Not in _done: already delivered (or about to be), or transport closed.
  if t._done[self._id] then t._multi:cancel(self._id) end
end

--- Start a request and get a promise for its response (see
-- msal.transport.common).
-- @function Transport:send
Transport.send = common.send

--- Requests in flight (or finished and not yet delivered).
-- @treturn integer
function Transport:pending()
  return self._multi:pending()
end

--- Cancel every request (their done get "canceled" from the loop) and
-- close all connections. The transport cannot be used afterwards.
function Transport:close()
  for id, done in pairs(self._done) do
    self._done[id] = nil
    loop.defer(done, { kind = "canceled", message = "the transport was closed" })
  end
  loop.remove_source(self._source)
  self._multi:close()
end

return M

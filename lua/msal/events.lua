--- Event callbacks, MSAL's EventMessage in snake_case:
-- `{event_type, interaction_type, payload, error, timestamp, correlation_id}`.
-- A callback that throws is logged and does not break the flow. Payloads
-- carry no raw token (access, id or refresh token) unless PII logging is on.
-- @module msal.events
local errors = require("msal.errors")
local Promise = require("msal.promise")

local events = {}
local unpack = table.unpack or unpack

--- Event names (values are MSAL's strings).
events.types = {
  LOGIN_START = "msal:loginStart", LOGIN_SUCCESS = "msal:loginSuccess", LOGIN_FAILURE = "msal:loginFailure",
  ACQUIRE_TOKEN_START = "msal:acquireTokenStart", ACQUIRE_TOKEN_SUCCESS = "msal:acquireTokenSuccess",
  ACQUIRE_TOKEN_FAILURE = "msal:acquireTokenFailure",
  ACQUIRE_TOKEN_NETWORK_START = "msal:acquireTokenFromNetworkStart",
  HANDLE_REDIRECT_START = "msal:handleRedirectStart", HANDLE_REDIRECT_END = "msal:handleRedirectEnd",
  LOGOUT_START = "msal:logoutStart", LOGOUT_SUCCESS = "msal:logoutSuccess",
  LOGOUT_FAILURE = "msal:logoutFailure", LOGOUT_END = "msal:logoutEnd",
  ACCOUNT_ADDED = "msal:accountAdded", ACCOUNT_REMOVED = "msal:accountRemoved",
  ACTIVE_ACCOUNT_CHANGED = "msal:activeAccountChanged",
}

-- The fields of a result that hold a token itself.
local TOKEN_FIELDS = { "access_token", "id_token", "refresh_token" }

-- A copy of payload without its tokens; callbacks get the rest (account,
-- scopes, expiry, claims).
local function without_tokens(payload)
  local any = false
  for _, k in ipairs(TOKEN_FIELDS) do
    if rawget(payload, k) ~= nil then any = true end
  end
  -- nothing to take out (an account): the payload itself, with its lazily
  -- read fields
  if not any then return payload end
  local copy = {}
  for k, v in pairs(payload) do copy[k] = v end
  for _, k in ipairs(TOKEN_FIELDS) do copy[k] = nil end
  return copy
end

local Emitter = {}
Emitter.__index = Emitter

-- Results whose token answer made a new account: ACCOUNT_ADDED follows
-- their success event (weak keys: a result nobody awaits leaves no trace).
local added = setmetatable({}, { __mode = "k" })

--- Notes that the answer behind result put a new account in the cache:
-- the flow's success event is followed by ACCOUNT_ADDED (payload: the
-- account), as msal-browser reports an account that appears in its
-- storage.
function events.account_added(result, account)
  added[result] = account
end

--- Makes an emitter. `logger` receives callback failures.
function events.new(log, clock)
  return setmetatable({ callbacks = {}, order = {}, seq = 0, n = 0, log = log, clock = clock or os.time }, Emitter)
end

--- Registers fn for every event, or only for the listed event types.
-- @treturn string the callback id
function Emitter:add(fn, types)
  if type(fn) ~= "function" then error("event callback must be a function", 3) end
  self.seq = self.seq + 1
  local id = "cb-" .. self.seq
  local filter
  if type(types) == "table" and #types > 0 then
    filter = {}
    for _, t in ipairs(types) do filter[t] = true end
  end
  self.callbacks[id] = { fn = fn, filter = filter }
  self.order[#self.order + 1] = id
  self.n = self.n + 1
  return id
end

--- Removes a callback; returns whether it was there.
function Emitter:remove(id)
  if not self.callbacks[id] then return false end
  self.callbacks[id] = nil
  for i, v in ipairs(self.order) do
    if v == id then table.remove(self.order, i) break end
  end
  self.n = self.n - 1
  return true
end

--- Sends an event to the callbacks, in the order they were added.
function Emitter:emit(event_type, interaction_type, payload, err, correlation_id)
  if self.n == 0 then return end
  if type(payload) == "table" and not (self.log and self.log.pii) then payload = without_tokens(payload) end
  local message = {
    event_type = event_type, interaction_type = interaction_type, payload = payload,
    error = err, timestamp = self.clock(), correlation_id = correlation_id,
  }
  -- a copy: a callback may unsubscribe itself or others while we iterate
  local ids = { unpack(self.order) }
  for _, id in ipairs(ids) do
    local cb = self.callbacks[id]
    if cb and (not cb.filter or cb.filter[event_type]) then
      local ok, e = pcall(cb.fn, message)
      if not ok and self.log then
        self.log:warning("event callback for " .. event_type .. " failed: " .. tostring(e))
      end
    end
  end
end

--- A flow's promise with its events, the one wrapper every public method
-- uses: `kinds.start` now (payload `kinds.start_payload`), then `kinds.ok`
-- with the result (or `kinds.ok_payload(result)`) or `kinds.fail` with the error,
-- then `kinds.done` either way; a kind left nil is not emitted. A rejection
-- that is not an error object becomes a ClientAuthError "unexpected_error".
-- @tparam table p the flow's promise
-- @tparam string interaction "silent", "popup", "redirect", "device_code"
-- @tparam table kinds `{start, ok, fail, done, start_payload, ok_payload,
--   correlation_id (when the error has none), on_fail = fn(err)}`
-- @treturn table the promise callers get
function Emitter:around(p, interaction, kinds)
  if kinds.start and self.n > 0 then self:emit(kinds.start, interaction, kinds.start_payload) end
  local out = p:next(function(result)
    if kinds.ok and self.n > 0 then
      local payload = result
      if kinds.ok_payload then payload = kinds.ok_payload(result) end
      self:emit(kinds.ok, interaction, payload, nil, type(result) == "table" and result.correlation_id or nil)
    end
    local account = type(result) == "table" and added[result]
    if account then
      added[result] = nil
      if self.n > 0 then self:emit(events.types.ACCOUNT_ADDED, nil, account, nil, result.correlation_id) end
    end
    return result
  end, function(err)
    if not errors.is_error(err) then err = errors.ClientAuthError("unexpected_error", tostring(err)) end
    if kinds.fail and self.n > 0 then
      self:emit(kinds.fail, interaction, nil, err, err.correlation_id or kinds.correlation_id)
    end
    if kinds.on_fail then kinds.on_fail(err) end
    return Promise.reject(err)
  end)
  local done_type = kinds.done
  if done_type then
    local function done() if self.n > 0 then self:emit(done_type, interaction) end end
    out:next(done, done)
  end
  return out
end

return events

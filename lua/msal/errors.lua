--- Error classes of lua-msal, and the rule that tells which server answers
-- mean "the user must interact" (MSAL's InteractionRequiredAuthError).
-- Errors are plain tables, so they cross coroutines, promises and pcall
-- unchanged; `tostring(err)` and `err:tostring()` give one readable line.
--
-- **The error rule.** Every module follows it:
--
-- - internal helpers return `nil, err` (an error object of this module);
-- - flows and the public API reject their promise with an error object and
--   never return `nil, err` to the caller; inside a flow's `Promise.async`
--   body, `errors.try(helper(...))` turns a helper's `nil, err` into that
--   rejection (a raise in the body rejects its promise);
-- - nothing raises across a module boundary, except configuration errors
--   at construction time (`ClientConfigurationError` from `new`) and the
--   hooks of cache plugins (MSAL's plugin shape: a plugin raises, the cache
--   access that called it fails with that error).
-- @module msal.errors
local errors = {}

local Error = {}
Error.__index = Error

--- One line: `Name: code: message`, plus the suberror and correlation id.
-- @treturn string
function Error:tostring()
  local s = self.name .. ": " .. tostring(self.error_code) .. ": " .. tostring(self.error_message)
  if self.suberror and self.suberror ~= "" then s = s .. " (suberror: " .. self.suberror .. ")" end
  if self.correlation_id then s = s .. " [correlation id " .. self.correlation_id .. "]" end
  return s
end
Error.__tostring = Error.tostring

local names = {
  "AuthError", "InteractionRequiredAuthError", "ServerError", "ClientAuthError",
  "ClientConfigurationError", "BrowserAuthError",
  -- a managed identity source's own failure (its `source` field names it:
  -- "AppService", "AzureArc", "Imds"…): an unusable environment, the Azure
  -- Arc key file, a user-assigned id the source cannot take
  "ManagedIdentityError",
  -- a bearer token msal.jwt.verify refused; the code names the check
  "TokenValidationError",
}

local function class(name)
  --- Makes an error of this class.
  -- @tparam string code MSAL's error code (`no_tokens_found`, `invalid_grant`, …)
  -- @tparam string message what went wrong; never a token or a secret
  -- @tparam[opt] table fields suberror, claims, correlation_id, status, error_no, …
  -- @treturn table the error
  return function(code, message, fields)
    local e = {}
    if fields then for k, v in pairs(fields) do e[k] = v end end
    e.name, e.error_code, e.error_message = name, code, message or code
    return setmetatable(e, Error)
  end
end

for _, name in ipairs(names) do errors[name] = class(name) end

--- Whether x is an error made here (of any class).
function errors.is_error(x)
  return getmetatable(x) == Error
end

--- Whether err is an InteractionRequiredAuthError: the caller should fall
-- back to an interactive flow.
-- @tparam any err a rejection reason
-- @treturn boolean
function errors.is_interaction_required(err)
  return type(err) == "table" and err.name == "InteractionRequiredAuthError"
end

-- MSAL's lists: an `error` or `suberror` from these sets, or an
-- error_description that mentions one of them, means interaction is needed.
local interaction_codes = {
  interaction_required = true, consent_required = true, login_required = true,
  bad_token = true, ui_not_allowed = true, interrupted_user = true,
}
local interaction_suberrors = {
  message_only = true, additional_action = true, basic_action = true,
  user_password_expired = true, consent_required = true, bad_token = true,
  ui_not_allowed = true, interrupted_user = true,
}

--- Whether a server error answer asks for interaction, by MSAL's rules.
-- @tparam string code the `error` member
-- @tparam[opt] string description `error_description`
-- @tparam[opt] string suberror
function errors.server_wants_interaction(code, description, suberror)
  if interaction_codes[code] or (suberror and interaction_suberrors[suberror]) then return true end
  if type(description) == "string" then
    for c in pairs(interaction_codes) do
      if description:find(c, 1, true) then return true end
    end
    for c in pairs(interaction_suberrors) do
      if description:find(c, 1, true) then return true end
    end
  end
  return false
end

--- Turns an OAuth error answer (token or authorize endpoint) into the error
-- class MSAL would raise.
-- @tparam table body the decoded error JSON (`error`, `error_description`,
--   `error_codes`, `suberror`, `claims`, `correlation_id`, `trace_id`, `timestamp`)
-- @tparam[opt] number status HTTP status
function errors.from_server(body, status)
  local code = type(body.error) == "string" and body.error or "server_error"
  local desc = type(body.error_description) == "string" and body.error_description or nil
  local sub = type(body.suberror) == "string" and body.suberror or nil
  local error_no
  if type(body.error_codes) == "table" and body.error_codes[1] ~= nil then
    local c = body.error_codes[1]
    -- cjson gives numbers as floats on Lua 5.4: 700082, not "700082.0"
    error_no = (type(c) == "number" and c == math.floor(c)) and ("%d"):format(c) or tostring(c)
  end
  local fields = {
    suberror = sub, claims = type(body.claims) == "string" and body.claims or nil,
    correlation_id = type(body.correlation_id) == "string" and body.correlation_id or nil,
    trace_id = type(body.trace_id) == "string" and body.trace_id or nil,
    timestamp = type(body.timestamp) == "string" and body.timestamp or nil,
    error_no = error_no, status = status,
  }
  local make = errors.server_wants_interaction(code, desc, sub) and errors.InteractionRequiredAuthError
    or errors.ServerError
  return make(code, desc or code, fields)
end

--- A helper's outcome, inside a flow: returns v when err is nil, else
-- raises err (at level 0: an error object carries its own message). In a
-- `Promise.async` body that rejects the flow's promise with err.
-- @param v the value
-- @param[opt] err the error object of a `nil, err` return
-- @return v
function errors.try(v, err)
  if err ~= nil then error(err, 0) end
  return v
end

return errors

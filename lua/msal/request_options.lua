--- The request tables of the public methods: which keys each method takes
-- and of what type, checked like the configuration (msal.config.check), so
-- that a misspelt key, or MSAL.js's camelCase spelling of one, is a
-- ClientConfigurationError naming it instead of an option silently ignored.
-- Values that need more than a type (policies, offsets, extra parameters)
-- are checked here too, once for every flow.
-- @module msal.request_options
local config = require("msal.config")
local errors = require("msal.errors")

local request_options = {}

-- check runs on every silent call: globals read once
local next, type = next, type

--- msal-browser's CacheLookupPolicy: where acquire_token_silent may look.
-- lua-msal has no hidden iframe, so the policies that would fall back to
-- one end where the iframe would start (see flows/silent.lua).
request_options.CacheLookupPolicy = {
  Default = 0, AccessToken = 1, AccessTokenAndRefreshToken = 2,
  RefreshToken = 3, RefreshTokenAndNetwork = 4, Skip = 5,
}

-- Parameters the library itself writes into authorize URLs and token
-- requests: extra parameters may add to a request, never change what the
-- protocol's checks (PKCE, state, nonce, the client, the grant) rely on.
-- Each maps to the request's own option for it, when there is one.
local RESERVED = {
  client_id = true, response_type = true, client_info = true, grant_type = true, device_code = true,
  client_secret = true, client_assertion = true, client_assertion_type = true, assertion = "obo_assertion",
  requested_token_use = true,
  scope = "scopes", redirect_uri = "redirect_uri", response_mode = "response_mode", state = "state",
  nonce = "nonce", code_challenge = "code_challenge", code_challenge_method = "code_challenge_method",
  claims = "claims", code = "code", code_verifier = "code_verifier", refresh_token = "refresh_token",
  ["client-request-id"] = "correlation_id", prompt = "prompt", login_hint = "login_hint",
  domain_hint = "domain_hint", sid = "sid", max_age = "max_age",
}
request_options.RESERVED = RESERVED

-- The building blocks of the methods' key sets.
local function keys(...)
  local out = {}
  for _, set in ipairs({ ... }) do
    for k, v in pairs(set) do out[k] = v end
  end
  return out
end

local BASE = { scopes = "table", claims = "string", authority = "string", correlation_id = "string" }
local QUERY = { extra_query_parameters = "table" }
local BODY = { extra_body_parameters = "table", token_body_parameters = "table" }
local AUTHORIZE = keys(BASE, QUERY, {
  account = "table", extra_scopes_to_consent = "table", prompt = "string", login_hint = "string",
  domain_hint = "string", sid = "string", max_age = "number", state = "string", redirect_uri = "string",
  response_mode = "string",
})

local SILENT = keys(BASE, QUERY, BODY, {
  account = "table", force_refresh = "boolean", cache_lookup_policy = "number",
  refresh_token_expiration_offset = "number",
})
local REDIRECT = keys(AUTHORIZE, BODY)
local POPUP = keys(REDIRECT, { success_template = "string", error_template = "string", open_browser = "function" })
local DEVICE_CODE = keys(BASE, { device_code_callback = "function", timeout = "number", cancel = "boolean" })
local LOGOUT = { account = "table", post_logout_redirect_uri = "string", logout_hint = "string", state = "string",
  authority = "string", correlation_id = "string" }

--- Each public method's keys (key -> Lua type), and whether the method
-- takes no request at all (`optional`).
request_options.METHODS = {
  acquire_token_silent = { keys = SILENT },
  acquire_token_popup = { keys = POPUP },
  login_popup = { keys = POPUP, optional = true },
  acquire_token_redirect = { keys = REDIRECT },
  login_redirect = { keys = REDIRECT, optional = true },
  acquire_token_by_device_code = { keys = DEVICE_CODE },
  logout_redirect = { keys = LOGOUT, optional = true },
  logout_popup = { keys = keys(LOGOUT, { open_browser = "function" }), optional = true },
  acquire_token_by_refresh_token = { keys = keys(BASE, QUERY, BODY, { refresh_token = "string" }) },
  get_auth_code_url = { keys = keys(AUTHORIZE, { code_challenge = "string", code_challenge_method = "string",
    nonce = "string" }), optional = true },
  acquire_token_by_code = { keys = keys(BASE, QUERY, BODY, { code = "string", redirect_uri = "string",
    code_verifier = "string", nonce = "string", max_age = "number" }) },
  -- ManagedIdentityApplication:acquire_token
  ["acquire_token managed_identity"] = { keys = { resource = "string", force_refresh = "boolean",
    claims = "string", correlation_id = "string" }, optional = true },
  -- confidential clients (msal.application.confidential)
  acquire_token_by_client_credential = { keys = keys(BASE, QUERY, BODY, { force_refresh = "boolean",
    azure_region = "string" }) },
  acquire_token_on_behalf_of = { keys = keys(BASE, QUERY, BODY, { obo_assertion = "string",
    force_refresh = "boolean" }) },
  -- acquire_token: the silent call's keys and the interactive flow's
  ["acquire_token popup"] = { keys = keys(SILENT, POPUP) },
  ["acquire_token redirect"] = { keys = keys(SILENT, REDIRECT) },
  ["acquire_token device_code"] = { keys = keys(SILENT, DEVICE_CODE) },
}
local METHODS = request_options.METHODS
for name, m in pairs(METHODS) do m.name = name:gsub(" .*", "") end

local HOW = { noun = "request key", code = "invalid_request" }
local PARAMS = { extra_query_parameters = true, extra_body_parameters = true, token_body_parameters = true }

local function bad(method, msg)
  return nil, errors.ClientConfigurationError("invalid_request", method .. ": " .. msg)
end

local function is_count(v)
  return v == v and v >= 0 and v ~= math.huge and v == math.floor(v)
end

-- A map of extra parameters: names and values are strings (numbers are
-- allowed as values and sent as text), and no name is the library's own.
local function check_params(name, allowed, field, params)
  for k, v in pairs(params) do
    if type(k) ~= "string" or k == "" then return bad(name, "'" .. field .. "' maps parameter names to values") end
    if type(v) ~= "string" and type(v) ~= "number" then
      return bad(name, "'" .. field .. "." .. k .. "' must be a string, not a " .. type(v))
    end
    local own = RESERVED[k]
    if own then
      return nil, errors.ClientConfigurationError("reserved_parameter", name .. ": '" .. field .. "' cannot set '" ..
        k .. "': the library sends it" .. (allowed[own] and (" (use the request's '" .. own .. "')") or ""))
    end
  end
  return true
end

-- The checks beyond the type, by key.
local VALUES = {
  cache_lookup_policy = function(v)
    if not (is_count(v) and v <= 5) then
      return "'cache_lookup_policy' must be one of msal.CacheLookupPolicy's values (0 to 5)"
    end
  end,
  refresh_token_expiration_offset = function(v)
    if not (v == v and v >= 0 and v ~= math.huge) then
      return "'refresh_token_expiration_offset' must be a number of seconds >= 0"
    end
  end,
  max_age = function(v)
    if not is_count(v) then return "'max_age' must be a whole number of seconds >= 0" end
  end,
  extra_query_parameters = function() end,
  extra_body_parameters = function() end,
  token_body_parameters = function() end,
  code_challenge_method = function(v)
    if v ~= "S256" then return "'code_challenge_method' must be \"S256\" (PKCE's plain method is refused)" end
  end,
}

--- Checks the request a public method was given.
-- @tparam string method the method's name (a key of METHODS)
-- @param req the request
-- @treturn[1] table the request (an empty one for a method whose request
--   is optional and was not given)
-- @treturn[2] nil
-- @treturn[2] table ClientConfigurationError naming the key
function request_options.check(method, req)
  local m = METHODS[method]
  if req == nil and m.optional then return {} end
  if type(req) ~= "table" then return bad(m.name, "the request must be a table, not a " .. type(req)) end
  -- one pass that makes nothing for a good request (this runs on every
  -- silent call, cache hits included); config.check words a bad key
  local want = m.keys
  for k, v in next, req do
    if want[k] ~= type(v) then
      local _, err = config.check(req, want, "", HOW)
      err.error_message = m.name .. ": " .. err.error_message
      return nil, err
    end
    local value_check = VALUES[k]
    if value_check then
      local msg = value_check(v)
      if msg then return bad(m.name, msg) end
      if PARAMS[k] then
        local ok, err = check_params(m.name, want, k, v)
        if not ok then return nil, err end
      end
    end
  end
  return req
end

--- The part of req that another method's key set takes (acquire_token
-- hands each flow its own keys).
-- @treturn table a new table
function request_options.pick(req, method)
  local allowed, out = METHODS[method].keys, {}
  for k, v in pairs(req) do
    if allowed[k] then out[k] = v end
  end
  return out
end

--- The extra body parameters of a request: `extra_body_parameters`, and
-- its MSAL name `token_body_parameters`, as one list of pairs in a stable
-- order (form_encode's input).
-- @treturn table list of `{name, value}`
function request_options.body_params(req)
  return request_options.params_list(req.extra_body_parameters, req.token_body_parameters)
end

--- Maps of parameters as one list of `{name, value}` pairs, sorted by name
-- so that equal requests encode equally.
function request_options.params_list(...)
  local merged, names = {}, {}
  for i = 1, select("#", ...) do
    for k, v in pairs(select(i, ...) or {}) do
      if merged[k] == nil then names[#names + 1] = k end
      merged[k] = tostring(v)
    end
  end
  table.sort(names)
  local out = {}
  for i, k in ipairs(names) do out[i] = { k, merged[k] } end
  return out
end

return request_options

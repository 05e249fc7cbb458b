--- The options each public method's request table takes, checked like the
-- configuration: an unknown key or a wrongly typed value is a
-- ClientConfigurationError, not a silently ignored option (MSAL.js callers
-- write `forceRefresh`; here that would quietly serve a cached token).
-- @module msal.request_options
local Promise = require("msal.promise")
local errors = require("msal.errors")

local request_options = {}

--- MSAL's cache look-up policies (msal-browser's numbers), the values of
-- acquire_token_silent's `cache_lookup_policy`. There is no hidden iframe
-- here: the network of a silent call is the refresh token, so
-- AccessTokenAndRefreshToken is Default, RefreshTokenAndNetwork is
-- RefreshToken, and Skip (no cached token, no refresh token) can only end
-- in InteractionRequiredAuthError.
request_options.CacheLookupPolicy = { Default = 0, AccessToken = 1, AccessTokenAndRefreshToken = 2,
  RefreshToken = 3, RefreshTokenAndNetwork = 4, Skip = 5 }

-- option -> expected Lua type
local SILENT = { scopes = "table", account = "table", claims = "string", force_refresh = "boolean",
  authority = "string", correlation_id = "string", cache_lookup_policy = "number" }
local REDIRECT = { scopes = "table", extra_scopes_to_consent = "table", prompt = "string", login_hint = "string",
  domain_hint = "string", claims = "string", account = "table", redirect_uri = "string", response_mode = "string",
  authority = "string", correlation_id = "string" }
local POPUP = { success_template = "string", error_template = "string" }
for k, v in pairs(REDIRECT) do POPUP[k] = v end

--- Known options per kind of request: `silent`, `redirect`, `popup`,
-- `device_code`, `logout`, and `interaction` (acquire_token's opts).
request_options.KNOWN = {
  silent = SILENT,
  redirect = REDIRECT,
  popup = POPUP,
  device_code = { scopes = "table", device_code_callback = "function", claims = "string", timeout = "number",
    cancel = "boolean", authority = "string", correlation_id = "string" },
  logout = { account = "table", post_logout_redirect_uri = "string", logout_hint = "string", state = "string",
    authority = "string", correlation_id = "string" },
  interaction = { interaction = "string" },
}

local function fail(msg)
  return errors.ClientConfigurationError("invalid_request", msg)
end

-- MSAL.js's spelling of an option, in ours: forceRefresh -> force_refresh.
local function snake(key)
  return (key:gsub("%u", function(c) return "_" .. c:lower() end))
end

--- Checks a request table against the options of `kind` (a table of
-- option -> type, or a name in KNOWN).
-- @param req the request (nil passes: the flow decides whether it needs one)
-- @string method the public method's name, for the message
-- @treturn table|nil a ClientConfigurationError, or nil when req is fine
function request_options.check(kind, req, method)
  if req == nil then return nil end
  if type(req) ~= "table" then return fail(method .. "'s request must be a table, not a " .. type(req)) end
  local known = type(kind) == "table" and kind or request_options.KNOWN[kind]
  for k, v in pairs(req) do
    local want = known[k]
    if want == nil then
      if type(k) ~= "string" then
        return fail(method .. " takes a table of named options; a list (of scopes?) belongs in request.scopes")
      end
      local hint = snake(k)
      if hint ~= k and known[hint] then
        return fail("unknown request option '" .. k .. "' for " .. method .. "; did you mean '" .. hint .. "'?")
      end
      return fail("unknown request option '" .. k .. "' for " .. method)
    elseif type(v) ~= want then
      return fail("request option '" .. k .. "' of " .. method .. " must be a " .. want .. ", not a " .. type(v))
    elseif k == "cache_lookup_policy" and (v % 1 ~= 0 or v < 0 or v > 5) then
      return fail("request option 'cache_lookup_policy' of " .. method .. " must be a msal.CacheLookupPolicy value (0-5)")
    end
  end
  return nil
end

--- A rejected promise when req does not pass `check`, else nil: a public
-- method returns `rejected(...) or flow(...)`.
-- @treturn promise|nil
function request_options.rejected(kind, req, method)
  local err = request_options.check(kind, req, method)
  if err then return Promise.reject(err) end
  return nil
end

--- The options of two kinds together (acquire_token: silent, then the
-- interactive flow's request).
-- @treturn table option -> type
function request_options.union(a, b)
  local out = {}
  for k, v in pairs(request_options.KNOWN[a]) do out[k] = v end
  for k, v in pairs(request_options.KNOWN[b]) do out[k] = v end
  return out
end

--- The part of req that `kind` takes (acquire_token hands the silent
-- request on to the interactive flow without silent-only options).
-- @treturn table a new table
function request_options.only(kind, req)
  local known, out = request_options.KNOWN[kind], {}
  for k, v in pairs(req or {}) do
    if known[k] then out[k] = v end
  end
  return out
end

return request_options

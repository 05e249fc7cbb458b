--- Request normalisation shared by every flow: scopes (defaults, search
-- scopes, one resource per request) and claims (merged with the client's
-- capabilities).
-- @module msal.request
local cjson = require("msal.lazy").require("cjson.safe")
local errors = require("msal.errors")

local request = {}

--- The scopes MSAL adds to every request.
request.DEFAULT_SCOPES = { "openid", "profile", "offline_access" }
local OIDC = { openid = true, profile = true, offline_access = true, email = true }

-- Microsoft Graph answers short scopes ("User.Read") and is named three ways.
local GRAPH = "https://graph.microsoft.com"
local graph_names = {
  ["https://graph.microsoft.com"] = true, ["00000003-0000-0000-c000-000000000000"] = true,
  ["https://graph.microsoft.com/"] = true,
}

--- Checks a request's scopes: a list of non-empty strings without spaces.
-- @treturn[1] table the scopes
-- @treturn[2] nil
-- @treturn[2] table ClientConfigurationError
function request.check_scopes(scopes, optional)
  if scopes == nil and optional then return {} end
  if type(scopes) ~= "table" then
    return nil, errors.ClientConfigurationError("empty_input_scopes_error", "scopes must be a list of strings")
  end
  for i = 1, #scopes do
    local s = scopes[i]
    if type(s) ~= "string" or s == "" or s:find("%s") then
      return nil, errors.ClientConfigurationError("invalid_scopes",
        "scope " .. i .. " must be a non-empty string without spaces")
    end
  end
  return scopes
end

--- The resource a scope belongs to, or nil for the OpenID scopes.
-- `https://x/y/Scope` and `api://id/Scope` belong to the part before the
-- last `/`; a short scope (`User.Read`) belongs to Microsoft Graph.
function request.resource_of(scope)
  if OIDC[scope:lower()] then return nil end
  local base = scope:match("^(.*)/[^/]*$")
  if not base or base == "" then return GRAPH end
  base = base:gsub("/+$", "")
  local lower = base:lower()
  if graph_names[lower] then return GRAPH end
  return lower
end

--- Refuses scopes of two resources in one request: Entra issues a token
-- for one resource only (MSAL silently gets it for the first; we say so).
-- A generic OpenID provider has no such rule (`read:messages` and
-- `https://api.example.com/write` may well be one API), so for
-- `protocol_mode = "oidc"` apps nothing is refused.
-- @tparam table scopes
-- @tparam[opt] string kind the authority's kind (`authority.parse`)
-- @treturn[1] string|nil the one resource
-- @treturn[2] nil
-- @treturn[2] table ClientConfigurationError naming both resources
function request.single_resource(scopes, kind)
  if kind == "oidc" then return nil end
  local first
  for i = 1, #scopes do
    local r = request.resource_of(scopes[i])
    if r then
      if first and r ~= first then
        return nil, errors.ClientConfigurationError("multiple_resources",
          "scopes of two resources in one request: " .. first .. " and " .. r ..
          "; a token is issued for one resource, so request each resource's scopes separately")
      end
      first = first or r
    end
  end
  return first
end

--- Scopes as sent to the server: the caller's, in order, then the extra
-- ones, then the defaults, without duplicates.
-- @tparam table scopes
-- @tparam[opt] table extra (extra_scopes_to_consent)
-- @tparam[opt] table defaults the app's (`auth.oidc_options.default_scopes`),
--   DEFAULT_SCOPES when nil
function request.with_defaults(scopes, extra, defaults)
  local out, seen = {}, {}
  local function add(list)
    for i = 1, #list do
      local s = list[i]
      if not seen[s] then seen[s] = true; out[#out + 1] = s end
    end
  end
  add(scopes)
  if extra then add(extra) end
  add(defaults or request.DEFAULT_SCOPES)
  return out
end

--- The scopes a cached access token must hold for a request, lower-cased
-- and joined by spaces (the store's look-up form): the OpenID scopes drop
-- out unless the request has nothing else.
function request.search_scopes(scopes)
  local other, only_oidc = {}, {}
  for i = 1, #scopes do
    local s = scopes[i]:lower()
    if OIDC[s] then
      if s ~= "offline_access" then only_oidc[#only_oidc + 1] = s end
    else
      other[#other + 1] = s
    end
  end
  if #other > 0 then return table.concat(other, " ") end
  if #only_oidc > 0 then return table.concat(only_oidc, " ") end
  return "openid profile"
end

--- A token's target (scopes joined by spaces, as caches keep them) as a
-- list of scopes.
-- @tparam[opt] string target
-- @treturn table
function request.scope_list(target)
  local out = {}
  for w in (target or ""):gmatch("%S+") do out[#out + 1] = w end
  return out
end

--- Whether a claims request asks for anything (MSAL treats "{}" as none).
function request.has_claims(claims)
  return type(claims) == "string" and claims:match("^%s*{%s*}%s*$") == nil and claims:match("%S") ~= nil
end

--- Merges a claims request (JSON text) with the client's capabilities as
-- MSAL does: `access_token.xms_cc = {values = capabilities}`.
-- @treturn[1] string|nil the claims JSON to send, nil when there is none
-- @treturn[2] nil
-- @treturn[2] table ClientConfigurationError `invalid_claims`
function request.merge_claims(claims, capabilities)
  local has_caps = type(capabilities) == "table" and #capabilities > 0
  if not request.has_claims(claims) and not has_caps then return nil end
  local doc = {}
  if request.has_claims(claims) then
    local parsed = cjson.decode(claims)
    if type(parsed) ~= "table" then
      return nil, errors.ClientConfigurationError("invalid_claims", "claims must be a JSON object")
    end
    doc = parsed
  end
  if has_caps then
    if type(doc.access_token) ~= "table" then doc.access_token = {} end
    local values = {}
    for i = 1, #capabilities do values[i] = capabilities[i] end
    doc.access_token.xms_cc = { values = values } -- non-empty: cjson writes an array
  end
  return cjson.encode(doc)
end

--- Reads a CAE / conditional-access claims challenge from a resource's
-- `WWW-Authenticate` header (`Bearer realm="", error="insufficient_claims",
-- claims="<base64 JSON>"`) — MSAL leaves this to the app; the result goes
-- into the next request's `claims`.
-- @tparam string header the WWW-Authenticate value
-- @treturn string|nil the claims JSON, nil when the header carries none
function request.parse_claims_challenge(header)
  if type(header) ~= "string" then return nil end
  local b64 = header:match('[%s,]claims%s*=%s*"([^"]*)"') or header:match('^%s*[Bb]earer%s+claims%s*=%s*"([^"]*)"')
  if not b64 or b64 == "" then return nil end
  local crypto = require("msal.core").crypto
  local padded = b64 .. ("="):rep((4 - #b64 % 4) % 4)
  local json = crypto.b64_decode(padded) or crypto.b64url_decode((b64:gsub("=+$", "")))
  if not json or type(cjson.decode(json)) ~= "table" then return nil end
  return json
end

return request

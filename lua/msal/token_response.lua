--- Token endpoint answers: the checks a successful answer must pass before
-- anything of it reaches the cache, and the id token's claims checks.
-- @module msal.token_response
local cjson = require("cjson.safe")
-- loaded on first use: a cache hit never decodes a token
local crypto = require("msal.lazy").require("msal.core.crypto")
local errors = require("msal.errors")
local id_token = require("msal.id_token")
local authority = require("msal.authority")

local token_response = {}

local function bad(msg)
  return nil, errors.ClientAuthError("invalid_response", "the token response is not usable: " .. msg)
end

-- A lifetime in seconds: Entra v1 sends numbers as strings.
local function seconds(v, name, required)
  if v == nil then
    if required then return nil, name .. " is missing" end
    return false
  end
  local n = tonumber(v)
  if type(v) ~= "number" and type(v) ~= "string" or not n or n ~= n or n < 0 or n > 10 * 365 * 86400 then
    return nil, name .. " must be a number of seconds"
  end
  return math.floor(n)
end

--- Checks a successful token response.
-- @tparam table doc the decoded JSON
-- @treturn[1] table `{access_token, token_type, expires_in, ext_expires_in,
--   refresh_in, refresh_token_expires_in, scope, refresh_token, id_token,
--   client_info, foci}` (absent lifetimes are false)
-- @treturn[2] nil
-- @treturn[2] table ClientAuthError `invalid_response`
function token_response.check(doc)
  if type(doc.access_token) ~= "string" or doc.access_token == "" then
    return bad("access_token is missing or not a string")
  end
  for _, k in ipairs({ "token_type", "scope", "refresh_token", "id_token", "client_info" }) do
    if doc[k] ~= nil and type(doc[k]) ~= "string" then return bad(k .. " must be a string") end
  end
  local r = { access_token = doc.access_token, token_type = doc.token_type or "Bearer",
    scope = doc.scope, refresh_token = doc.refresh_token, id_token = doc.id_token,
    client_info = doc.client_info, foci = doc.foci ~= nil and tostring(doc.foci) or nil }
  local err
  r.expires_in, err = seconds(doc.expires_in, "expires_in", true)
  if not r.expires_in then return bad(err) end
  r.ext_expires_in, err = seconds(doc.ext_expires_in, "ext_expires_in")
  if r.ext_expires_in == nil then return bad(err) end
  r.refresh_in, err = seconds(doc.refresh_in, "refresh_in")
  if r.refresh_in == nil then return bad(err) end
  -- the refresh token's own lifetime (Entra sends it to SPAs: 24 hours)
  r.refresh_token_expires_in, err = seconds(doc.refresh_token_expires_in, "refresh_token_expires_in")
  if r.refresh_token_expires_in == nil then return bad(err) end
  return r
end

--- Decodes client_info (base64url JSON `{uid, utid}`); nil when absent or
-- unusable, as MSAL then falls back to the id token.
function token_response.client_info(raw)
  if type(raw) ~= "string" then return nil end
  local json = crypto.b64url_decode(raw:gsub("=+$", ""))
  local ci = json and cjson.decode(json)
  if type(ci) == "table" and type(ci.uid) == "string" and type(ci.utid) == "string" then return ci end
  return nil
end

local SKEW = 300

--- Checks a fresh id token: issuer, audience, expiry (with 5 minutes of
-- clock skew), the nonce when one was sent and, when the request had a
-- `max_age`, the time of the sign-in (`auth_time`) as MSAL checks it.
-- @treturn[1] table claims
-- @treturn[2] nil
-- @treturn[2] table ClientAuthError
function token_response.check_id_token(jwt, expect)
  local claims, err = id_token.decode(jwt)
  if not claims then return nil, err end
  local function fail(code, msg) return nil, errors.ClientAuthError(code, "the id token " .. msg) end
  if expect.metadata then
    local iss = authority.expected_issuer(expect.metadata, type(claims.tid) == "string" and claims.tid or nil)
    if claims.iss ~= iss then return fail("invalid_id_token", "was issued by another issuer") end
  end
  local aud = claims.aud
  local aud_ok = aud == expect.client_id
  if type(aud) == "table" then
    for _, a in ipairs(aud) do if a == expect.client_id then aud_ok = true end end
  end
  if not aud_ok then return fail("invalid_id_token", "is for another audience") end
  if type(claims.exp) ~= "number" or claims.exp + SKEW < expect.now then
    return fail("invalid_id_token", "has expired")
  end
  if type(claims.nbf) == "number" and claims.nbf - SKEW > expect.now then
    return fail("invalid_id_token", "is not valid yet")
  end
  if expect.nonce and not (type(claims.nonce) == "string" and crypto.constant_time_equal(claims.nonce, expect.nonce)) then
    return fail("nonce_mismatch", "does not carry the nonce of this request")
  end
  if expect.max_age then
    if type(claims.auth_time) ~= "number" then
      return fail("auth_time_not_found", "has no auth_time, which max_age needs (an optional claim on Entra)")
    end
    -- MSAL refuses max_age = 0 outright; a sign-in made for this request
    -- has an auth_time within the skew of now, and is accepted here
    if expect.now - SKEW > claims.auth_time + expect.max_age then
      return fail("max_age_transpired", "says the user signed in longer than max_age ago")
    end
  end
  return claims
end

return token_response

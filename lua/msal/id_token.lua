--- ID tokens: decoding the claims (no signature check here: MSAL trusts
-- tokens it cached itself) and the checks a fresh one must pass.
-- @module msal.id_token
local cjson = require("msal.lazy").require("cjson.safe")
-- loaded on first use: a cache hit never decodes a token
local crypto = require("msal.lazy").require("msal.core.crypto")
local errors = require("msal.errors")

local id_token = {}

local function fail(msg)
  return nil, errors.ClientAuthError("token_parsing_error", msg)
end

--- Decodes a JWT's claims.
-- @treturn[1] table claims
-- @treturn[1] table header
-- @treturn[2] nil
-- @treturn[2] table ClientAuthError `token_parsing_error`
function id_token.decode(jwt)
  if type(jwt) ~= "string" then return fail("the id token is not a string") end
  local header, payload = crypto.jwt_decode(jwt)
  if not header then return fail("the id token is malformed: " .. tostring(payload)) end
  local claims, h = cjson.decode(payload), cjson.decode(header)
  if type(claims) ~= "table" or type(h) ~= "table" then
    return fail("the id token's header or claims are not JSON objects")
  end
  return claims, h
end

-- Decoded claims by token text, so a silent cache hit does not decode the
-- same id token again; weak values let the collector drop unused ones.
local memo = setmetatable({}, { __mode = "v" })

--- Claims of a cached id token, decoded once per token text (nil when the
-- token cannot be decoded).
function id_token.cached_claims(jwt)
  local c = memo[jwt]
  if c == nil then
    c = id_token.decode(jwt)
    if c then memo[jwt] = c end
  end
  return c
end

--- A metatable for tables (accounts, results) whose `id_token_claims` are
-- decoded when first read, so that listing or serving 10,000 of them does
-- not decode or keep 10,000 claim tables.
-- @tparam function jwt_of given the table, its raw id token (or nil)
-- @treturn table the metatable
function id_token.claims_on_read(jwt_of)
  return {
    __index = function(t, k)
      if k ~= "id_token_claims" then return nil end
      local jwt = jwt_of(t)
      local claims = jwt and id_token.cached_claims(jwt) or nil
      if claims then rawset(t, "id_token_claims", claims) end
      return claims
    end,
  }
end

return id_token

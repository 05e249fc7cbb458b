-- Optional claims, as the seed's claimsRequest: ask for auth_time in the id
-- token (a JSON claims request), and read a CAE claims challenge from a
-- resource's WWW-Authenticate header into the next request.
--   scripts/examples
local msal = require("msal")
local example = require("local_authority")

local app = example.app()
local claims = '{"id_token":{"auth_time":{"essential":true}}}'
local result = assert(app:acquire_token_popup({ scopes = { "User.Read" }, claims = claims }):await())
print("signed in as " .. result.account.username .. "; id token claims: auth_time = " ..
  tostring(result.id_token_claims.auth_time) .. ", iat = " .. ("%d"):format(result.id_token_claims.iat))

-- a resource answered 401 with a claims challenge (conditional access)
local www_authenticate = 'Bearer realm="", error="insufficient_claims", claims="' ..
  require("msal.core").crypto.b64_encode('{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}') .. '"'
local challenge = msal.parse_claims_challenge(www_authenticate)
print("claims challenge: " .. challenge)
local again = assert(app:acquire_token_silent({ scopes = { "User.Read" }, account = result.account, claims = challenge }):await())
print("token for the challenge, from cache: " .. tostring(again.from_cache))

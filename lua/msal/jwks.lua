--- Signing keys from an issuer's JWKS, cached per process: for ID token
-- signatures (when `system.validate_id_token_signature` is on) and for
-- `msal.jwt.verify`.
--
-- A set is fetched once and kept for `max_age_s`; a token naming a `kid`
-- the set lacks re-fetches it (key rotation), at most once per
-- `refetch_s`, so a flood of forged tokens cannot turn into a flood of
-- JWKS requests. Concurrent needs of one set share one request. A set that
-- cannot be fetched again keeps serving the keys it has. Keys are built
-- (parsed and checked in C) once, on first use.
-- @module msal.jwks
local cjson = require("cjson.safe")
local Promise = require("msal.promise")
local crypto = require("msal.core").crypto
local errors = require("msal.errors")
local network = require("msal.network")
local loop = require("msal.loop")

local jwks = {}

--- Defaults: seconds between fetches for an unknown kid, and the age after
-- which a set is fetched again anyway (Microsoft.IdentityModel's 12 hours).
jwks.REFETCH_S = 60
jwks.MAX_AGE_S = 12 * 3600

-- A key set worth more keys than this is not an issuer's.
local MAX_KEYS = 100

local sets = {} -- uri -> {jwks = {jwk…}, built = {kid -> key | false}, fetched = ms, pending = promise}

local ALGS = { RS256 = true, PS256 = true, ES256 = true }
jwks.ALGS = ALGS

local function set_for(uri)
  local s = sets[uri]
  if not s then
    s = { jwks = {}, built = {}, fetched = nil }
    sets[uri] = s
  end
  return s
end

-- Fetches the set once for everyone who needs it now; a failure is kept in
-- s.why (the set, if any, stays).
local function refetch(transport, uri, s)
  if s.pending then return s.pending end
  s.pending = network.send(transport, { method = "GET", url = uri, headers = { accept = "application/json" } })
    :next(function(res)
      local doc = res.status == 200 and network.json(res)
      if type(doc) ~= "table" or type(doc.keys) ~= "table" or #doc.keys > MAX_KEYS then
        return ("the JWKS at %s is not usable (HTTP %d)"):format(uri, res.status)
      end
      s.jwks, s.built = doc.keys, {}
      return false
    end, function(err)
      return "the JWKS at " .. uri .. " cannot be fetched: " .. tostring(err.error_message or err)
    end)
    :next(function(why)
      s.pending, s.fetched, s.why = nil, loop.now_ms(), why or nil
    end)
  return s.pending
end

-- The built key for kid (for a token naming none, the first usable key of
-- the alg's type), or nil. Only kids the set holds are remembered, so
-- forged tokens with made-up kids cannot grow the table.
local function lookup(s, kid, alg)
  local slot = kid or alg
  local key = s.built[slot]
  if key ~= nil then return key or nil end
  local want = alg == "ES256" and "EC" or "RSA"
  for _, jwk in ipairs(s.jwks) do
    if type(jwk) == "table" and (kid == nil and jwk.kty == want or kid ~= nil and jwk.kid == kid) then
      key = crypto.public_key(jwk) or false
      if key or kid ~= nil then
        s.built[slot] = key
        return key or nil
      end
    end
  end
  return nil
end

--- The key a token names, when the cached set has it and is fresh enough:
-- the synchronous path of every verification but the first.
-- @tparam string uri
-- @tparam[opt] string kid
-- @tparam string alg
-- @tparam[opt] number max_age_s
-- @treturn userdata|nil the key (`msal.core.crypto.public_key`)
function jwks.cached_key(uri, kid, alg, max_age_s)
  local s = sets[uri]
  if not s or not s.fetched or loop.now_ms() - s.fetched >= (max_age_s or jwks.MAX_AGE_S) * 1000 then return nil end
  return lookup(s, kid, alg)
end

--- The key a token names, fetching the set when it is missing, too old, or
-- lacks the kid and was not fetched in the last `refetch_s`.
-- @tparam table transport
-- @tparam string uri
-- @tparam[opt] string kid
-- @tparam string alg
-- @tparam[opt] table policy `{refetch_s, max_age_s}`
-- @treturn promise of the key (userdata), or of `{code, message}` when
--   there is none: `unknown_key`, or `jwks_unavailable` when no set could
--   be fetched; never rejects
function jwks.key(transport, uri, kid, alg, policy)
  local refetch_ms = (policy and policy.refetch_s or jwks.REFETCH_S) * 1000
  local max_age_ms = (policy and policy.max_age_s or jwks.MAX_AGE_S) * 1000
  local s = set_for(uri)
  local age = s.fetched and loop.now_ms() - s.fetched
  local key = age and lookup(s, kid, alg)
  if key and age < max_age_ms then return Promise.resolve(key) end
  if age and not key and age < refetch_ms and age < max_age_ms then
    return Promise.resolve({ code = "unknown_key", message = "the issuer publishes no such key" })
  end
  return refetch(transport, uri, s):next(function()
    key = lookup(s, kid, alg)
    if key then return key end
    if s.why and #s.jwks == 0 then return { code = "jwks_unavailable", message = s.why } end
    return { code = "unknown_key", message = "the issuer publishes no such key" }
  end)
end

local function invalid(msg)
  return errors.ClientAuthError("invalid_id_token", "the id token's signature " .. msg)
end

--- Verifies an ID token's signature with the key its header names.
-- @treturn promise resolving true, rejecting with ClientAuthError
function jwks.verify(app, metadata, jwt)
  local header, _, sig, signing_input = crypto.jwt_decode(jwt)
  local h = header and cjson.decode(header)
  if type(h) ~= "table" then return Promise.reject(invalid("cannot be read: malformed token")) end
  if not ALGS[h.alg] then return Promise.reject(invalid("uses an algorithm this library refuses: " .. tostring(h.alg))) end
  if h.kid ~= nil and type(h.kid) ~= "string" then return Promise.reject(invalid("cannot be read: kid is not a string")) end
  local uri = metadata.jwks_uri
  if type(uri) ~= "string" then return Promise.reject(invalid("cannot be checked: the authority has no jwks_uri")) end
  return jwks.key(network.transport(app), uri, h.kid, h.alg):next(function(key)
    if type(key) == "table" then
      if key.code == "jwks_unavailable" then return Promise.reject(errors.ClientAuthError("invalid_jwks", key.message)) end
      return Promise.reject(invalid("names a key the authority does not publish"))
    end
    local ok, err = key:verify(h.alg, signing_input, sig)
    if ok ~= true then return Promise.reject(invalid("does not verify" .. (err and (": " .. err) or ""))) end
    return true
  end)
end

--- Forgets cached key sets (tests).
function jwks.clear() sets = {} end

return jwks

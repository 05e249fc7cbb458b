--- ID token signatures against the authority's JWKS (when
-- `system.validate_id_token_signature` is on). Key sets are cached per
-- process; an unknown `kid` re-fetches the set at most once a minute, so a
-- flood of forged tokens cannot turn into a flood of JWKS requests.
-- @module msal.jwks
local cjson = require("cjson.safe")
local Promise = require("msal.promise")
local crypto = require("msal.core").crypto
local errors = require("msal.errors")
local network = require("msal.network")
local loop = require("msal.loop")

local jwks = {}

local REFETCH_MS = 60000
local sets = {} -- jwks_uri -> {keys = {…}, fetched = ms}

local ALGS = { RS256 = true, PS256 = true, ES256 = true }

local function invalid(msg)
  return errors.ClientAuthError("invalid_id_token", "the id token's signature " .. msg)
end

local function fetch(app, uri)
  return network.send(network.transport(app), { method = "GET", url = uri, headers = { accept = "application/json" } })
    :next(function(res)
      local doc = res.status == 200 and network.json(res)
      if type(doc) ~= "table" or type(doc.keys) ~= "table" then
        return Promise.reject(errors.ClientAuthError("invalid_jwks", "the JWKS at " .. uri .. " is not usable"))
      end
      local set = { keys = doc.keys, fetched = loop.now_ms() }
      sets[uri] = set
      return set
    end)
end

local function find(set, kid)
  for _, k in ipairs(set.keys) do
    if type(k) == "table" and (kid == nil or k.kid == kid) then return k end
  end
end

--- Verifies a JWT's signature with the key its header names.
-- @treturn promise resolving true, rejecting with ClientAuthError
function jwks.verify(app, metadata, jwt)
  local header, _, sig, signing_input = crypto.jwt_decode(jwt)
  local h = header and cjson.decode(header)
  if type(h) ~= "table" then return Promise.reject(invalid("cannot be read: malformed token")) end
  if not ALGS[h.alg] then return Promise.reject(invalid("uses an algorithm this library refuses: " .. tostring(h.alg))) end
  local uri = metadata.jwks_uri
  if type(uri) ~= "string" then return Promise.reject(invalid("cannot be checked: the authority has no jwks_uri")) end
  local set = sets[uri]
  local p
  if set and (find(set, h.kid) or loop.now_ms() - set.fetched < REFETCH_MS) then
    p = Promise.resolve(set)
  else
    p = fetch(app, uri)
  end
  return p:next(function(s)
    local key = find(s, h.kid)
    if not key then return Promise.reject(invalid("names a key the authority does not publish")) end
    local ok, err = crypto.jws_verify(h.alg, key, signing_input, sig)
    if ok ~= true then return Promise.reject(invalid("does not verify" .. (err and (": " .. err) or ""))) end
    return true
  end)
end

--- Forgets cached key sets (tests).
function jwks.clear() sets = {} end

return jwks

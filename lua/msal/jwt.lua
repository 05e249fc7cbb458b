--- Bearer-token validation for resource servers: an API checks the access
-- token a client sent (`Authorization: Bearer …`) before it serves.
--
--     local claims = msal.jwt.verify(token, {
--       authority = "https://login.microsoftonline.com/organizations",
--       audience = { "api://my-api", "<my api's client id>" },
--       required_scopes = { "Data.Read" },
--     }):await()
--
-- The signature is checked against the issuer's JWKS (RS256, PS256, ES256
-- only: `alg=none`, HMAC and anything else are refused whatever the key),
-- with keys cached and rotated as `msal.jwks` describes; then `iss`,
-- `exp`/`nbf` (with `clock_skew`), `aud`, `tid` and the scopes or roles.
-- Every refusal is a `TokenValidationError` whose code names the check:
-- `malformed_token`, `unsupported_alg`, `invalid_issuer`, `unknown_key`,
-- `jwks_unavailable`, `invalid_signature`, `token_expired`,
-- `token_not_yet_valid`, `invalid_audience`, `invalid_tenant`,
-- `insufficient_scope`. Bad options are `ClientConfigurationError`s.
--
-- **Issuers.** `issuer` (a string or a list) is matched exactly, after
-- `{tenantid}` is replaced with the token's `tid` (Entra's multi-tenant
-- issuer template; the token must then carry a `tid`). Without `issuer`,
-- the `authority`'s OpenID configuration names it. Entra issues v1.0 tokens
-- as `https://sts.windows.net/{tid}/` and v2.0 ones as
-- `https://login.microsoftonline.com/{tid}/v2.0`: an Entra issuer accepts
-- either form of the same tenant in the same cloud, as Microsoft.Identity.Web
-- does.
--
-- **Scopes and roles.** As Microsoft.Identity.Web's `RequiredScope` and
-- `RequiredScopeOrAppPermission`: a token passes when it carries at least
-- one of `required_scopes` (in `scp`, or OAuth's `scope`) or at least one of
-- `required_roles` (in `roles`, which app-only tokens carry).
-- @module msal.jwt
local cjson = require("cjson.safe")
local crypto = require("msal.core").crypto
local Promise = require("msal.promise")
local authority = require("msal.authority")
local config = require("msal.config")
local errors = require("msal.errors")
local jwks = require("msal.jwks")
local network = require("msal.network")
local url = require("msal.url")

local jwt = {}

local DEFAULT_SKEW_S = 300
-- Entra access tokens are 1–3 KB; a token a hundred times larger is an attack.
local DEFAULT_MAX_TOKEN_BYTES = 64 * 1024

local OPTIONS = {
  issuer = "string|table", audience = "string|table", authority = "string", protocol_mode = "string",
  jwks_uri = "string", clock_skew = "number", required_scopes = "table", required_roles = "table",
  allowed_tenants = "table", algorithms = "table", transport = "table", clock = "function",
  jwks_refetch_s = "number", jwks_max_age_s = "number", max_token_bytes = "number",
}

-- read by scripts/gen-types for the LuaLS class of the options
jwt.OPTIONS = OPTIONS

local function refuse(code, message)
  return errors.TokenValidationError(code, message)
end

local function bad_option(message)
  return errors.ClientConfigurationError("invalid_jwt_options", message)
end

-- A string or a non-empty list of strings, as a list.
local function strings(v, name, required)
  if v == nil then
    if required then error(bad_option("'" .. name .. "' is required"), 0) end
    return nil
  end
  if type(v) == "string" then v = { v } end
  if #v == 0 then error(bad_option("'" .. name .. "' must not be empty"), 0) end
  local out = {}
  for i = 1, #v do
    if type(v[i]) ~= "string" or v[i] == "" then
      error(bad_option("'" .. name .. "' must be a string or a list of strings"), 0)
    end
    out[i] = v[i]
  end
  return out
end

local function set_of(list)
  if not list then return nil end
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

local function lower(list)
  if list then
    for i = 1, #list do list[i] = list[i]:lower() end
  end
  return list
end

local function number_in(v, name, lo, hi, default)
  if v == nil then return default end
  if v ~= v or v < lo or v > hi then error(bad_option(("'%s' must be between %s and %s"):format(name, lo, hi)), 0) end
  return v
end

local function endpoint(s, name)
  local ok, why = url.endpoint(s)
  if not ok then error(bad_option("'" .. name .. "' " .. why), 0) end
  return s
end

-- Entra's issuers as (cloud, tenant): v1.0 `https://sts.windows.net/{tid}/`
-- and v2.0 `https://login.microsoftonline.com/{tid}/v2.0` are one issuer.
local function entra_issuer(iss)
  local host, tenant = iss:match("^https://([^/]+)/([^/]+)/v2%.0$")
  if not host then host, tenant = iss:match("^https://([^/]+)/([^/]+)/$") end
  local cloud = host and authority.cloud(host:lower())
  if cloud then return cloud, tenant:lower() end
  return nil
end

-- Whether the token's iss is the template's, `{tenantid}` being its tid.
local function issuer_matches(template, iss, tid)
  local t = template
  if t:find("{tenantid}", 1, true) then
    if type(tid) ~= "string" or not tid:match("^[%w%-%.]+$") then return false end
    t = t:gsub("{tenantid}", (tid:gsub("%%", "%%%%")))
  end
  if iss == t then return true end
  local cloud, tenant = entra_issuer(t)
  if not cloud then return false end
  local c2, t2 = entra_issuer(iss)
  return c2 == cloud and t2 == tenant
end

local function has_any(have, want)
  for _, w in ipairs(want) do
    if have[w] then return true end
  end
  return false
end

-- The token's scopes (`scp`, or `scope`: space-separated) and roles, as sets.
local function granted(claims)
  local scopes, roles = {}, {}
  local scp = claims.scp or claims.scope
  if type(scp) == "string" then
    for s in scp:gmatch("%S+") do scopes[s] = true end
  end
  if type(claims.roles) == "table" then
    for _, r in ipairs(claims.roles) do
      if type(r) == "string" then roles[r] = true end
    end
  end
  return scopes, roles
end

local Verifier = {}
Verifier.__index = Verifier

local default_transport

--- A verifier for one API's tokens: options are checked once, and the
-- issuer's metadata and keys are fetched on first use.
-- @tparam table opts
-- @tparam[opt] string|table opts.issuer the expected `iss`, or a list; may hold `{tenantid}`
-- @tparam string|table opts.audience the accepted `aud` values (an app ID URI, the API's client id)
-- @tparam[opt] string opts.authority where to discover the issuer and `jwks_uri`
--   (its OpenID configuration, as applications do)
-- @tparam[opt="aad"] string opts.protocol_mode `"oidc"` for a non-Entra authority
-- @tparam[opt] string opts.jwks_uri the key set, instead of the authority's
-- @tparam[opt=300] number opts.clock_skew seconds of leeway on `exp` and `nbf`
-- @tparam[opt] table opts.required_scopes accept tokens with at least one of these scopes…
-- @tparam[opt] table opts.required_roles …or at least one of these roles
-- @tparam[opt] table opts.allowed_tenants tenant ids (`tid`) accepted (multi-tenant APIs)
-- @tparam[opt] table opts.algorithms a subset of `{"RS256", "PS256", "ES256"}`
-- @tparam[opt] table opts.transport for the metadata and key requests
-- @tparam[opt] function opts.clock seconds since the epoch (tests)
-- @tparam[opt=60] number opts.jwks_refetch_s least seconds between fetches for an unknown `kid`
-- @tparam[opt=43200] number opts.jwks_max_age_s seconds a key set is kept
-- @tparam[opt=65536] number opts.max_token_bytes longer tokens are refused unread
-- @tparam[opt] table defaults the host's: `{transport = function}`
-- @treturn table the verifier, with `verify(token)`
-- @raise ClientConfigurationError for bad options
function jwt.verifier(opts, defaults)
  if type(opts) ~= "table" then error(bad_option("jwt options must be a table"), 2) end
  local ok, err = config.check(opts, OPTIONS, "", { noun = "jwt option", code = "invalid_jwt_options" })
  if not ok then error(err, 2) end
  local good, v = pcall(function()
    local self = setmetatable({
      issuers = strings(opts.issuer, "issuer"),
      audiences = set_of(strings(opts.audience, "audience", true)),
      scopes = strings(opts.required_scopes, "required_scopes"),
      roles = strings(opts.required_roles, "required_roles"),
      tenants = set_of(lower(strings(opts.allowed_tenants, "allowed_tenants"))),
      skew = number_in(opts.clock_skew, "clock_skew", 0, 86400, DEFAULT_SKEW_S),
      max_bytes = number_in(opts.max_token_bytes, "max_token_bytes", 64, 1024 * 1024, DEFAULT_MAX_TOKEN_BYTES),
      policy = {
        refetch_s = number_in(opts.jwks_refetch_s, "jwks_refetch_s", 0, 86400, jwks.REFETCH_S),
        max_age_s = number_in(opts.jwks_max_age_s, "jwks_max_age_s", 1, 7 * 86400, jwks.MAX_AGE_S),
      },
      clock = opts.clock or require("msal.core").time,
      transport_opt = opts.transport,
      default_transport = defaults and defaults.transport,
    }, Verifier)
    local algs = strings(opts.algorithms, "algorithms") or { "RS256", "PS256", "ES256" }
    for _, a in ipairs(algs) do
      if not jwks.ALGS[a] then error(bad_option("'algorithms' may hold RS256, PS256 and ES256 only, not " .. a), 0) end
    end
    self.algs = set_of(algs)
    local jwks_uri = opts.jwks_uri and endpoint(opts.jwks_uri, "jwks_uri")
    if opts.authority then
      local mode = opts.protocol_mode and opts.protocol_mode:lower()
      if mode ~= nil and mode ~= "aad" and mode ~= "oidc" then
        error(bad_option("'protocol_mode' is \"aad\" or \"oidc\""), 0)
      end
      local a, aerr = authority.parse(opts.authority, mode)
      if not a then error(aerr, 0) end
      self.discovery = authority.discovery_url(a)
      self.jwks_override = jwks_uri
    elseif not jwks_uri then
      error(bad_option("one of 'authority' and 'jwks_uri' is required"), 0)
    elseif not self.issuers then
      error(bad_option("'issuer' is required without 'authority'"), 0)
    else
      self.meta = { issuers = self.issuers, jwks_uri = jwks_uri }
    end
    return self
  end)
  if not good then error(v, 2) end
  return v
end

function Verifier:transport()
  if self.transport_opt then return self.transport_opt end
  if self.default_transport then return self.default_transport() end
  default_transport = default_transport or require("msal.transport.curl").new()
  return default_transport
end

-- Discovery documents by URL, and the requests under way.
local documents, pending = {}, {}

local function discover(transport, uri)
  if documents[uri] then return Promise.fulfilled(documents[uri]) end
  if pending[uri] then return pending[uri] end
  local p = network.send(transport, { method = "GET", url = uri, headers = { accept = "application/json" } })
    :next(function(res)
      local doc = res.status == 200 and network.json(res)
      if type(doc) ~= "table" or type(doc.issuer) ~= "string" or type(doc.jwks_uri) ~= "string"
          or not url.endpoint(doc.jwks_uri) then
        return Promise.reject(refuse("jwks_unavailable",
          ("the OpenID configuration at %s (HTTP %d) names no usable issuer and jwks_uri"):format(uri, res.status)))
      end
      documents[uri] = doc
      return doc
    end, function(err)
      return Promise.reject(refuse("jwks_unavailable",
        "the OpenID configuration at " .. uri .. " cannot be fetched: " .. tostring(err.error_message or err)))
    end)
    :finally(function() pending[uri] = nil end)
  pending[uri] = p
  return p
end

-- The issuers and key set, from the options or the authority's metadata.
function Verifier:resolve()
  if self.meta then return Promise.fulfilled(self.meta) end
  return discover(self:transport(), self.discovery):next(function(doc)
    self.meta = { issuers = self.issuers or { doc.issuer }, jwks_uri = self.jwks_override or doc.jwks_uri }
    return self.meta
  end)
end

-- Header, claims, signature and signing input, or nil and the refusal.
function Verifier:parse(token)
  if type(token) ~= "string" or token == "" then return nil, refuse("malformed_token", "the token is not a string") end
  if #token > self.max_bytes then return nil, refuse("malformed_token", "the token is too large") end
  local header, payload, sig, input_len = crypto.jwt_decode(token, nil, true)
  if not header then return nil, refuse("malformed_token", "the token is not a compact JWS: " .. tostring(payload)) end
  local h, claims = cjson.decode(header), cjson.decode(payload)
  if type(h) ~= "table" or type(claims) ~= "table" then
    return nil, refuse("malformed_token", "the token's header or claims are not JSON objects")
  end
  if not self.algs[h.alg] then
    return nil, refuse("unsupported_alg", "the token's alg is refused: " .. tostring(h.alg))
  end
  if h.kid ~= nil and type(h.kid) ~= "string" then return nil, refuse("malformed_token", "the token's kid is not a string") end
  -- RFC 7515 4.1.11: extensions the recipient does not understand must fail
  if h.crit ~= nil then return nil, refuse("malformed_token", "the token names critical header extensions") end
  if type(claims.exp) ~= "number" then return nil, refuse("malformed_token", "the token has no numeric exp") end
  if claims.nbf ~= nil and type(claims.nbf) ~= "number" then
    return nil, refuse("malformed_token", "the token's nbf is not a number")
  end
  return { h = h, claims = claims, sig = sig, token = token, input_len = input_len }
end

-- Every check after the signature's: time, audience, tenant, permissions.
function Verifier:check_claims(claims)
  local now = self.clock()
  if now > claims.exp + self.skew then return refuse("token_expired", "the token expired at " .. claims.exp) end
  if claims.nbf and now + self.skew < claims.nbf then
    return refuse("token_not_yet_valid", "the token is not valid before " .. claims.nbf)
  end
  local aud, hit = claims.aud, false
  if type(aud) == "string" then
    hit = self.audiences[aud] == true
  elseif type(aud) == "table" then
    for _, a in ipairs(aud) do
      if type(a) == "string" and self.audiences[a] then hit = true break end
    end
  end
  if not hit then return refuse("invalid_audience", "the token is not for this audience") end
  if self.tenants and not (type(claims.tid) == "string" and self.tenants[claims.tid:lower()]) then
    return refuse("invalid_tenant", "the token's tenant is not allowed: " .. tostring(claims.tid))
  end
  if self.scopes or self.roles then
    local scopes, roles = granted(claims)
    if not (self.scopes and has_any(scopes, self.scopes) or self.roles and has_any(roles, self.roles)) then
      return refuse("insufficient_scope", "the token carries none of the required scopes or roles")
    end
  end
  return nil
end

function Verifier:settle(p, key)
  local ok, err = key:verify(p.h.alg, p.token, p.sig, p.input_len)
  if ok ~= true then
    return Promise.reject(refuse("invalid_signature",
      "the token's signature does not verify" .. (err and (": " .. err) or "")))
  end
  local refusal = self:check_claims(p.claims)
  if refusal then return Promise.reject(refusal) end
  return Promise.fulfilled(p.claims)
end

function Verifier:finish(p, meta)
  local iss, tid, hit = p.claims.iss, p.claims.tid, false
  if type(iss) == "string" then
    for _, t in ipairs(meta.issuers) do
      if issuer_matches(t, iss, tid) then hit = true break end
    end
  end
  if not hit then return Promise.reject(refuse("invalid_issuer", "the token's issuer is not accepted: " .. tostring(iss))) end
  local key = jwks.cached_key(meta.jwks_uri, p.h.kid, p.h.alg, self.policy.max_age_s)
  if key then return self:settle(p, key) end
  return jwks.key(self:transport(), meta.jwks_uri, p.h.kid, p.h.alg, self.policy):next(function(k)
    if type(k) == "table" then return Promise.reject(refuse(k.code, k.message)) end
    return self:settle(p, k)
  end)
end

--- Verifies a bearer token.
-- @tparam string token the compact JWT, without `Bearer `
-- @treturn promise of the token's claims, rejected with a
--   `TokenValidationError` naming the failed check
function Verifier:verify(token)
  local p, err = self:parse(token)
  if not p then return Promise.reject(err) end
  if self.meta then return self:finish(p, self.meta) end
  return self:resolve():next(function(meta) return self:finish(p, meta) end)
end

--- `verify` and `verifier` for a host: its defaults (the transport) apply
-- when the options name none.
-- @tparam table defaults `{transport = function}`
-- @treturn table `{verify = function, verifier = function}`
function jwt.for_host(defaults)
  -- verifiers by options table: a handler passes the same table each time
  local memo = setmetatable({}, { __mode = "k" })
  local host = {}
  function host.verifier(opts) return jwt.verifier(opts, defaults) end
  function host.verify(token, opts)
    local v = type(opts) == "table" and memo[opts]
    if not v then
      local ok, made = pcall(jwt.verifier, opts, defaults)
      if not ok then return Promise.reject(made) end
      v = made
      memo[opts] = v
    end
    return v:verify(token)
  end
  return host
end

local plain = jwt.for_host(nil)

--- Verifies a bearer token: `jwt.verifier(opts):verify(token)`, with the
-- verifier kept per options table (options are read once per table).
-- @tparam string token
-- @tparam table opts as `jwt.verifier`'s
-- @treturn promise of the claims, rejected with a `TokenValidationError`
--   (or a `ClientConfigurationError` for bad options)
function jwt.verify(token, opts)
  return plain.verify(token, opts)
end

--- Forgets discovered metadata and key sets (tests).
function jwt.clear()
  documents, pending = {}, {}
  jwks.clear()
end

return jwt

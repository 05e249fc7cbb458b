--- The credential a confidential client proves itself with on every token
-- request: a secret, a certificate (a client assertion JWT signed in the C
-- core) or a client assertion from elsewhere (federated credentials,
-- workload identity). The secret, the key and its passphrase live in
-- closures, not in fields: `tostring`, a logger or an inspector dumping the
-- application finds nothing to print.
-- @module msal.client_credential
local cjson = require("cjson.safe")
local Promise = require("msal.promise")
local config = require("msal.config")
local crypto = require("msal.core").crypto
local errors = require("msal.errors")

local client_credential = {}

--- RFC 7523's client assertion type, as MSAL sends it.
client_credential.ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

-- MSAL's lifetime for the assertions it makes (10 minutes).
local ASSERTION_LIFETIME = 600

local CERTIFICATE_KEYS = { private_key = "string", certificate = "string", thumbprint_sha256 = "string",
  x5c = "boolean", passphrase = "string", algorithm = "string" }
local KINDS = { "client_secret", "client_certificate", "client_assertion" }

local function bad(code, msg)
  return nil, errors.ClientConfigurationError(code, msg)
end

local Credential = {}
Credential.__index = Credential
Credential.__tostring = function(c) return "msal.client_credential(" .. c.kind .. ", redacted)" end

local function hex_to_bytes(h)
  return (h:gsub("%x%x", function(b) return string.char(tonumber(b, 16)) end))
end

-- The JOSE header's certificate members: `x5t#S256` (base64url SHA-256 of
-- the leaf's DER) and, when asked, `x5c` (the chain, standard base64 DER).
local function certificate_header(cc)
  if cc.certificate == nil then
    local t = cc.thumbprint_sha256
    if t == nil then
      return bad("invalid_client_certificate",
        "auth.client_certificate needs certificate (PEM) or thumbprint_sha256 (hex)")
    end
    if not (#t == 64 and t:match("^%x+$")) then
      return bad("invalid_client_certificate", "auth.client_certificate.thumbprint_sha256 must be 64 hex digits")
    end
    if cc.x5c then
      return bad("invalid_client_certificate", "auth.client_certificate.x5c needs the certificate (PEM), not a thumbprint")
    end
    return { thumbprint = crypto.b64url_encode(hex_to_bytes(t)) }
  end
  if cc.thumbprint_sha256 ~= nil then
    return bad("invalid_client_certificate",
      "auth.client_certificate takes certificate or thumbprint_sha256, not both")
  end
  local ders, why = crypto.x509_der(cc.certificate)
  if not ders or #ders == 0 then
    return bad("invalid_client_certificate", "auth.client_certificate.certificate is not a PEM certificate" ..
      (why and (" (" .. why .. ")") or ""))
  end
  local h = { thumbprint = crypto.b64url_encode(crypto.sha256(ders[1])) }
  if cc.x5c then
    h.x5c = {}
    for i, der in ipairs(ders) do h.x5c[i] = crypto.b64_encode(der) end
  end
  return h
end

-- A certificate credential: the key is read (and decrypted) once here, so
-- a bad PEM or a wrong passphrase is a configuration error, not the first
-- request's.
local function certificate(cc, client_id, clock)
  local ok, err = config.check(cc, CERTIFICATE_KEYS, "auth.client_certificate.")
  if not ok then return nil, err end
  local alg = cc.algorithm or "PS256"
  if alg ~= "PS256" and alg ~= "RS256" then
    return bad("invalid_client_certificate", "auth.client_certificate.algorithm must be \"PS256\" or \"RS256\"")
  end
  if type(cc.private_key) ~= "string" then
    return bad("invalid_client_certificate", "auth.client_certificate.private_key (PEM) is required")
  end
  local header
  header, err = certificate_header(cc)
  if not header then return nil, err end
  local key, pass = cc.private_key, cc.passphrase
  local sig, why = crypto.jws_sign(alg, key, "probe", pass)
  if not sig then
    -- OpenSSL's reason ("bad decrypt", "unsupported") names no key material
    return bad("invalid_client_certificate", "auth.client_certificate.private_key cannot be used: " .. tostring(why))
  end
  if cc.certificate and not crypto.x509_matches_key(cc.certificate, key, pass) then
    -- else every token request fails (Entra's AADSTS700027)
    return bad("invalid_client_certificate",
      "auth.client_certificate.certificate is not the certificate of private_key")
  end
  local head = { alg = alg, typ = "JWT", ["x5t#S256"] = header.thumbprint, x5c = header.x5c }
  local head_b64 = crypto.b64url_encode(cjson.encode(head))
  local c = setmetatable({ kind = "client_certificate" }, Credential)
  --- A fresh assertion for one token request: `aud` the token endpoint,
  -- `iss` = `sub` = the client id, a new `jti`, 10 minutes of life.
  function c.assertion(_, endpoint)
    local now = math.floor(clock())
    local claims = { aud = endpoint, iss = client_id, sub = client_id, jti = crypto.uuid4(),
      nbf = now, iat = now, exp = now + ASSERTION_LIFETIME }
    local input = head_b64 .. "." .. crypto.b64url_encode(cjson.encode(claims))
    local s, e = crypto.jws_sign(alg, key, input, pass)
    if not s then return nil, errors.ClientAuthError("client_assertion_failed", "signing the client assertion failed: " .. tostring(e)) end
    return input .. "." .. crypto.b64url_encode(s)
  end
  return c
end

-- A caller's assertion, or the function that makes one per request
-- (`fn({client_id, token_endpoint})` -> string, or a promise of one).
local function assertion(a, client_id)
  if type(a) == "string" and a == "" then
    return bad("invalid_client_assertion", "auth.client_assertion must not be empty")
  end
  local c = setmetatable({ kind = "client_assertion" }, Credential)
  if type(a) == "string" then
    function c.assertion() return a end
    return c
  end
  function c.assertion(_, endpoint)
    local ok, v = pcall(a, { client_id = client_id, token_endpoint = endpoint })
    if not ok then
      return nil, errors.ClientAuthError("client_assertion_failed",
        "auth.client_assertion raised: " .. tostring(errors.is_error(v) and v.error_message or v))
    end
    return v
  end
  return c
end

--- The credential an `auth` configuration names: exactly one of
-- `client_secret`, `client_certificate`, `client_assertion`.
-- @tparam table auth the `auth` configuration (already type-checked)
-- @tparam function clock Unix time in seconds
-- @treturn[1] table the credential
-- @treturn[2] nil
-- @treturn[2] table ClientConfigurationError
function client_credential.new(auth, clock)
  local given = {}
  for _, k in ipairs(KINDS) do
    if auth[k] ~= nil then given[#given + 1] = k end
  end
  if #given == 0 then
    return bad("missing_client_credential",
      "a confidential client needs auth.client_secret, auth.client_certificate or auth.client_assertion")
  end
  if #given > 1 then
    return bad("invalid_client_credential", "a confidential client takes one credential, not " ..
      table.concat(given, " and "))
  end
  local kind = given[1]
  if kind == "client_certificate" then return certificate(auth.client_certificate, auth.client_id, clock) end
  if kind == "client_assertion" then return assertion(auth.client_assertion, auth.client_id) end
  local secret = auth.client_secret
  if secret == "" then return bad("invalid_client_credential", "auth.client_secret must not be empty") end
  local c = setmetatable({ kind = "client_secret" }, Credential)
  function c.secret() return secret end
  return c
end

--- The body parameters that authenticate one token request to endpoint.
-- @tparam string endpoint the token endpoint (its query is not the audience)
-- @treturn promise of a list of `{name, value}`; rejects with a
--   ClientAuthError when an assertion cannot be made
function Credential:params(endpoint)
  if self.secret then return Promise.resolve({ { "client_secret", self.secret() } }) end
  local aud = endpoint:match("^[^?#]*")
  local v, err = self:assertion(aud)
  if v == nil and err then return Promise.reject(err) end
  return Promise.resolve(v):next(nil, function(e)
    -- a promise the callback returned was rejected
    return Promise.reject(errors.is_error(e) and e or errors.ClientAuthError("client_assertion_failed",
      "auth.client_assertion failed: " .. tostring(e)))
  end):next(function(s)
    if type(s) ~= "string" or s == "" then
      return Promise.reject(errors.ClientConfigurationError("invalid_client_assertion",
        "auth.client_assertion must give a non-empty string, not a " .. type(s)))
    end
    return { { "client_assertion", s }, { "client_assertion_type", client_credential.ASSERTION_TYPE } }
  end)
end

return client_credential

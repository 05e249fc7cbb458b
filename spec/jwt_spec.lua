-- msal.jwt.verify: bearer tokens a resource server receives. Real access
-- tokens from oidc-provider (the shared MSAL_TEST_OIDC server, and a private
-- one restarted to rotate its keys, signing ES256), the attacks a verifier
-- must refuse, Entra's issuer forms through a scripted transport (nothing
-- leaves loopback), and what bad options and inputs give.
local msal = require("msal")
local cjson = require("cjson")
local crypto = require("msal.core").crypto
local jwt = require("msal.jwt")
local oidc_instance = require("oidc_instance")

local API = "https://api.example.test"

local oidc = require("oidc").base

-- The curl transport, counting requests by URL.
local function counting()
  local t = require("msal.transport.curl").new()
  local w = { n = 0, urls = {} }
  function w.request(_, req, cb)
    w.n = w.n + 1
    w.urls[#w.urls + 1] = req.url
    return t:request(req, cb)
  end
  return w
end

-- An app token for the API from an oidc-provider (client credentials).
local function api_token(base) return require("oidc").app_token("api.read", base) end

local function verify(token, opts)
  return jwt.verifier(opts):verify(token):await()
end

local function refused(code, token, opts)
  local claims, err = verify(token, opts)
  assert.is_nil(claims)
  assert.equal("TokenValidationError", err.name, tostring(err))
  assert.equal(code, err.error_code, tostring(err))
  return err
end

local function b64json(t) return crypto.b64url_encode(cjson.encode(t)) end

local function parts(token)
  local h, p, s = token:match("^([^.]*)%.([^.]*)%.([^.]*)$")
  return cjson.decode(crypto.b64url_decode(h)), cjson.decode(crypto.b64url_decode(p)), s
end

describe("msal.jwt.verify against oidc-provider's access tokens", function()
  local token, opts

  before_each(function()
    jwt.clear()
    token = token or api_token(oidc())
    opts = { authority = oidc(), protocol_mode = "OIDC", audience = API, transport = counting() }
  end)

  it("accepts a valid RS256 token, then verifies from the cached keys with no request", function()
    local claims = assert(verify(token, opts))
    assert.equal(oidc(), claims.iss)
    assert.equal(API, claims.aud)
    assert.equal("lua-msal-confidential", claims.client_id)
    assert.same({ oidc() .. "/.well-known/openid-configuration", oidc() .. "/jwks" }, opts.transport.urls)
    for _ = 1, 3 do assert(msal.jwt.verify(token, opts):await()) end
    assert.equal(2, opts.transport.n)
  end)

  it("shares one discovery and one key-set request among verifications started together", function()
    local v = jwt.verifier(opts)
    local all = assert(msal.all({ v:verify(token), v:verify(token), v:verify(token), v:verify(token) }):await())
    assert.equal(4, #all)
    assert.equal(2, opts.transport.n)
  end)

  it("refuses an expired token, within the clock skew only", function()
    local _, claims = parts(token)
    opts.clock = function() return claims.exp + 299 end
    assert(verify(token, opts))
    opts.clock = function() return claims.exp + 301 end
    refused("token_expired", token, opts)
    opts.clock, opts.clock_skew = function() return claims.exp + 1 end, 0
    refused("token_expired", token, opts)
  end)

  it("refuses a token for another audience or from another issuer", function()
    opts.audience = { "api://other", "https://api.example.test/" }
    refused("invalid_audience", token, opts)
    opts.audience, opts.issuer = API, "http://127.0.0.1:1"
    refused("invalid_issuer", token, opts)
  end)

  it("checks scopes and roles: at least one of either", function()
    opts.required_scopes = { "api.write", "api.read" }
    assert(verify(token, opts))
    opts.required_scopes = { "api.write" }
    local err = refused("insufficient_scope", token, opts)
    assert.not_matches("eyJ", err.error_message)
    opts.required_roles = { "Data.Read.All" }
    refused("insufficient_scope", token, opts)
  end)

  it("refuses alg=none, HS256 keyed with the public key, a tampered payload and a swapped signature", function()
    local h, p, sig = parts(token)
    local body = b64json(p)
    refused("unsupported_alg", b64json({ alg = "none", kid = h.kid }) .. "." .. body .. ".", opts)
    refused("unsupported_alg", b64json({ alg = "none" }) .. "." .. body .. "." .. sig, opts)
    -- the classic confusion: an HMAC whose secret is the published RSA key
    local set = cjson.decode(assert(require("msal.transport.curl").new():send({ method = "GET",
      url = oidc() .. "/jwks" }):await()).body)
    for _, secret in ipairs({ set.keys[1].n, cjson.encode(set.keys[1]) }) do
      local input = b64json({ alg = "HS256", kid = h.kid }) .. "." .. body
      refused("unsupported_alg", input .. "." .. crypto.b64url_encode(crypto.hmac_sha256(secret, input)), opts)
    end
    local raised = cjson.decode(cjson.encode(p))
    raised.scope = "api.read api.write"
    refused("invalid_signature", token:match("^[^.]*") .. "." .. b64json(raised) .. "." .. sig, opts)
    local other = api_token(oidc())
    refused("invalid_signature", token:match("^[^.]*%.[^.]*") .. "." .. other:match("[^.]*$"), opts)
  end)

  it("says jwks_unavailable when the metadata or the key set cannot be had", function()
    opts.authority = "http://127.0.0.1:1"
    refused("jwks_unavailable", token, opts)
    opts.authority, opts.jwks_uri, opts.issuer = nil, "http://127.0.0.1:1/jwks", oidc()
    refused("jwks_unavailable", token, opts)
  end)
end)

describe("msal.jwt.verify across a key rotation (private oidc-provider, ES256 access tokens)", function()
  local idp
  setup(function() idp = oidc_instance.start({ OIDC_AT_ALG = "ES256" }) end)
  teardown(function() if idp then idp:stop() end end)
  before_each(function() jwt.clear() end)

  it("refetches for an unknown kid at most once per interval, and drops a retired key", function()
    local t = counting()
    local base = { authority = idp.url, protocol_mode = "oidc", audience = API, transport = t }
    local old = api_token(idp.url)
    assert.equal("ES256", (parts(old)).alg)
    assert(verify(old, base))
    assert.equal(2, t.n)

    idp:restart() -- same issuer, new keys
    local new = api_token(idp.url)
    assert.are_not.equal((parts(old)).kid, (parts(new)).kid)
    -- the set was fetched moments ago: an unknown kid is refused unfetched
    refused("unknown_key", new, base)
    assert.equal(2, t.n)
    -- forged kids do not turn into requests either
    for i = 1, 20 do
      local h, p, sig = parts(new)
      h.kid = "forged-" .. i
      refused("unknown_key", b64json(h) .. "." .. b64json(p) .. "." .. sig, base)
    end
    assert.equal(2, t.n)

    local eager = { authority = idp.url, protocol_mode = "oidc", audience = API, transport = t, jwks_refetch_s = 0 }
    local claims = assert(verify(new, eager))
    assert.equal(idp.url, claims.iss)
    assert.equal(3, t.n)
    assert.equal(idp.url .. "/jwks", t.urls[3])
    -- the old key is no longer published, so its tokens no longer verify
    refused("unknown_key", old, base)
    assert.equal(3, t.n)
  end)
end)

-- A scripted transport: the discovery document and key set of a fake Entra
-- tenant, and tokens signed here.
local function fake_issuer(doc)
  local pem, jwk = crypto.generate_key("RSA")
  local ec_pem, ec_jwk = crypto.generate_key("EC")
  jwk.kid, ec_jwk.kid = "rsa1", "ec1"
  local t = { n = 0, keys = { jwk, ec_jwk } }
  function t.request(_, req, cb)
    t.n = t.n + 1
    local body = req.url:find("openid-configuration", 1, true) and doc or { keys = t.keys }
    cb(nil, { status = 200, headers = {}, body = cjson.encode(body) })
  end
  function t.sign(claims, header)
    header = header or { alg = "RS256", kid = "rsa1" }
    local input = b64json(header) .. "." .. b64json(claims)
    local key = header.alg == "ES256" and ec_pem or pem
    return input .. "." .. crypto.b64url_encode(assert(crypto.jws_sign(header.alg, key, input)))
  end
  return t
end

describe("msal.jwt.verify with Entra's issuers", function()
  local TID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
  local CLIENT = "11111111-2222-3333-4444-555555555555"
  local t, opts
  local now = os.time()

  local function claims(over)
    local c = { iss = "https://login.microsoftonline.com/" .. TID .. "/v2.0", aud = CLIENT, tid = TID,
      exp = now + 3600, nbf = now - 10, iat = now - 10, scp = "Data.Read", ver = "2.0" }
    for k, v in pairs(over or {}) do c[k] = v end
    return c
  end

  before_each(function()
    jwt.clear()
    t = fake_issuer({ issuer = "https://login.microsoftonline.com/{tenantid}/v2.0",
      jwks_uri = "https://login.microsoftonline.com/common/discovery/v2.0/keys" })
    opts = { authority = "https://login.microsoftonline.com/organizations", audience = { CLIENT, "api://my-api" },
      transport = t }
  end)

  it("accepts v2.0 and v1.0 issuers of the token's own tenant through the {tenantid} template", function()
    assert(verify(t.sign(claims()), opts))
    assert(verify(t.sign(claims({ iss = "https://sts.windows.net/" .. TID .. "/", ver = "1.0",
      aud = "api://my-api" })), opts))
    assert.equal(2, t.n)
  end)

  it("refuses another tenant's issuer, a missing tid and another cloud", function()
    refused("invalid_issuer", t.sign(claims({ iss = "https://sts.windows.net/00000000-0000-0000-0000-000000000001/" })), opts)
    refused("invalid_issuer", t.sign(claims({ tid = cjson.null })), opts)
    refused("invalid_issuer", t.sign(claims({ iss = "https://login.chinacloudapi.cn/" .. TID .. "/v2.0" })), opts)
    refused("invalid_issuer", t.sign(claims({ iss = "https://evil.example/" .. TID .. "/v2.0" })), opts)
  end)

  it("limits tenants with allowed_tenants", function()
    opts.allowed_tenants = { TID:upper() }
    assert(verify(t.sign(claims()), opts))
    opts.allowed_tenants = { "00000000-0000-0000-0000-000000000001" }
    refused("invalid_tenant", t.sign(claims()), opts)
  end)

  it("accepts an app token by its roles, and ES256 and PS256 signatures", function()
    opts.required_scopes, opts.required_roles = { "Data.Write" }, { "Data.Read.All" }
    assert(verify(t.sign(claims({ scp = cjson.null, roles = { "Data.Read.All" } })), opts))
    refused("insufficient_scope", t.sign(claims({ roles = { "Other" } })), opts)
    opts.required_scopes, opts.required_roles = nil, nil
    assert(verify(t.sign(claims(), { alg = "ES256", kid = "ec1" }), opts))
    assert(verify(t.sign(claims(), { alg = "PS256", kid = "rsa1" }), opts))
    -- a key of one type never verifies the other's alg
    refused("invalid_signature", t.sign(claims(), { alg = "RS256", kid = "rsa1" }):gsub("^[^.]*",
      b64json({ alg = "ES256", kid = "rsa1" })), opts)
    opts.algorithms = { "ES256" }
    refused("unsupported_alg", t.sign(claims()), opts)
  end)

  it("refuses a token not valid yet, and a kid-less token picks a key of its alg's type", function()
    refused("token_not_yet_valid", t.sign(claims({ nbf = now + 3600 })), opts)
    assert(verify(t.sign(claims(), { alg = "RS256" }), opts))
    assert(verify(t.sign(claims(), { alg = "ES256" }), opts))
  end)

  it("refuses malformed tokens before any request", function()
    local good = t.sign(claims())
    local h, p, sig = parts(good)
    local bad = {
      "", "abc", "a.b", good .. ".x", ("a"):rep(70000),
      crypto.b64url_encode("not json") .. "." .. b64json(p) .. "." .. sig,
      b64json(h) .. "." .. crypto.b64url_encode("[1,2]") .. "." .. sig,
      b64json(h) .. "." .. b64json(claims({ exp = "tomorrow" })) .. "." .. sig,
      b64json(h) .. "." .. b64json(claims({ exp = cjson.null })) .. "." .. sig,
      b64json(h) .. "." .. b64json(claims({ nbf = "now" })) .. "." .. sig,
      b64json({ alg = "RS256", kid = 7 }) .. "." .. b64json(p) .. "." .. sig,
      b64json({ alg = "RS256", kid = "rsa1", crit = { "exp" } }) .. "." .. b64json(p) .. "." .. sig,
    }
    for _, tok in ipairs(bad) do refused("malformed_token", tok, opts) end
    refused("malformed_token", nil, opts)
    refused("malformed_token", 42, opts)
    assert.equal(0, t.n)
  end)

  it("refuses bad options with a ClientConfigurationError, thrown by verifier and rejected by verify", function()
    for _, o in ipairs({
      { authority = opts.authority },
      { authority = opts.authority, audience = {} },
      { authority = opts.authority, audience = "x", algorithms = { "HS256" } },
      { authority = opts.authority, audience = "x", clock_skew = -1 },
      { authority = opts.authority, audience = "x", unknown = true },
      { audience = "x" },
      { audience = "x", jwks_uri = "https://k.example/keys" },
      { audience = "x", jwks_uri = "http://keys.example/keys", issuer = "i" },
      { authority = "not a url", audience = "x" },
      { authority = opts.authority, audience = "x", protocol_mode = "saml" },
    }) do
      local ok, err = pcall(jwt.verifier, o)
      assert.is_false(ok)
      assert.equal("ClientConfigurationError", err.name, tostring(err))
      local _, rejected = msal.jwt.verify("a.b.c", o):await()
      assert.equal("ClientConfigurationError", rejected.name)
    end
    local _, err = msal.jwt.verify("a.b.c", "opts"):await()
    assert.equal("ClientConfigurationError", err.name)
  end)
end)

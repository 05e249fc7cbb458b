-- ConfidentialClientApplication: its credentials (secret, certificate
-- assertion, caller's assertion) against the real oidc-provider
-- (MSAL_TEST_OIDC: client_secret_post and private_key_jwt clients) and the
-- Entra-like server (MSAL_TEST_ENTRA: on-behalf-of, code redemption, the
-- silent flow), the app-token cache, regional endpoints, and what bad
-- configurations and callbacks give.
local msal = require("msal")
local cjson = require("cjson")
local core = require("msal.core")
local entra = require("entra")
local files = require("files")
local network = require("msal.network")
local fake = require("fake_transport")

local ROOT = os.getenv("MSAL_TEST_ROOT") or "."
local CERTS = ROOT .. "/spec/support/certs/"
local KEY = assert(files.read(CERTS .. "client.key"))
local ENC_KEY = assert(files.read(CERTS .. "client_encrypted.key"))
local CERT = assert(files.read(CERTS .. "client.crt"))
local PASS = "test-passphrase"
local GRAPH = "https://graph.microsoft.com/.default"

local oidc = require("oidc").base

-- The curl transport, recording every POST's URL and form.
local function recording()
  local inner = require("msal.transport.curl").new()
  local t = { posts = {} }
  function t.request(_, req, done)
    if req.method == "POST" then t.posts[#t.posts + 1] = { url = req.url, form = network.form_decode(req.body) } end
    return inner:request(req, done)
  end
  return t
end

-- An app against oidc-provider (protocol_mode oidc).
local function oidc_app(client_id, auth, o)
  o = o or {}
  auth.client_id, auth.authority, auth.protocol_mode = client_id, oidc(), "oidc"
  local t = recording()
  local skew = { 0 }
  local app = msal.ConfidentialClientApplication.new({ auth = auth, cache = o.cache,
    -- oidc-provider's access tokens live 5 minutes: MSAL's renewal offset
    -- would make each one due at once
    system = { transport = t, clock = function() return os.time() + skew[1] end, logger = o.logger,
      token_renewal_offset = 60 } })
  return app, t, skew
end

local function decode_jwt(jwt)
  local h, p = jwt:match("^([^.]+)%.([^.]+)%.")
  return cjson.decode(core.crypto.b64url_decode(h)), cjson.decode(core.crypto.b64url_decode(p))
end

local function rejects(p)
  local r, err = p:await()
  assert.is_nil(r)
  return err
end

describe("ConfidentialClientApplication against oidc-provider", function()
  before_each(function() require("msal.authority").clear_cache() end)

  it("client credentials with a secret (client_secret_post), then the cache with no second request", function()
    local app, t = oidc_app("lua-msal-confidential", { client_secret = "s3cret" })
    local r = assert(app:acquire_token_by_client_credential({ scopes = { "api.read" } }):await())
    assert.is_false(r.from_cache)
    assert.is_nil(r.account)
    assert.same({ "api.read" }, r.scopes)
    assert.equal(1, #t.posts)
    local f = t.posts[1].form
    assert.equal("client_credentials", f.grant_type)
    assert.equal("s3cret", f.client_secret)
    assert.equal("lua-msal-confidential", f.client_id)
    assert.is_nil(f.client_assertion)
    local again = assert(app:acquire_token_by_client_credential({ scopes = { "api.read" } }):await())
    assert.is_true(again.from_cache)
    assert.equal(r.access_token, again.access_token)
    assert.equal(1, #t.posts)
    -- MSAL's app-token entry: no account, the tenant as realm ("" here)
    local doc = cjson.decode(app:get_token_cache():serialize())
    local key, at = next(doc.AccessToken)
    assert.equal("", at.home_account_id)
    assert.equal("", at.realm)
    assert.equal("-" .. at.environment .. "-accesstoken-lua-msal-confidential--api.read-", key)
    assert.same({}, doc.Account)
    -- force_refresh skips the cache
    local forced = assert(app:acquire_token_by_client_credential({ scopes = { "api.read" }, force_refresh = true }):await())
    assert.is_false(forced.from_cache)
    assert.equal(2, #t.posts)
  end)

  for _, case in ipairs({
    { name = "an encrypted key (PS256) with its certificate and x5c", alg = "PS256",
      cert = { private_key = ENC_KEY, passphrase = PASS, certificate = CERT, x5c = true } },
    { name = "a plain key (RS256) and a SHA-256 thumbprint", alg = "RS256",
      cert = { private_key = KEY, algorithm = "RS256",
        thumbprint_sha256 = core.crypto.sha256_hex(assert(core.crypto.x509_der(CERT))[1]) } },
  }) do
    it("client credentials with a certificate: " .. case.name .. " (private_key_jwt)", function()
      local app, t = oidc_app("lua-msal-certificate", { client_certificate = case.cert })
      local r = assert(app:acquire_token_by_client_credential({ scopes = { "api.read" } }):await())
      assert.is_false(r.from_cache)
      local f = t.posts[1].form
      assert.is_nil(f.client_secret)
      assert.equal("urn:ietf:params:oauth:client-assertion-type:jwt-bearer", f.client_assertion_type)
      local h, c = decode_jwt(f.client_assertion)
      assert.equal(case.alg, h.alg)
      assert.equal("JWT", h.typ)
      local der = core.crypto.x509_der(CERT)[1]
      assert.equal(core.crypto.b64url_encode(core.crypto.sha256(der)), h["x5t#S256"])
      if case.cert.x5c then assert.same({ core.crypto.b64_encode(der) }, h.x5c) else assert.is_nil(h.x5c) end
      assert.equal(t.posts[1].url, c.aud)
      assert.equal("lua-msal-certificate", c.iss)
      assert.equal("lua-msal-certificate", c.sub)
      assert.equal(600, c.exp - c.iat)
      assert.equal(c.iat, c.nbf)
      assert.truthy(c.jti)
      assert.is_true(assert(app:acquire_token_by_client_credential({ scopes = { "api.read" } }):await()).from_cache)
      assert.equal(1, #t.posts)
      -- a fresh assertion (new jti) for every request
      assert(app:acquire_token_by_client_credential({ scopes = { "api.read" }, force_refresh = true }):await())
      local _, c2 = decode_jwt(t.posts[2].form.client_assertion)
      assert.are_not.equal(c.jti, c2.jti)
    end)
  end

  it("client credentials with the caller's assertion callback", function()
    local seen = {}
    local app, t = oidc_app("lua-msal-certificate", { client_assertion = function(ctx)
      seen[#seen + 1] = ctx
      local now = os.time()
      local head = core.crypto.b64url_encode(cjson.encode({ alg = "PS256", typ = "JWT" }))
      local body = core.crypto.b64url_encode(cjson.encode({ iss = ctx.client_id, sub = ctx.client_id,
        aud = ctx.token_endpoint, jti = core.crypto.uuid4(), iat = now, exp = now + 300 }))
      return head .. "." .. body .. "." .. core.crypto.b64url_encode(assert(core.crypto.jws_sign("PS256", KEY,
        head .. "." .. body)))
    end })
    assert(app:acquire_token_by_client_credential({ scopes = { "api.read" } }):await())
    assert.equal(1, #seen)
    -- a promise of the assertion does too
    local promised, pt = oidc_app("lua-msal-certificate", { client_assertion = function(ctx)
      return msal.Promise.resolve(nil):next(function()
        local now = os.time()
        local head = core.crypto.b64url_encode(cjson.encode({ alg = "RS256", typ = "JWT" }))
        local body = core.crypto.b64url_encode(cjson.encode({ iss = ctx.client_id, sub = ctx.client_id,
          aud = ctx.token_endpoint, jti = core.crypto.uuid4(), iat = now, exp = now + 300 }))
        return head .. "." .. body .. "." .. core.crypto.b64url_encode(assert(core.crypto.jws_sign("RS256", KEY,
          head .. "." .. body)))
      end)
    end })
    assert(promised:acquire_token_by_client_credential({ scopes = { "api.read" } }):await())
    assert.equal(1, #pt.posts)
    assert.equal("lua-msal-certificate", seen[1].client_id)
    assert.equal(t.posts[1].url, seen[1].token_endpoint)
    assert.is_true(assert(app:acquire_token_by_client_credential({ scopes = { "api.read" } }):await()).from_cache)
    assert.equal(1, #seen)
  end)

  it("a wrong secret is ServerError invalid_client and leaves the cache as it was", function()
    local good = oidc_app("lua-msal-confidential", { client_secret = "s3cret" })
    assert(good:acquire_token_by_client_credential({ scopes = { "api.read" } }):await())
    local before = good:get_token_cache():serialize()
    local app, t = oidc_app("lua-msal-confidential", { client_secret = "wrong" })
    app:get_token_cache():deserialize(before)
    local err = rejects(app:acquire_token_by_client_credential({ scopes = { "api.write" } }))
    assert.equal("ServerError", err.name)
    assert.equal("invalid_client", err.error_code)
    assert.equal(1, #t.posts)
    assert.equal(before, app:get_token_cache():serialize())
    assert.falsy(tostring(err):find("wrong", 1, true))
  end)

  it("redeems a web app's code with its secret, signed in by headless Chromium", function()
    local proc = require("proc")
    local loopback = require("msal.loopback")
    local script = ROOT .. "/spec/support/node/browser_login.js"
    assert(files.exists("/usr/bin/chromium"), "/usr/bin/chromium is missing: scripts/setup installs it")
    local app, t = oidc_app("lua-msal-confidential", { client_secret = "s3cret" })
    local pkce = msal.pkce()
    local state = core.crypto.random_string(16)
    local waiting, handle = loopback.wait_for_redirect({ expected_state = state, host = "127.0.0.1",
      path = "/", timeout_ms = 40000 })
    local redirect_uri = handle.redirect_uri
    local url = assert(app:get_auth_code_url({ scopes = { "api.read" }, redirect_uri = redirect_uri,
      code_challenge = pkce.challenge, code_challenge_method = "S256", state = state }):await())
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. proc.quote(dir)))
    local browser = proc.background("node " .. proc.quote(script) .. " " .. proc.quote(url), dir .. "/browser",
      { plain = true })
    local got, err = waiting:await()
    local rc = browser:wait(35000)
    assert(got, "no redirect: " .. tostring(err) .. "\n" .. browser:output())
    assert.equal(0, rc, browser:output())
    local r = assert(app:acquire_token_by_code({ code = got.params.code, code_verifier = pkce.verifier,
      redirect_uri = redirect_uri, scopes = { "api.read" } }):await())
    os.execute("rm -rf " .. proc.quote(dir))
    local f = t.posts[#t.posts].form
    assert.equal("authorization_code", f.grant_type)
    assert.equal("s3cret", f.client_secret)
    assert.equal(pkce.verifier, f.code_verifier)
    assert.equal("alice", r.account.username)
    -- the signed-in user's token is served silently
    local s = assert(app:acquire_token_silent({ scopes = { "api.read" }, account = r.account }):await())
    assert.is_true(s.from_cache)
    assert.equal(r.access_token, s.access_token)
  end)
end)

-- An app against the Entra-like server.
local function entra_app(o)
  o = o or {}
  local skew = { 0 }
  local auth = { client_id = o.client_id or "lua-msal-confidential", authority = entra.base() .. "/" .. entra.TENANT }
  for k, v in pairs(o.auth or { client_secret = "s3cret" }) do auth[k] = v end
  local app = msal.ConfidentialClientApplication.new({ auth = auth,
    system = { clock = function() return os.time() + skew[1] end, logger = o.logger } })
  return app, skew
end

local function token_requests(grant)
  local out = {}
  for _, r in ipairs(entra.requests("token")) do
    if not grant or r.form.grant_type == grant then out[#out + 1] = r end
  end
  return out
end

local OBO = "urn:ietf:params:oauth:grant-type:jwt-bearer"

describe("ConfidentialClientApplication against the Entra-like server", function()
  before_each(function()
    entra.reset()
    require("msal.authority").clear_cache()
  end)

  it("client credentials: cached per tenant, refreshed past refresh_on, the cached token kept if that fails", function()
    entra.config({ refresh_in = 600 })
    local app, skew = entra_app()
    local r = assert(app:acquire_token_by_client_credential({ scopes = { GRAPH } }):await())
    assert.equal(entra.TENANT, r.tenant_id)
    local doc = cjson.decode(app:get_token_cache():serialize())
    local _, at = next(doc.AccessToken)
    assert.equal("", at.home_account_id)
    assert.equal(entra.TENANT, at.realm)
    assert.equal(GRAPH, at.target)
    assert.equal(tostring(tonumber(at.cached_at) + 600), at.refresh_on)
    assert.is_true(assert(app:acquire_token_by_client_credential({ scopes = { GRAPH } }):await()).from_cache)
    assert.equal(1, #token_requests())
    skew[1] = 700 -- past refresh_on
    local fresh = assert(app:acquire_token_by_client_credential({ scopes = { GRAPH } }):await())
    assert.is_false(fresh.from_cache)
    assert.are_not.equal(r.access_token, fresh.access_token)
    assert.equal(2, #token_requests())
    skew[1] = 1400
    entra.next({ endpoint = "token", canned = "invalid_client_secret" })
    local kept = assert(app:acquire_token_by_client_credential({ scopes = { GRAPH } }):await())
    assert.is_true(kept.from_cache)
    assert.equal(fresh.access_token, kept.access_token)
    local form = token_requests()[3].form
    assert.equal("client_credentials", form.grant_type)
    assert.equal("s3cret", form.client_secret)
    assert.equal(GRAPH, form.scope)
  end)

  it("on-behalf-of: MSAL's parameters, cached under the assertion's hash, refreshed with its refresh token", function()
    local user_app = entra.signed_in_app("lua-msal-app", entra.base() .. "/" .. entra.TENANT)
    local incoming = assert(user_app:acquire_token_silent({ scopes = { "User.Read" },
      account = user_app:get_all_accounts()[1] }):await()).access_token
    local app, skew = entra_app()
    local req = { obo_assertion = incoming, scopes = { "https://downstream.example/Data.Read" } }
    local r = assert(app:acquire_token_on_behalf_of(req):await())
    assert.is_false(r.from_cache)
    assert.equal(entra.UID .. "." .. entra.TENANT, r.account.home_account_id)
    local q = token_requests(OBO)
    assert.equal(1, #q)
    local f = q[1].form
    assert.equal("on_behalf_of", f.requested_token_use)
    assert.equal(incoming, f.assertion)
    assert.equal("s3cret", f.client_secret)
    assert.equal("1", f.client_info)
    assert.equal("https://downstream.example/Data.Read openid profile offline_access", f.scope)
    -- MSAL's userAssertionHash on the access token
    local hash = core.crypto.b64url_encode(core.crypto.sha256(incoming))
    local doc = cjson.decode(app:get_token_cache():serialize())
    local n = 0
    for _, at in pairs(doc.AccessToken) do
      n = n + 1
      assert.equal(hash, at.userAssertionHash)
    end
    assert.equal(1, n)
    local again = assert(app:acquire_token_on_behalf_of(req):await())
    assert.is_true(again.from_cache)
    assert.equal(r.access_token, again.access_token)
    assert.equal(r.account.home_account_id, again.account.home_account_id)
    assert.equal(1, #token_requests(OBO))
    -- expired: the OBO refresh token, with the secret, not the assertion
    skew[1] = 3600
    local refreshed = assert(app:acquire_token_on_behalf_of(req):await())
    assert.is_false(refreshed.from_cache)
    local rq = token_requests("refresh_token")
    local last = rq[#rq].form
    assert.equal("lua-msal-confidential", last.client_id)
    assert.equal("s3cret", last.client_secret)
    assert.is_nil(last.assertion)
    assert.equal(1, #token_requests(OBO))
    assert.is_true(assert(app:acquire_token_on_behalf_of(req):await()).from_cache)
    -- another assertion (the same user's next token) is not served the first one's token
    local other = assert(user_app:acquire_token_silent({ scopes = { "User.Read" }, force_refresh = true,
      account = user_app:get_all_accounts()[1] }):await()).access_token
    local r2 = assert(app:acquire_token_on_behalf_of({ obo_assertion = other, scopes = req.scopes }):await())
    assert.is_false(r2.from_cache)
    assert.equal(2, #token_requests(OBO))
    assert.equal(other, token_requests(OBO)[2].form.assertion)
  end)

  it("on-behalf-of keeps a partitioned cache's tokens under the assertion's hash", function()
    local user_app = entra.signed_in_app("lua-msal-app", entra.base() .. "/" .. entra.TENANT)
    local incoming = assert(user_app:acquire_token_silent({ scopes = { "User.Read" },
      account = user_app:get_all_accounts()[1] }):await()).access_token
    local keys, stored = {}, {}
    local plugin = {
      partition_key_for = function() error("OBO names its partition itself") end,
      before_cache_access = function(ctx)
        keys[#keys + 1] = ctx.partition_key
        if stored[ctx.partition_key] then ctx.token_cache:deserialize(stored[ctx.partition_key]) end
      end,
      after_cache_access = function(ctx)
        if ctx.cache_has_changed then stored[ctx.partition_key] = ctx.token_cache:serialize() end
      end,
    }
    local app = msal.ConfidentialClientApplication.new({ auth = { client_id = "lua-msal-confidential",
      client_secret = "s3cret", authority = entra.base() .. "/" .. entra.TENANT }, cache = plugin })
    local req = { obo_assertion = incoming, scopes = { "https://downstream.example/Data.Read" } }
    assert(app:acquire_token_on_behalf_of(req):await())
    assert.is_true(assert(app:acquire_token_on_behalf_of(req):await()).from_cache)
    local hash = core.crypto.b64url_encode(core.crypto.sha256(incoming))
    assert.is_true(#keys >= 3)
    for _, k in ipairs(keys) do assert.equal(hash, k) end
  end)

  it("redeems a web app's code with the secret, then refreshes with it; no family token is used", function()
    entra.config({ families = { "lua-msal-app", "lua-msal-confidential" } })
    -- a family refresh token of a public app in the same cache
    local public_app = entra.signed_in_app("lua-msal-app", entra.base() .. "/" .. entra.TENANT)
    local shared = public_app:get_token_cache():serialize()
    local app, skew = entra_app()
    app:get_token_cache():deserialize(shared)
    local account = app:get_all_accounts()[1]
    local err = rejects(app:acquire_token_silent({ scopes = { "User.Read" }, account = account }))
    assert.equal("InteractionRequiredAuthError", err.name)
    assert.equal(0, #token_requests("refresh_token"))
    assert.equal(shared, app:get_token_cache():serialize())
    -- the code flow of a web app
    local pkce = msal.pkce()
    local url = assert(app:get_auth_code_url({ scopes = { "User.Read" }, redirect_uri = "http://localhost:8400/",
      code_challenge = pkce.challenge, code_challenge_method = "S256", state = "st" }):await())
    local res = assert(require("msal.transport.curl").new():send({ method = "GET", url = url }):await())
    local code = network.form_decode(res.headers.location:match("%?(.*)$")).code
    local r = assert(app:acquire_token_by_code({ code = code, code_verifier = pkce.verifier,
      redirect_uri = "http://localhost:8400/", scopes = { "User.Read" } }):await())
    local f = token_requests("authorization_code")
    assert.equal("s3cret", f[#f].form.client_secret)
    assert.is_true(assert(app:acquire_token_silent({ scopes = { "User.Read" }, account = r.account }):await()).from_cache)
    skew[1] = 3600
    local s = assert(app:acquire_token_silent({ scopes = { "User.Read" }, account = r.account }):await())
    assert.is_false(s.from_cache)
    local rq = token_requests("refresh_token")
    assert.equal(1, #rq)
    assert.equal("lua-msal-confidential", rq[1].form.client_id)
    assert.equal("s3cret", rq[1].form.client_secret)
  end)
end)

describe("ConfidentialClientApplication regional endpoints", function()
  local TENANT = "00000000-0000-0000-bbbb-000000000002"
  local metadata = cjson.encode({
    issuer = "https://login.microsoftonline.com/" .. TENANT .. "/v2.0",
    authorization_endpoint = "https://login.microsoftonline.com/" .. TENANT .. "/oauth2/v2.0/authorize",
    token_endpoint = "https://login.microsoftonline.com/" .. TENANT .. "/oauth2/v2.0/token",
  })
  local function app_with(region)
    local t = fake.new(function()
      return { json = { token_type = "Bearer", expires_in = 3600, access_token = "app-token" } }
    end)
    local app = msal.ConfidentialClientApplication.new({ auth = { client_id = "daemon", client_secret = "s",
      authority = "https://login.microsoftonline.com/" .. TENANT, authority_metadata = metadata,
      azure_region = region }, system = { transport = t } })
    return app, t
  end

  it("sends a configured region to {region}.login.microsoft.com, cached under the cloud's environment", function()
    local app, t = app_with("westus2")
    assert(app:acquire_token_by_client_credential({ scopes = { GRAPH } }):await())
    assert.equal("https://westus2.login.microsoft.com/" .. TENANT .. "/oauth2/v2.0/token", t.requests[1].url)
    local _, at = next(cjson.decode(app:get_token_cache():serialize()).AccessToken)
    assert.equal("login.windows.net", at.environment)
    -- a request's region wins over the configuration's
    assert(app:acquire_token_by_client_credential({ scopes = { GRAPH }, force_refresh = true,
      azure_region = "eastus" }):await())
    assert.equal("https://eastus.login.microsoft.com/" .. TENANT .. "/oauth2/v2.0/token", t.requests[2].url)
  end)

  it("concurrent callers that need the same app token share one request", function()
    local app, t = app_with(nil)
    local p1 = app:acquire_token_by_client_credential({ scopes = { GRAPH } })
    local p2 = app:acquire_token_by_client_credential({ scopes = { GRAPH } })
    local all = assert(msal.all({ p1, p2 }):await())
    assert.equal(1, #t.requests)
    assert.equal(all[1].access_token, all[2].access_token)
    assert.equal("https://login.microsoftonline.com/" .. TENANT .. "/oauth2/v2.0/token", t.requests[1].url)
    assert.is_nil(next(app.inflight))
  end)

  it("TryAutoDetect reads REGION_NAME, else uses the global endpoint; other hosts get the region as a prefix", function()
    local cc = require("msal.flows.client_credential")
    local real = cc.getenv
    cc.getenv = function(name) return name == "REGION_NAME" and " CentralUS " or nil end
    local app, t = app_with("TryAutoDetect")
    local ok, err = pcall(function() return app:acquire_token_by_client_credential({ scopes = { GRAPH } }):await() end)
    cc.getenv = function() return nil end
    local app2, t2 = app_with("TryAutoDetect")
    local ok2 = pcall(function() return assert(app2:acquire_token_by_client_credential({ scopes = { GRAPH } }):await()) end)
    cc.getenv = real
    assert(ok, err)
    assert.is_true(ok2)
    assert.equal("https://centralus.login.microsoft.com/" .. TENANT .. "/oauth2/v2.0/token", t.requests[1].url)
    assert.equal("https://login.microsoftonline.com/" .. TENANT .. "/oauth2/v2.0/token", t2.requests[1].url)
    assert.equal("https://westeurope.login.microsoftonline.us/t/oauth2/v2.0/token",
      cc.regional("https://login.microsoftonline.us/t/oauth2/v2.0/token", "westeurope"))
    local _, bad = cc.regional("https://login.microsoftonline.com/t", "west/us")
    assert.equal("invalid_azure_region", bad.error_code)
  end)
end)

describe("ConfidentialClientApplication configuration and failures", function()
  local AUTH = "https://login.microsoftonline.com/00000000-0000-0000-bbbb-000000000002"
  local function new(auth)
    auth.client_id, auth.authority = auth.client_id or "c", AUTH
    return pcall(msal.ConfidentialClientApplication.new, { auth = auth })
  end
  local function config_error(auth, code)
    local ok, err = new(auth)
    assert.is_false(ok)
    assert.equal("ClientConfigurationError", err.name)
    if code then assert.equal(code, err.error_code) end
    return err
  end

  it("refuses no credential, two credentials, and a public client with one", function()
    config_error({}, "missing_client_credential")
    config_error({ client_secret = "a", client_assertion = "b" }, "invalid_client_credential")
    config_error({ client_secret = "" }, "invalid_client_credential")
    config_error({ client_assertion = 42 }, "invalid_configuration")
    local ok, err = pcall(msal.PublicClientApplication.new, { auth = { client_id = "c", client_secret = "zz" } })
    assert.is_false(ok)
    assert.matches("ConfidentialClientApplication", err.error_message)
  end)

  it("refuses a bad PEM, a wrong or missing passphrase, and a bad certificate, naming no secret", function()
    local e = config_error({ client_certificate = { private_key = "not a key", certificate = CERT } },
      "invalid_client_certificate")
    assert.matches("private_key cannot be used", e.error_message)
    e = config_error({ client_certificate = { private_key = ENC_KEY, passphrase = "wrong-pass", certificate = CERT } },
      "invalid_client_certificate")
    assert.falsy(tostring(e):find("wrong-pass", 1, true))
    config_error({ client_certificate = { private_key = ENC_KEY, certificate = CERT } }, "invalid_client_certificate")
    config_error({ client_certificate = { private_key = KEY, certificate = "garbage" } }, "invalid_client_certificate")
    config_error({ client_certificate = { private_key = KEY } }, "invalid_client_certificate")
    config_error({ client_certificate = { private_key = KEY, thumbprint_sha256 = "abc" } }, "invalid_client_certificate")
    config_error({ client_certificate = { private_key = KEY, certificate = CERT, algorithm = "HS256" } },
      "invalid_client_certificate")
    config_error({ client_certificate = { private_key = KEY, certificate = CERT, passPhrase = "x" } })
    local other = core.crypto.generate_key("RSA")
    local e2 = config_error({ client_certificate = { private_key = other, certificate = CERT } },
      "invalid_client_certificate")
    assert.matches("not the certificate of private_key", e2.error_message)
    assert.is_true(core.crypto.x509_matches_key(CERT, ENC_KEY, PASS))
    assert.is_false(core.crypto.x509_matches_key(CERT, other))
    assert.is_nil(core.crypto.x509_matches_key("garbage", KEY))
    local ec = core.crypto.generate_key("EC")
    config_error({ client_certificate = { private_key = ec, certificate = CERT } }, "invalid_client_certificate")
  end)

  it("an assertion callback that raises or gives no string rejects with a typed error, nothing sent", function()
    local t = fake.new({})
    local metadata = cjson.encode({ issuer = AUTH .. "/v2.0", authorization_endpoint = AUTH .. "/oauth2/v2.0/authorize",
      token_endpoint = AUTH .. "/oauth2/v2.0/token" })
    local function app(fn)
      return msal.ConfidentialClientApplication.new({ auth = { client_id = "c", authority = AUTH,
        authority_metadata = metadata, client_assertion = fn }, system = { transport = t } })
    end
    local err = rejects(app(function() error("token file missing") end)
      :acquire_token_by_client_credential({ scopes = { GRAPH } }))
    assert.equal("ClientAuthError", err.name)
    assert.equal("client_assertion_failed", err.error_code)
    assert.matches("token file missing", err.error_message)
    err = rejects(app(function() return msal.Promise.reject("no token yet") end)
      :acquire_token_by_client_credential({ scopes = { GRAPH } }))
    assert.equal("client_assertion_failed", err.error_code)
    for _, v in ipairs({ 42, "", false }) do
      err = rejects(app(function() return v end):acquire_token_by_client_credential({ scopes = { GRAPH } }))
      assert.equal("ClientConfigurationError", err.name)
      assert.equal("invalid_client_assertion", err.error_code)
    end
    assert.equal(0, #t.requests)
  end)

  it("keeps the secret and the key out of tostring, the configuration, logs and errors", function()
    local lines = {}
    local secret = "very-secret-value-123"
    local t = fake.new(function()
      return { status = 401, json = { error = "invalid_client", error_description = "bad client" } }
    end)
    local metadata = cjson.encode({ issuer = AUTH .. "/v2.0", authorization_endpoint = AUTH .. "/oauth2/v2.0/authorize",
      token_endpoint = AUTH .. "/oauth2/v2.0/token" })
    local apps = {
      msal.ConfidentialClientApplication.new({ auth = { client_id = "c", authority = AUTH, client_secret = secret,
        authority_metadata = metadata }, system = { transport = t, logger = { level = "verbose",
          sink = function(_, m) lines[#lines + 1] = m end } } }),
      msal.ConfidentialClientApplication.new({ auth = { client_id = "c", authority = AUTH, authority_metadata = metadata,
        client_certificate = { private_key = ENC_KEY, passphrase = PASS, certificate = CERT } },
        system = { transport = t, logger = { level = "verbose", sink = function(_, m) lines[#lines + 1] = m end } } }),
    }
    for _, app in ipairs(apps) do
      local err = rejects(app:acquire_token_by_client_credential({ scopes = { GRAPH } }))
      assert.equal("invalid_client", err.error_code)
      local texts = { tostring(app), tostring(app.config), tostring(app.config.auth.credential), tostring(err) }
      -- every string reachable from the application's fields
      local seen = {}
      local function walk(v)
        if type(v) == "string" then texts[#texts + 1] = v
        elseif type(v) == "table" and not seen[v] and v ~= t then -- t: the spec's own recording
          seen[v] = true
          for k, x in pairs(v) do walk(k); walk(x) end
        end
      end
      walk(app)
      for _, line in ipairs(lines) do texts[#texts + 1] = line end
      assert.is_true(#lines > 0)
      for _, s in ipairs(texts) do
        assert.falsy(s:find(secret, 1, true), s)
        assert.falsy(s:find(PASS, 1, true), s)
        assert.falsy(s:find("PRIVATE KEY", 1, true), s)
      end
    end
    assert.equal(secret, t.requests[1].form.client_secret)
  end)

  it("checks its requests' keys like every method", function()
    local app = msal.ConfidentialClientApplication.new({ auth = { client_id = "c", authority = AUTH, client_secret = "s" } })
    local err = rejects(app:acquire_token_by_client_credential({ scopes = { GRAPH }, azureRegion = "x" }))
    assert.equal("invalid_request", err.error_code)
    assert.matches("azure_region", err.error_message)
    err = rejects(app:acquire_token_on_behalf_of({ scopes = { GRAPH } }))
    assert.equal("ClientConfigurationError", err.name)
    err = rejects(app:acquire_token_by_client_credential({ scopes = { GRAPH },
      extra_body_parameters = { client_secret = "x" } }))
    assert.equal("reserved_parameter", err.error_code)
    err = rejects(app:acquire_token_on_behalf_of({ obo_assertion = "a", scopes = { GRAPH },
      extra_body_parameters = { assertion = "x" } }))
    assert.equal("reserved_parameter", err.error_code)
    assert.is_nil(app.acquire_token_by_device_code)
    assert.is_nil(app.acquire_token_popup)
  end)
end)

describe("ConfidentialClientApplication cache interop with msal-node", function()
  local proc = require("proc")
  local PEER = ROOT .. "/spec/support/node/peer.js"
  local TENANT = "00000000-0000-0000-bbbb-000000000002"
  local AUTHORITY = "https://login.microsoftonline.com/" .. TENANT
  local metadata = cjson.encode({ issuer = AUTHORITY .. "/v2.0", authorization_endpoint = AUTHORITY .. "/oauth2/v2.0/authorize",
    token_endpoint = AUTHORITY .. "/oauth2/v2.0/token" })

  local function peer(...)
    local args = {}
    for i, a in ipairs({ ... }) do args[i] = proc.quote(a) end
    -- without the ASan preload: msal-node's leaks are not ours
    local out, code, err = proc.run("node " .. proc.quote(PEER) .. " " .. table.concat(args, " "), { plain = true })
    assert(code == 0, "msal-node peer failed: " .. tostring(err))
    return cjson.decode(out)
  end

  local function new_app(t)
    return msal.ConfidentialClientApplication.new({ auth = { client_id = "my-daemon", authority = AUTHORITY,
      client_secret = "s", authority_metadata = metadata }, system = { transport = t } })
  end

  it("msal-node's ConfidentialClientApplication serves an app token written here, and the reverse", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. proc.quote(dir)))
    -- written here, served by msal-node with no network
    local t = fake.new({ { json = { token_type = "Bearer", expires_in = 3600, ext_expires_in = 3600,
      access_token = "lua-app-token" } } })
    local app = new_app(t)
    local ours = assert(app:acquire_token_by_client_credential({ scopes = { GRAPH } }):await())
    assert(files.write(dir .. "/lua.json", app:get_token_cache():serialize()))
    local node = peer("app_token", dir .. "/lua.json", "my-daemon", AUTHORITY, GRAPH)
    assert.is_true(node.fromCache)
    assert.equal("lua-app-token", node.accessToken)
    assert.equal(ours.expires_on, node.expiresOn)
    -- written by msal-node (a canned token answer), served here with no request
    peer("write_app_token", dir .. "/node.json", "my-daemon", AUTHORITY, GRAPH, "node-app-token", "3600")
    local t2 = fake.new({})
    local back = new_app(t2)
    back:get_token_cache():deserialize(assert(files.read(dir .. "/node.json")))
    local r = assert(back:acquire_token_by_client_credential({ scopes = { GRAPH } }):await())
    assert.is_true(r.from_cache)
    assert.equal("node-app-token", r.access_token)
    assert.equal(TENANT, r.tenant_id)
    assert.equal(0, #t2.requests)
    os.execute("rm -rf " .. proc.quote(dir))
  end)

  it("msal-node serves an on-behalf-of token written here for the same assertion", function()
    local F = require("fixtures")
    local now = os.time()
    local t = fake.new({ { json = { token_type = "Bearer", expires_in = 3600, access_token = "obo-token",
      scope = "https://downstream.example/Data.Read", refresh_token = "obo-rt",
      client_info = F.b64url(cjson.encode({ uid = F.UID, utid = TENANT })),
      id_token = F.jwt({ aud = "my-daemon", iss = AUTHORITY .. "/v2.0", tid = TENANT, oid = F.UID, sub = "s",
        name = "Test User", preferred_username = "test.user@example.com", iat = now, exp = now + 3600 }) } } })
    local app = new_app(t)
    local r = assert(app:acquire_token_on_behalf_of({ obo_assertion = "incoming.jwt.token",
      scopes = { "https://downstream.example/Data.Read" } }):await())
    assert.equal(F.HID, r.account.home_account_id)
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. proc.quote(dir)))
    assert(files.write(dir .. "/obo.json", app:get_token_cache():serialize()))
    local node = peer("obo", dir .. "/obo.json", "my-daemon", AUTHORITY, "incoming.jwt.token",
      "https://downstream.example/Data.Read")
    os.execute("rm -rf " .. proc.quote(dir))
    assert.is_true(node.fromCache)
    assert.equal("obo-token", node.accessToken)
    -- (msal-node 7's OBO cache hit never carries the account: it counts the
    -- id tokens with Object.values of a Map, always none)
    assert.equal(cjson.null, node.homeAccountId)
  end)
end)

-- acquire_token_silent against the local Entra-like authority over real
-- HTTP (libcurl): refresh, MSAL's error classes from the server's own
-- answers, claims, single flight, retries, timeouts and broken answers.
local msal = require("msal")
local entra = require("entra")
local cjson = require("cjson")

local function new_app(o)
  o = o or {}
  local skew = o.skew or { 0 }
  local app = msal.PublicClientApplication.new({
    auth = { client_id = o.client_id or "lua-msal-app", authority = o.authority or (entra.base() .. "/" .. entra.TENANT),
      client_capabilities = o.capabilities, authority_metadata = o.metadata },
    cache = o.cache,
    system = { clock = function() return os.time() + skew[1] end, http_timeout_ms = o.timeout_ms,
      transport = require("msal.transport.curl").new({ max_response_bytes = 8192 }),
      validate_id_token_signature = o.validate },
  })
  return app, skew
end

local function silent(app, scopes, extra)
  local req = { scopes = scopes or { "User.Read" }, account = app:get_all_accounts()[1] }
  for k, v in pairs(extra or {}) do req[k] = v end
  return app:acquire_token_silent(req):await()
end

local token_requests = entra.refresh_requests

describe("silent refresh against the Entra-like authority", function()
  before_each(function()
    entra.reset()
    require("msal.authority").clear_cache()
    require("msal.jwks").clear()
  end)

  it("serves from the cache, then refreshes after expiry with MSAL's parameters", function()
    local app, skew = new_app()
    entra.sign_in(app)
    local r = assert(silent(app))
    assert.is_true(r.from_cache)
    skew[1] = 3600 -- an hour later the token is within the renewal offset
    local fresh = assert(silent(app))
    assert.is_false(fresh.from_cache)
    assert.are_not.equal(r.access_token, fresh.access_token)
    assert.equal(entra.UID .. "." .. entra.TENANT, fresh.account.home_account_id)
    local q = entra.requests("token")
    local last = q[#q]
    assert.equal("refresh_token", last.form.grant_type)
    assert.equal("1", last.form.client_info)
    assert.equal("User.Read openid profile offline_access", last.form.scope)
    assert.is_nil(last.form.claims)
    assert.equal("Oid:" .. entra.UID .. "@" .. entra.TENANT, last.headers["x-anchormailbox"])
    assert.is_true(assert(silent(app)).from_cache)
    assert.equal(1, token_requests())
  end)

  it("refreshes past refresh_on, and caches the granted superset", function()
    entra.config({ refresh_in = 60 })
    local app, skew = new_app()
    local seeded = entra.sign_in(app, { "User.Read", "Mail.Read" })
    assert.equal(seeded.expires_on - 3600 + 60, seeded.refresh_on)
    assert.is_true(assert(silent(app, { "mail.read" })).from_cache)
    assert.is_true(assert(silent(app, { "user.read", "MAIL.READ" })).from_cache)
    skew[1] = 120
    local r = assert(silent(app))
    assert.is_false(r.from_cache)
    assert.is_true(r.refresh_on > os.time() + 120)
    assert.is_true(assert(silent(app)).from_cache)
  end)

  local cases = {
    { "bad_token", "InteractionRequiredAuthError", "700082", true },
    { "invalid_grant", "ServerError", "70000", false },
    { "mfa_required", "InteractionRequiredAuthError", "50076", false },
    { "interaction_required", "InteractionRequiredAuthError", "50079", false },
    { "consent_required", "InteractionRequiredAuthError", "65001", false },
    { "invalid_client", "ServerError", "7000218", false },
  }
  for _, c in ipairs(cases) do
    it("classifies the server's " .. c[1] .. " as " .. c[2], function()
      local app, skew = new_app()
      entra.sign_in(app)
      skew[1] = 3600
      entra.next({ endpoint = "token", canned = c[1], when = { grant_type = "refresh_token" } })
      local _, err = silent(app)
      assert.equal(c[2], err.name)
      assert.equal(c[3], err.error_no)
      assert.is_string(err.correlation_id)
      if c[1] == "mfa_required" then assert.matches("capolids", err.claims, 1, true) end
      local rts = cjson.decode(app:get_token_cache():serialize()).RefreshToken
      assert.equal(c[4], next(rts) == nil, "refresh token deleted?")
    end)
  end

  it("sends claims merged with capabilities and bypasses the cache", function()
    local app = new_app({ capabilities = { "cp1" } })
    entra.sign_in(app)
    local r = assert(silent(app, nil, { claims = '{"access_token":{"acrs":{"essential":true,"value":"c1"}}}' }))
    assert.is_false(r.from_cache)
    local q = entra.requests("token")
    local sent = cjson.decode(q[#q].form.claims)
    assert.same({ values = { "cp1" } }, sent.access_token.xms_cc)
    assert.same({ essential = true, value = "c1" }, sent.access_token.acrs)
  end)

  it("shares one token request among 100 concurrent callers", function()
    local app, skew = new_app()
    entra.sign_in(app)
    skew[1] = 3600
    local account, results = app:get_all_accounts()[1], {}
    for i = 1, 100 do
      msal.async(function()
        results[i] = app:acquire_token_silent({ scopes = { "User.Read" }, account = account }):await()
      end)
    end
    msal.run()
    assert.equal(1, token_requests())
    for i = 2, 100 do assert.equal(results[1].access_token, results[i].access_token) end
  end)

  it("retries once after 503 and after 429's Retry-After", function()
    -- short-lived access tokens, so the clock moves less than the id token lives
    entra.config({ expires_in = 400 })
    local app, skew = new_app()
    entra.sign_in(app)
    skew[1] = 200
    entra.next({ endpoint = "token", canned = "temporarily_unavailable", when = { grant_type = "refresh_token" } })
    assert.is_false(assert(silent(app)).from_cache)
    assert.equal(2, token_requests())
    skew[1] = 400
    entra.next({ endpoint = "token", canned = "throttled", retry_after = 1, when = { grant_type = "refresh_token" } })
    local t = require("msal.core").now_ms()
    assert(silent(app))
    assert.is_true(require("msal.core").now_ms() - t >= 950)
    skew[1] = 600
    entra.next({ endpoint = "token", canned = "temporarily_unavailable", count = 2, when = { grant_type = "refresh_token" } })
    local _, err = silent(app)
    assert.equal("ServerError", err.name)
    assert.equal(503, err.status)
  end)

  it("times out on a slow token endpoint, and reports a refused connection", function()
    local app, skew = new_app({ timeout_ms = 300 })
    entra.sign_in(app)
    skew[1] = 3600
    entra.next({ endpoint = "token", delay_ms = 2000, canned = "invalid_grant", when = { grant_type = "refresh_token" } })
    local _, err = silent(app)
    assert.equal("request_timeout", err.error_code)
    -- the same authority, but its token endpoint on a port nobody listens on
    local closed = new_app({ metadata = cjson.encode({ issuer = "x", token_endpoint = "http://127.0.0.1:9/token",
      authorization_endpoint = "http://127.0.0.1:9/authorize" }) })
    closed:get_token_cache():deserialize(app:get_token_cache():serialize())
    local _, e2 = closed:acquire_token_silent({ scopes = { "User.Read" }, account = app:get_all_accounts()[1],
      force_refresh = true }):await()
    assert.equal("ClientAuthError", e2.name)
    assert.equal("connect", e2.kind)
  end)

  local broken = {
    { "a non-JSON body", { raw = "<html>proxy error</html>", status = 200 } },
    { "an oversized body (over the transport's cap, 8 KB here)", { override = { access_token = ("x"):rep(9000) } } },
    { "a truncated body", { raw = '{"token_type":"Bearer","access_token":"x","expires_in":36', truncate = true } },
    -- libcurl itself retries once when a reused connection dies unanswered
    { "a dropped connection", { drop = true, count = 2 } },
    { "a wrongly typed lifetime", { override = { expires_in = "soon" } } },
    { "a missing access token", { override = { access_token = cjson.null } } },
    { "a malformed id token", { override = { id_token = "abc.def" } } },
    { "an id token for another client", { id_token_claims = { aud = "someone-else" } } },
  }
  for _, b in ipairs(broken) do
    it("refuses " .. b[1] .. " and leaves the cache as it was", function()
      local app, skew = new_app()
      entra.sign_in(app)
      skew[1] = 3600
      local before = app:get_token_cache():serialize()
      local entry = { endpoint = "token", when = { grant_type = "refresh_token" } }
      for k, v in pairs(b[2]) do entry[k] = v end
      entra.next(entry)
      local _, err = silent(app)
      assert.is_table(err)
      assert.is_true(err.name == "ClientAuthError" or err.name == "ServerError", tostring(err))
      assert.equal(before, app:get_token_cache():serialize())
    end)
  end

  it("checks id token signatures against the JWKS when asked to", function()
    local app = new_app({ validate = true })
    entra.sign_in(app)
    assert.is_false(assert(silent(app, nil, { force_refresh = true })).from_cache)
    local forged = "eyJhbGciOiJub25lIn0." .. require("msal.core").crypto.b64url_encode(cjson.encode({
      aud = "lua-msal-app", iss = entra.base() .. "/" .. entra.TENANT .. "/v2.0", tid = entra.TENANT,
      exp = os.time() + 3600 })) .. "."
    entra.next({ endpoint = "token", override = { id_token = forged }, when = { grant_type = "refresh_token" } })
    local _, err = silent(app, nil, { force_refresh = true })
    assert.equal("invalid_id_token", err.error_code)
  end)

  it("uses a family refresh token of another app (FOCI)", function()
    entra.config({ families = { "lua-msal-app", "family-app-2" } })
    local a = new_app()
    entra.sign_in(a)
    local shared = a:get_token_cache():serialize() -- one cache document for both apps
    local b = new_app({ client_id = "family-app-2" })
    b:get_token_cache():deserialize(shared)
    local r = assert(silent(b))
    assert.is_false(r.from_cache)
    local q = entra.requests("token")
    assert.equal("family-app-2", q[#q].form.client_id)
  end)
end)

describe("authorities that do not name a tenant by its id", function()
  before_each(function()
    entra.reset()
    require("msal.authority").clear_cache()
  end)

  -- Tokens are stored under the id token's tid (a GUID); a look-up under
  -- the authority's path segment never found them (#14 item 1).
  for _, tenant in ipairs({ "example.com", "organizations", "common" }) do
    it("serves " .. tenant .. " from the cache under the account's tenant", function()
      local app = new_app({ authority = entra.base() .. "/" .. tenant })
      local seeded = entra.sign_in(app)
      assert.equal(entra.TENANT, seeded.tenant_id)
      local r = assert(silent(app))
      assert.is_true(r.from_cache)
      assert.equal(seeded.access_token, r.access_token)
      assert.equal(entra.TENANT, r.tenant_id)
      assert.equal(0, token_requests())
    end)
  end

  it("looks a tenant id authority up under that tenant only", function()
    local app = new_app({ authority = entra.base() .. "/example.com" })
    entra.sign_in(app)
    local r = assert(silent(app, nil, { authority = entra.base() .. "/" .. entra.TENANT }))
    assert.is_true(r.from_cache)
    local other = "00000000-0000-0000-cccc-000000000003"
    -- not the home tenant's token: a refresh for the other tenant (whose
    -- answer this server signs for the home tenant, so it is refused)
    local r2, err = silent(app, nil, { authority = entra.base() .. "/" .. other })
    assert.is_nil(r2)
    assert.equal("invalid_id_token", err.error_code)
    assert.equal(1, token_requests())
  end)
end)

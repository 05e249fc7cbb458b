-- acquire_token_silent's refresh path against a scripted token endpoint:
-- the request MSAL sends, what the answer does to the cache, MSAL's error
-- classes, retries, single flight. (The same against a real HTTP server is
-- in entra_spec.lua.)
local msal = require("msal")
local F = require("fixtures")
local cjson = require("cjson")
local fake_transport = require("fake_transport")

local NOW = 1800000000
local AUTHORITY = "https://login.microsoftonline.com/common"
local TOKEN_URL = AUTHORITY .. "/oauth2/v2.0/token"
local ISSUER = "https://login.microsoftonline.com/{tenantid}/v2.0"

local function app_with(doc, transport, auth_extra)
  local auth = { client_id = F.CLIENT, authority = AUTHORITY,
    authority_metadata = cjson.encode({ issuer = ISSUER, token_endpoint = TOKEN_URL,
      authorization_endpoint = AUTHORITY .. "/oauth2/v2.0/authorize" }) }
  for k, v in pairs(auth_extra or {}) do auth[k] = v end
  local app = msal.PublicClientApplication.new({ auth = auth,
    system = { clock = function() return NOW end, transport = transport } })
  app:get_token_cache():deserialize(cjson.encode(doc))
  return app
end

local function expired_doc(at)
  local o = { expires_on = tostring(NOW + 100) }
  for k, v in pairs(at or {}) do o[k] = v end
  return F.signed_in(o)
end

local function id_token(o)
  local c = { aud = F.CLIENT, iss = "https://login.microsoftonline.com/" .. F.TENANT .. "/v2.0", tid = F.TENANT,
    oid = F.UID, sub = "fake-sub", name = "Test User", preferred_username = "test.user@example.com",
    exp = NOW + 3600, iat = NOW }
  for k, v in pairs(o or {}) do c[k] = v end
  return F.jwt(c)
end

local function ok_response(o)
  local body = { token_type = "Bearer", scope = "User.Read openid profile", expires_in = 3600, ext_expires_in = 7200,
    access_token = "new-access-token", refresh_token = "rotated-refresh-token", id_token = id_token(),
    client_info = F.b64url(cjson.encode({ uid = F.UID, utid = F.TENANT })) }
  for k, v in pairs(o or {}) do body[k] = v end
  return { status = 200, json = body }
end

local function silent(app, scopes, extra)
  local req = { scopes = scopes or { "User.Read" }, account = app:get_all_accounts()[1] }
  for k, v in pairs(extra or {}) do req[k] = v end
  return app:acquire_token_silent(req):await()
end

local function cache_of(app) return cjson.decode(app:get_token_cache():serialize()) end

describe("silent refresh", function()
  it("redeems the refresh token with MSAL's parameters once the access token expires", function()
    local t = fake_transport.new({ ok_response() })
    local app = app_with(expired_doc(), t)
    local r = assert(silent(app))
    assert.equal("new-access-token", r.access_token)
    assert.is_false(r.from_cache)
    assert.equal(NOW + 3600, r.expires_on)
    assert.equal(NOW + 3600 + 7200, r.ext_expires_on)
    assert.equal("Test User", r.id_token_claims.name)
    assert.equal(F.HID, r.account.home_account_id)
    assert.equal(1, #t.requests)
    local q = t.requests[1]
    assert.equal("POST", q.method)
    assert.equal(TOKEN_URL, q.url)
    assert.same({ client_id = F.CLIENT, scope = "User.Read openid profile offline_access", grant_type = "refresh_token",
      client_info = "1", refresh_token = "fake-refresh-token" }, q.form)
    assert.equal("Oid:" .. F.UID .. "@" .. F.TENANT, q.headers["x-anchormailbox"])
    assert.is_string(q.headers["client-request-id"])
    -- cached: the next call is served without the network, the refresh token rotated
    local again = assert(silent(app))
    assert.is_true(again.from_cache)
    assert.equal("new-access-token", again.access_token)
    assert.equal(1, #t.requests)
    local c = cache_of(app)
    local rt = c.RefreshToken[next(c.RefreshToken)]
    assert.equal("rotated-refresh-token", rt.secret)
    local n = 0
    for _ in pairs(c.AccessToken) do n = n + 1 end
    assert.equal(1, n) -- the expired token with overlapping scopes was replaced
  end)

  it("caches the granted superset and serves a subset later", function()
    local t = fake_transport.new({ ok_response({ scope = "User.Read Mail.Read Calendars.Read" }) })
    local app = app_with(expired_doc(), t)
    assert(silent(app))
    local r = assert(silent(app, { "Mail.Read" }))
    assert.is_true(r.from_cache)
    assert.same({ "User.Read", "Mail.Read", "Calendars.Read" }, r.scopes)
    assert.equal(1, #t.requests)
  end)

  it("refreshes past refresh_on, and serves the cached token when that fails", function()
    local t = fake_transport.new({ ok_response({ refresh_in = 1800 }) })
    local app = app_with(F.signed_in({ refresh_on = tostring(NOW - 5) }), t)
    local r = assert(silent(app))
    assert.equal("new-access-token", r.access_token)
    assert.equal(NOW + 1800, r.refresh_on)
    t = fake_transport.new({ { status = 400, json = { error = "invalid_grant", error_description = "AADSTS70000" } } })
    app = app_with(F.signed_in({ refresh_on = tostring(NOW - 5) }), t)
    r = assert(silent(app))
    assert.equal("fake-access-token", r.access_token)
    assert.is_true(r.from_cache)
    assert.equal(1, #t.requests)
  end)

  it("sends claims merged with client capabilities, bypassing the cache", function()
    local t = fake_transport.new({ ok_response() })
    local app = app_with(F.signed_in(), t, { client_capabilities = { "cp1" } })
    assert(silent(app, { "User.Read" }, { claims = '{"access_token":{"acrs":{"essential":true,"value":"c1"}}}' }))
    local sent = cjson.decode(t.requests[1].form.claims)
    assert.same({ essential = true, value = "c1" }, sent.access_token.acrs)
    assert.same({ values = { "cp1" } }, sent.access_token.xms_cc)
  end)

  it("shares one token request among concurrent callers", function()
    local t = fake_transport.new({ ok_response() })
    local app = app_with(expired_doc(), t)
    local account = app:get_all_accounts()[1]
    local results = {}
    for i = 1, 100 do
      msal.async(function()
        results[i] = app:acquire_token_silent({ scopes = { "User.Read" }, account = account }):await()
      end)
    end
    msal.run()
    assert.equal(1, #t.requests)
    for i = 1, 100 do assert.equal("new-access-token", results[i].access_token) end
  end)

  it("does not store tokens for an account signed out while refreshing", function()
    local t = fake_transport.new({ ok_response() })
    local app = app_with(expired_doc(), t)
    local account = app:get_all_accounts()[1]
    local p = app:acquire_token_silent({ scopes = { "User.Read" }, account = account })
    app:remove_account(account)
    local r = assert(p:await())
    assert.equal("new-access-token", r.access_token)
    assert.same({}, cache_of(app).AccessToken)
    assert.same({}, cache_of(app).RefreshToken)
  end)

  it("uses the family refresh token of another app (FOCI)", function()
    local doc = F.doc({ Account = { F.account() }, IdToken = { F.id_token() },
      RefreshToken = { F.refresh_token({ client_id = "other-family-app", family_id = "1", secret = "family-rt" }) } })
    local t = fake_transport.new({ ok_response({ foci = "1" }) })
    local app = app_with(doc, t)
    assert(silent(app))
    assert.equal("family-rt", t.requests[1].form.refresh_token)
    local c = cache_of(app)
    local meta = c.AppMetadata["appmetadata-" .. F.ENV .. "-" .. F.CLIENT]
    assert.equal("1", meta.family_id)
  end)
end)

describe("silent refresh errors", function()
  local function fails_with(response, check)
    local t = fake_transport.new({ response, response })
    local app = app_with(expired_doc(), t)
    local before = app:get_token_cache():serialize()
    local _, err = silent(app)
    assert.is_table(err)
    check(err, app, before, t)
  end

  it("bad_token: interaction required, and the refresh token is deleted", function()
    fails_with({ status = 400, json = { error = "invalid_grant", suberror = "bad_token", error_codes = { 700082 },
      error_description = "AADSTS700082: The refresh token has expired.", correlation_id = "corr-1" } }, function(err, app)
      assert.equal("InteractionRequiredAuthError", err.name)
      assert.equal("700082", err.error_no)
      assert.equal("bad_token", err.suberror)
      assert.equal("corr-1", err.correlation_id)
      assert.same({}, cache_of(app).RefreshToken)
    end)
  end)
  it("invalid_grant without a suberror: ServerError, refresh token kept", function()
    fails_with({ status = 400, json = { error = "invalid_grant", error_description = "AADSTS70000: bad grant" } },
      function(err, app)
        assert.equal("ServerError", err.name)
        assert.equal(400, err.status)
        assert.is_table(cache_of(app).RefreshToken[next(cache_of(app).RefreshToken)])
      end)
  end)
  it("MFA step-up: interaction required with the claims challenge", function()
    fails_with({ status = 400, json = { error = "invalid_grant", suberror = "basic_action",
      claims = '{"access_token":{"capolids":{"essential":true}}}', error_codes = { 50076 } } }, function(err)
      assert.is_true(msal.is_interaction_required(err))
      assert.equal('{"access_token":{"capolids":{"essential":true}}}', err.claims)
    end)
  end)
  it("interaction_required and consent_required", function()
    for _, code in ipairs({ "interaction_required", "consent_required", "login_required" }) do
      fails_with({ status = 400, json = { error = code } }, function(err)
        assert.equal("InteractionRequiredAuthError", err.name)
        assert.equal(code, err.error_code)
      end)
    end
  end)
  it("invalid_client: ServerError", function()
    fails_with({ status = 401, json = { error = "invalid_client", error_codes = { 7000218 } } }, function(err)
      assert.equal("ServerError", err.name)
    end)
  end)
  it("no secret or token in error messages", function()
    fails_with({ status = 400, json = { error = "invalid_grant" } }, function(err)
      local text = tostring(err) .. (err.error_message or "")
      assert.is_nil(text:find("fake-refresh-token", 1, true))
    end)
  end)

  local malformed = {
    { "a body that is not JSON", { status = 200, body = "<html>oops</html>" } },
    { "a truncated body", { status = 200, body = '{"access_token":"x","expires_in":36' } },
    { "a JSON array", { status = 200, body = "[1,2]" } },
    { "no access token", ok_response({ access_token = cjson.null }) },
    { "a wrongly typed lifetime", ok_response({ expires_in = "soon" }) },
    { "a wrongly typed refresh token", ok_response({ refresh_token = 42 }) },
    { "a malformed id token", ok_response({ id_token = "not.a.jwt!" }) },
    { "an id token for another audience", ok_response({ id_token = id_token({ aud = "someone-else" }) }) },
    { "an id token from another issuer", ok_response({ id_token = id_token({ iss = "https://evil.example/v2.0" }) }) },
    { "an expired id token", ok_response({ id_token = id_token({ exp = NOW - 3600 }) }) },
    { "a 500 without an OAuth error", { status = 500, body = "Internal error" } },
  }
  for _, case in ipairs(malformed) do
    it("refuses " .. case[1] .. " with a typed error and an untouched cache", function()
      fails_with(case[2], function(err, app, before)
        assert.is_true(err.name == "ClientAuthError" or err.name == "ServerError", err.name)
        assert.equal(before, app:get_token_cache():serialize())
      end)
    end)
  end

  it("retries once on 503 and on 429 after Retry-After", function()
    local t = fake_transport.new({ { status = 503, json = { error = "temporarily_unavailable" } }, ok_response() })
    local app = app_with(expired_doc(), t)
    assert.equal("new-access-token", assert(silent(app)).access_token)
    assert.equal(2, #t.requests)
    t = fake_transport.new({ { status = 429, headers = { ["retry-after"] = "1" }, json = { error = "throttled" } },
      ok_response() })
    app = app_with(expired_doc(), t)
    local start = require("msal.core").now_ms()
    assert(silent(app))
    assert.is_true(require("msal.core").now_ms() - start >= 950)
    assert.equal(2, #t.requests)
    t = fake_transport.new({ { status = 503, json = { error = "temporarily_unavailable" } },
      { status = 503, json = { error = "temporarily_unavailable" } }, ok_response() })
    app = app_with(expired_doc(), t)
    local _, err = silent(app)
    assert.equal("ServerError", err.name)
    assert.equal(2, #t.requests) -- one retry, not more
  end)
  it("bounds Retry-After", function()
    local network = require("msal.network")
    assert.is_true(network.MAX_RETRY_AFTER_S <= 10)
  end)
  it("turns transport failures into ClientAuthErrors", function()
    local t = fake_transport.new({ { error = { kind = "timeout", message = "timed out after 30000 ms" } } })
    local app = app_with(expired_doc(), t)
    local _, err = silent(app)
    assert.equal("ClientAuthError", err.name)
    assert.equal("request_timeout", err.error_code)
    t = fake_transport.new({ { error = { kind = "connect", message = "refused" } } })
    app = app_with(expired_doc(), t)
    _, err = silent(app)
    assert.equal("network_error", err.error_code)
  end)
end)

describe("the silent-then-interactive pattern", function()
  -- the interactive step is a test double here; the real popup comes with
  -- the interactive issue
  local function interactive(app, req)
    return msal.Promise.resolve({ access_token = "interactive-token", account = req.account })
  end
  it("falls back on InteractionRequiredAuthError with next/catch", function()
    local t = fake_transport.new({ { status = 400, json = { error = "interaction_required" } } })
    local app = app_with(expired_doc(), t)
    local req = { scopes = { "User.Read" }, account = app:get_all_accounts()[1] }
    local token
    app:acquire_token_silent(req)
      :catch(function(err)
        if msal.is_interaction_required(err) then return interactive(app, req) end
        error(err)
      end)
      :next(function(r) token = r.access_token end)
    msal.run()
    assert.equal("interactive-token", token)
  end)
  it("falls back with await", function()
    local t = fake_transport.new({ { status = 400, json = { error = "invalid_grant", suberror = "bad_token" } } })
    local app = app_with(expired_doc(), t)
    local req = { scopes = { "User.Read" }, account = app:get_all_accounts()[1] }
    local token
    msal.async(function()
      local r, err = app:acquire_token_silent(req):await()
      if not r and msal.is_interaction_required(err) then r = interactive(app, req):await() end
      token = r.access_token
    end)
    msal.run()
    assert.equal("interactive-token", token)
  end)
end)

-- PublicClientApplication: configuration, accounts and the silent flow
-- from the cache, through the public API only.
local msal = require("msal")
local F = require("fixtures")
local cjson = require("cjson")

local NOW = 1800000000

-- The token endpoint of these apps refuses every refresh token as Entra
-- does when consent is missing; specs that need other answers pass their own.
local function consent_required()
  return { status = 400, json = { error = "invalid_grant", suberror = "consent_required",
    error_description = "AADSTS65001: The user has not consented.", error_codes = { 65001 } } }
end

local function app_with(doc, extra)
  local authority = (extra and extra.auth and extra.auth.authority) or "https://login.microsoftonline.com/common"
  local cfg = {
    auth = { client_id = F.CLIENT, authority = authority,
      authority_metadata = cjson.encode({ issuer = authority .. "/v2.0", token_endpoint = authority .. "/oauth2/v2.0/token",
        authorization_endpoint = authority .. "/oauth2/v2.0/authorize" }) },
    system = { clock = function() return NOW end, transport = require("fake_transport").new(consent_required) },
  }
  for k, v in pairs(extra or {}) do
    if type(v) == "table" and cfg[k] then
      for k2, v2 in pairs(v) do cfg[k][k2] = v2 end
    else
      cfg[k] = v
    end
  end
  local app = msal.PublicClientApplication.new(cfg)
  if doc then app:get_token_cache():deserialize(type(doc) == "string" and doc or cjson.encode(doc)) end
  return app
end

local function silent(app, req)
  return app:acquire_token_silent(req):await()
end

describe("PublicClientApplication.new", function()
  local function config_error(cfg)
    local ok, err = pcall(msal.PublicClientApplication.new, cfg)
    assert.is_false(ok)
    assert.equal("ClientConfigurationError", err.name)
    return err
  end
  it("refuses unknown keys, naming them", function()
    assert.matches("auth.clientId", config_error({ auth = { client_id = "x", clientId = "y" } }).error_message, 1, true)
    assert.matches("'sytem'", config_error({ auth = { client_id = "x" }, sytem = {} }).error_message, 1, true)
  end)
  it("refuses wrong types and missing client ids", function()
    config_error({ auth = { client_id = 5 } })
    config_error({ auth = {} })
    config_error("nope")
    config_error({ auth = { client_id = "x" }, system = { token_renewal_offset = "300" } })
    config_error({ auth = { client_id = "x" }, system = { token_renewal_offset = -1 } })
    config_error({ auth = { client_id = "x", client_capabilities = { 1 } } })
    config_error({ auth = { client_id = "x", protocol_mode = "saml" } })
  end)
  it("requires https authorities except on loopback", function()
    config_error({ auth = { client_id = "x", authority = "http://login.microsoftonline.com/common" } })
    config_error({ auth = { client_id = "x", authority = "not a url" } })
    config_error({ auth = { client_id = "x", authority = "https://user@host/t" } })
    assert.is_table(msal.PublicClientApplication.new({ auth = { client_id = "x",
      authority = "http://127.0.0.1:8080/realm", protocol_mode = "oidc" } }))
  end)
  it("refuses cache locations that are not there", function()
    config_error({ auth = { client_id = "x" }, cache = { location = "nowhere" } })
    config_error({ auth = { client_id = "x" }, cache = { location = "memory", path = "/x" } })
  end)
end)

describe("accounts", function()
  it("are listed, found and removed with their tokens", function()
    local app = app_with(F.signed_in())
    local accounts = app:get_all_accounts()
    assert.equal(1, #accounts)
    local a = accounts[1]
    assert.equal(F.HID, a.home_account_id)
    assert.equal(F.TENANT, a.tenant_id)
    assert.equal("test.user@example.com", a.username)
    assert.equal("Test User", a.id_token_claims.name)
    assert.equal(F.HID, app:get_account({ home_account_id = F.HID }).home_account_id)
    assert.equal(F.HID, app:get_account({ local_account_id = F.UID }).home_account_id)
    assert.equal(F.HID, app:get_account({ username = "TEST.user@example.com" }).home_account_id)
    assert.is_nil(app:get_account({ username = "nobody@example.com" }))
    assert.has_error(function() app:get_account({}) end)
    assert.is_nil(select(2, app:remove_account(a):await()))
    assert.same({}, app:get_all_accounts())
    local left = cjson.decode(app:get_token_cache():serialize())
    assert.same({}, left.AccessToken)
    assert.same({}, left.RefreshToken)
    assert.same({}, left.IdToken)
  end)
  it("removes tokens written under an alias environment too", function()
    local doc = F.signed_in()
    local at = F.access_token({ environment = "login.microsoftonline.com", secret = "alias" })
    doc.AccessToken[require("msal.core").store.key("AccessToken", at)] = at
    local app = app_with(doc)
    app:remove_account(app:get_all_accounts()[1]):await()
    assert.same({}, cjson.decode(app:get_token_cache():serialize()).AccessToken)
  end)
end)

describe("acquire_token_silent", function()
  it("serves the cached token with from_cache and the account", function()
    local app = app_with(F.signed_in())
    local account = app:get_all_accounts()[1]
    local r = assert(silent(app, { scopes = { "User.Read" }, account = account }))
    assert.equal("fake-access-token", r.access_token)
    assert.is_true(r.from_cache)
    assert.equal(tonumber(F.FUTURE), r.expires_on)
    assert.equal(F.HID, r.account.home_account_id)
    assert.equal(F.TENANT, r.tenant_id)
    assert.equal("Bearer", r.token_type)
    assert.same({ "User.Read", "openid", "profile", "email" }, r.scopes)
    assert.equal("Test User", r.id_token_claims.name)
    assert.matches("^[%w_-]+%.[%w_-]+%.", r.id_token)
  end)
  it("decodes a cached result's id_token_claims on first read, then keeps them as a field", function()
    local app = app_with(F.signed_in())
    local account = app:get_all_accounts()[1]
    local r = assert(silent(app, { scopes = { "User.Read" }, account = account }))
    assert.is_nil(rawget(r, "id_token_claims"))
    local claims = r.id_token_claims
    assert.equal("Test User", claims.name)
    assert.equal(claims, rawget(r, "id_token_claims"))
    assert.is_nil(r.no_such_field)
    -- a second hit serves the same decoded claims (one decode per id token)
    local r2 = assert(silent(app, { scopes = { "User.Read" }, account = account }))
    assert.equal(claims, r2.id_token_claims)
    -- the scopes are the result's own: changing them changes no later result
    table.insert(r.scopes, "Injected")
    assert.same({ "User.Read", "openid", "profile", "email" }, r2.scopes)
    assert.same({ "User.Read", "openid", "profile", "email" },
      assert(silent(app, { scopes = { "User.Read" }, account = account })).scopes)
  end)
  describe("keeps an account's hit record while other accounts' tokens change", function()
    -- ten accounts; the spy counts how often a hit has to ask the store
    local N = 10
    local function hid(i) return ("uid-%d.%s"):format(i, F.TENANT) end
    local function at(i, o)
      local t = { home_account_id = hid(i), secret = "at-" .. i }
      for k, v in pairs(o or {}) do t[k] = v end
      return F.access_token(t)
    end
    local app, accounts, asked
    before_each(function()
      local entries = { Account = {}, IdToken = {}, AccessToken = {} }
      for i = 1, N do
        entries.Account[i] = F.account({ home_account_id = hid(i), local_account_id = "uid-" .. i, username = "u" .. i })
        entries.IdToken[i] = F.id_token({ home_account_id = hid(i) })
        entries.AccessToken[i] = at(i)
      end
      app = app_with(F.doc(entries))
      accounts = {}
      for _, a in ipairs(app:get_all_accounts()) do accounts[a.home_account_id] = a end
      local store = app:get_token_cache().store
      local find = store.find_access_token
      asked = 0
      -- the store is a userdata: shadow its method in a proxy the cache uses
      app:get_token_cache().store = setmetatable({
        find_access_token = function(self, ...) asked = asked + 1; return find(store, ...) end,
      }, { __index = function(_, k)
        local v = store[k]
        if type(v) == "function" then return function(_, ...) return v(store, ...) end end
        return v
      end })
    end)
    local function hit(i)
      return assert(silent(app, { scopes = { "User.Read" }, account = accounts[hid(i)] }))
    end

    it("serves the others from their records after one account's token is replaced", function()
      for i = 1, N do assert.equal("at-" .. i, hit(i).access_token) end
      assert.equal(N, asked)
      local tc = app:get_token_cache()
      tc.store:put("AccessToken", at(3, { secret = "at-3-new" }))
      for i = 1, N do
        assert.equal(i == 3 and "at-3-new" or "at-" .. i, hit(i).access_token)
      end
      -- only account 3 (and any account sharing its stamp bucket) asked again
      assert.is_true(asked >= N + 1 and asked <= N + 2, tostring(asked))
      -- and the results carry the caller's current snapshot after the change
      assert.equal(accounts[hid(5)], hit(5).account)
    end)
    it("never serves a token removed from the store, nor one of a removed account", function()
      for i = 1, N do hit(i) end
      local tc = app:get_token_cache()
      local keys = tc.store:find("AccessToken", { home_account_id = hid(4) })
      assert.equal(1, #keys)
      tc.store:remove("AccessToken", keys[1])
      local _, err = silent(app, { scopes = { "User.Read" }, account = accounts[hid(4)] })
      assert.is_true(msal.is_interaction_required(err))
      app:remove_account(accounts[hid(6)])
      _, err = silent(app, { scopes = { "User.Read" }, account = accounts[hid(6)] })
      assert.is_true(msal.is_interaction_required(err))
      assert.equal("at-7", hit(7).access_token)
    end)
    it("reads everything again after a load", function()
      for i = 1, N do hit(i) end
      local tc = app:get_token_cache()
      local doc = cjson.decode(tc:serialize())
      for _, e in pairs(doc.AccessToken) do e.secret = e.secret .. "-loaded" end
      tc:deserialize(cjson.encode(doc))
      asked = 0
      for i = 1, N do assert.equal("at-" .. i .. "-loaded", hit(i).access_token) end
      assert.equal(N, asked)
    end)
  end)
  it("gives no id_token_claims for a cached token without an id token", function()
    local doc = F.signed_in()
    doc.IdToken = {}
    local app = app_with(doc)
    local r = assert(silent(app, { scopes = { "User.Read" }, account = app:get_all_accounts()[1] }))
    assert.equal("fake-access-token", r.access_token)
    assert.is_nil(r.id_token)
    assert.is_nil(r.id_token_claims)
    assert.is_nil(r.id_token_claims)
  end)
  it("serves a subset of the granted scopes, ignoring case and the default scopes", function()
    local app = app_with(F.signed_in({ target = "User.Read Mail.Read" }))
    local account = app:get_all_accounts()[1]
    for _, scopes in ipairs({ { "mail.read" }, { "User.Read", "Mail.Read" }, { "USER.READ", "openid", "offline_access" } }) do
      assert.is_true(assert(silent(app, { scopes = scopes, account = account })).from_cache)
    end
    local _, err = silent(app, { scopes = { "Mail.Send" }, account = account })
    assert.is_true(msal.is_interaction_required(err))
    assert.equal("consent_required", err.suberror)
  end)
  it("matches the authority's host through the cloud's aliases", function()
    local app = app_with(F.signed_in(), { auth = { authority = "https://login.microsoft.com/organizations" } })
    local r = assert(silent(app, { scopes = { "User.Read" }, account = app:get_all_accounts()[1] }))
    assert.equal("fake-access-token", r.access_token)
  end)
  it("uses a tenant id authority's realm, the account's for common and for a domain of unknown id", function()
    local app = app_with(F.signed_in(), { auth = { authority = "https://login.microsoftonline.com/" .. F.TENANT } })
    assert.is_table((silent(app, { scopes = { "User.Read" }, account = app:get_all_accounts()[1] })))
    app = app_with(F.signed_in(), { auth = { authority = "https://login.microsoftonline.com/contoso.example" } })
    assert.is_true(assert(silent(app, { scopes = { "User.Read" }, account = app:get_all_accounts()[1] })).from_cache)
    app = app_with(F.signed_in(), { auth = { authority = "https://login.microsoftonline.com/00000000-0000-0000-bbbb-000000000099" } })
    local _, err = silent(app, { scopes = { "User.Read" }, account = app:get_all_accounts()[1] })
    assert.equal("invalid_grant", err.error_code) -- not from the cache: the refresh token was tried
    assert.equal(1, app.config.system.transport.n)
  end)
  it("treats a token within the renewal offset as expired", function()
    local soon = tostring(NOW + 200)
    local function no_refresh_token(at)
      return F.doc({ Account = { F.account() }, IdToken = { F.id_token() }, AccessToken = { F.access_token(at) } })
    end
    local app = app_with(no_refresh_token({ expires_on = soon }))
    local account = app:get_all_accounts()[1]
    local _, err = silent(app, { scopes = { "User.Read" }, account = account })
    assert.is_true(msal.is_interaction_required(err))
    assert.equal("no_tokens_found", err.error_code)
    app = app_with(no_refresh_token({ expires_on = soon }), { system = { token_renewal_offset = 60 } })
    assert.is_table((silent(app, { scopes = { "User.Read" }, account = account })))
  end)
  describe("repeated hits (served from a record of the last hit)", function()
    local function clocked(doc, extra)
      local now = { NOW }
      extra = extra or {}
      extra.system = { clock = function() return now[1] end }
      return app_with(doc, extra), now
    end
    it("give fresh result tables that do not share what a caller may change", function()
      local app = app_with(F.signed_in())
      local account = app:get_all_accounts()[1]
      local r1 = assert(silent(app, { scopes = { "User.Read" }, account = account, correlation_id = "c1" }))
      table.insert(r1.scopes, "Mail.Send")
      r1.access_token = "changed"
      local r2 = assert(silent(app, { scopes = { "User.Read" }, account = account, correlation_id = "c2" }))
      assert.are_not.equal(r1, r2)
      assert.equal("fake-access-token", r2.access_token)
      assert.same({ "User.Read", "openid", "profile", "email" }, r2.scopes)
      assert.equal("c2", r2.correlation_id)
      assert.equal("Test User", r2.id_token_claims.name)
      assert.is_true(rawequal(account, r2.account)) -- the snapshot the caller passed
      -- an account table the caller built: served, with the cache's snapshot
      local built = { home_account_id = F.HID, environment = F.ENV, tenant_id = F.TENANT }
      for _ = 1, 2 do
        local r = assert(silent(app, { scopes = { "User.Read" }, account = built }))
        assert.equal("fake-access-token", r.access_token)
        assert.equal("test.user@example.com", r.account.username)
      end
    end)
    it("stop at the renewal offset and at refresh_on as the first hit would", function()
      local app, now = clocked(F.signed_in({ expires_on = tostring(NOW + 1000), refresh_on = tostring(NOW + 500) }))
      local fake = app.config.system.transport
      local account = app:get_all_accounts()[1]
      assert.is_true(assert(silent(app, { scopes = { "User.Read" }, account = account })).from_cache)
      now[1] = NOW + 400
      assert.is_true(assert(silent(app, { scopes = { "User.Read" }, account = account })).from_cache)
      assert.equal(0, fake.n)
      now[1] = NOW + 501 -- past refresh_on: a refresh is tried, the cached token still served
      assert.is_true(assert(silent(app, { scopes = { "User.Read" }, account = account })).from_cache)
      assert.equal(1, fake.n)
      now[1] = NOW + 701 -- within 300 s of expiry: not served
      local _, err = silent(app, { scopes = { "User.Read" }, account = account })
      assert.equal("invalid_grant", err.error_code)
      assert.equal(2, fake.n)
    end)
    it("see a token written since, and a token removed since", function()
      local app = app_with(F.signed_in())
      local account = app:get_all_accounts()[1]
      assert.equal("fake-access-token", assert(silent(app, { scopes = { "User.Read" }, account = account })).access_token)
      app:get_token_cache():deserialize(cjson.encode(F.signed_in({ secret = "newer-token" })))
      assert.equal("newer-token", assert(silent(app, { scopes = { "User.Read" }, account = account })).access_token)
      local doc = F.signed_in()
      doc.AccessToken = {}
      app:get_token_cache():deserialize(cjson.encode(doc))
      local _, err = silent(app, { scopes = { "User.Read" }, account = account })
      assert.is_true(msal.is_interaction_required(err))
    end)
    it("follow the account's fields, not the table", function()
      local app = app_with(F.signed_in())
      local account = app:get_all_accounts()[1]
      assert.is_table((silent(app, { scopes = { "User.Read" }, account = account })))
      account.home_account_id = "someone-else." .. F.TENANT -- a caller changed the snapshot
      local _, err = silent(app, { scopes = { "User.Read" }, account = account })
      assert.is_true(msal.is_interaction_required(err))
      account.home_account_id = F.HID
      assert.is_table((silent(app, { scopes = { "User.Read" }, account = account })))
      account.tenant_id = "other-tenant"
      _, err = silent(app, { scopes = { "User.Read" }, account = account })
      assert.equal("invalid_grant", err.error_code) -- that realm has no cached token
    end)
  end)
  it("skips the cached token for force_refresh and for claims", function()
    local app = app_with(F.signed_in())
    local fake = app.config.system.transport
    local account = app:get_all_accounts()[1]
    local _, err = silent(app, { scopes = { "User.Read" }, account = account, force_refresh = true })
    assert.equal("invalid_grant", err.error_code) -- it went to the network
    assert.equal(1, fake.n)
    _, err = silent(app, { scopes = { "User.Read" }, account = account, claims = '{"access_token":{"nbf":{"essential":true}}}' })
    assert.equal("invalid_grant", err.error_code)
    assert.equal(2, fake.n)
    assert.equal('{"access_token":{"nbf":{"essential":true}}}', fake.requests[2].form.claims)
    assert.is_true(assert(silent(app, { scopes = { "User.Read" }, account = account, claims = "{}" })).from_cache)
    assert.equal(2, fake.n)
  end)
  it("refuses scopes of two resources, naming both", function()
    local app = app_with(F.signed_in())
    local _, err = silent(app, { scopes = { "User.Read", "api://my-api/Data.Read" }, account = app:get_all_accounts()[1] })
    assert.equal("ClientConfigurationError", err.name)
    assert.matches("https://graph.microsoft.com", err.error_message, 1, true)
    assert.matches("api://my-api", err.error_message, 1, true)
  end)
  it("needs an account and well-formed scopes", function()
    local app = app_with(F.signed_in())
    local _, err = silent(app, { scopes = { "User.Read" } })
    assert.equal("ClientAuthError", err.name)
    assert.equal("no_account_in_silent_request", err.error_code)
    _, err = silent(app, { scopes = { "User Read" }, account = app:get_all_accounts()[1] })
    assert.equal("ClientConfigurationError", err.name)
    -- one scope spelled like a checked two-scope list is still refused
    silent(app, { scopes = { "User.Read", "Mail.Read" }, account = app:get_all_accounts()[1] })
    _, err = silent(app, { scopes = { "User.Read Mail.Read" }, account = app:get_all_accounts()[1] })
    assert.equal("invalid_scopes", err and err.error_code)
    _, err = silent(app, "User.Read")
    assert.equal("ClientConfigurationError", err.name)
    -- elements that are not strings: the same typed error, naming the place
    for _, bad in ipairs({ { {} }, { "User.Read", true }, { 5 } }) do
      _, err = silent(app, { scopes = bad, account = app:get_all_accounts()[1] })
      assert.equal("ClientConfigurationError", err.name)
      assert.equal("invalid_scopes", err.error_code)
      assert.matches("scope " .. #bad .. " ", err.error_message, 1, true)
    end
  end)
  it("rejects with InteractionRequiredAuthError on an empty cache", function()
    local app = app_with()
    local p = app:acquire_token_silent({ scopes = { "User.Read" }, account = { home_account_id = F.HID, environment = F.ENV, tenant_id = F.TENANT } })
    local seen
    p:catch(function(e) seen = e end)
    assert.is_nil(seen) -- callbacks never run synchronously
    msal.run()
    assert.equal("InteractionRequiredAuthError", seen.name)
    assert.matches("no_tokens_found", tostring(seen), 1, true)
  end)
  it("chains like the seed's promise pattern, and awaits inside msal.async", function()
    local app = app_with(F.signed_in())
    local account = app:get_all_accounts()[1]
    local order = {}
    app:acquire_token_silent({ scopes = { "User.Read" }, account = account })
      :next(function(r) order[#order + 1] = "silent:" .. r.access_token; return r end)
      :catch(function() order[#order + 1] = "interactive" end)
      :finally(function() order[#order + 1] = "done" end)
    order[#order + 1] = "sync"
    local got
    msal.async(function()
      local r = app:acquire_token_silent({ scopes = { "User.Read" }, account = account }):await()
      local _, err = app:acquire_token_silent({ scopes = { "Nope.Read" }, account = account }):await()
      got = { r.access_token, err.error_code }
    end)
    msal.run()
    assert.same({ "sync", "silent:fake-access-token", "done" }, order)
    assert.same({ "fake-access-token", "invalid_grant" }, got)
  end)
  it("emits start and success or failure events, and survives a throwing callback", function()
    local app = app_with(F.signed_in())
    local account = app:get_all_accounts()[1]
    local seen = {}
    app:add_event_callback(function() error("callback bug") end)
    local unsubscribe = app:on(msal.EventType.ACQUIRE_TOKEN_SUCCESS, function(m) seen[#seen + 1] = m end)
    local id = app:add_event_callback(function(m) seen[#seen + 1] = m.event_type end)
    assert.is_table((silent(app, { scopes = { "User.Read" }, account = account })))
    silent(app, { scopes = { "Nope.Read" }, account = account })
    assert.same(msal.EventType.ACQUIRE_TOKEN_START, seen[1])
    assert.equal("silent", seen[2].interaction_type)
    assert.is_nil(seen[2].payload.access_token) -- no raw token in events without PII logging
    assert.is_table(seen[2].payload.account)
    assert.same({ msal.EventType.ACQUIRE_TOKEN_SUCCESS, msal.EventType.ACQUIRE_TOKEN_START,
      msal.EventType.ACQUIRE_TOKEN_NETWORK_START, msal.EventType.ACQUIRE_TOKEN_FAILURE },
      { seen[3], seen[4], seen[5], seen[6] })
    unsubscribe()
    assert.is_true(app:remove_event_callback(id))
    local n = #seen
    silent(app, { scopes = { "User.Read" }, account = account })
    assert.equal(n, #seen)
  end)
end)

describe("the token cache", function()
  it("refuses a malformed document with a ClientAuthError that names entry and field", function()
    local app = app_with(F.signed_in())
    local tc = app:get_token_cache()
    local before = tc:serialize()
    local doc = F.signed_in({ expires_on = 12 })
    local ok, err = pcall(tc.deserialize, tc, cjson.encode(doc))
    assert.is_false(ok)
    assert.equal("ClientAuthError", err.name)
    assert.matches('AccessToken entry "', err.error_message, 1, true)
    assert.matches('field "expires_on"', err.error_message, 1, true)
    assert.equal(before, tc:serialize())
    ok, err = pcall(tc.deserialize, tc, "{oops")
    assert.matches("byte 1", err.error_message, 1, true)
    assert.equal(before, tc:serialize())
  end)
  it("reads the example cache file shipped for the README", function()
    local app = app_with(assert(require("files").read((os.getenv("MSAL_TEST_ROOT") or ".") .. "/examples/cache.json")))
    local r = assert(silent(app, { scopes = { "User.Read" }, account = app:get_all_accounts()[1] }))
    assert.equal("fake-access-token", r.access_token)
  end)
end)

describe("cloud_discovery_metadata", function()
  it("makes hosts one environment and caches under the preferred host, with no discovery call", function()
    local meta = cjson.encode({ ["api-version"] = "1.1", metadata = { {
      preferred_network = "login.contoso-cloud.example", preferred_cache = "cache.contoso-cloud.example",
      aliases = { "login.contoso-cloud.example", "cache.contoso-cloud.example", "sts.contoso-cloud.example" } } } })
    local doc = F.signed_in()
    for _, section in ipairs({ "Account", "IdToken", "AccessToken", "RefreshToken" }) do
      for _, e in pairs(doc[section]) do e.environment = "cache.contoso-cloud.example" end
    end
    local authority = "https://sts.contoso-cloud.example/" .. F.TENANT
    local app = msal.PublicClientApplication.new({
      auth = { client_id = F.CLIENT, authority = authority, cloud_discovery_metadata = meta,
        authority_metadata = cjson.encode({ issuer = authority .. "/v2.0", token_endpoint = authority .. "/token",
          authorization_endpoint = authority .. "/authorize" }) },
      system = { clock = function() return NOW end, transport = require("fake_transport").new() },
    })
    assert.equal("cache.contoso-cloud.example", app.authority.cache_env)
    app:get_token_cache():deserialize(cjson.encode(doc))
    local r = assert(app:acquire_token_silent({ scopes = { "User.Read" }, account = app:get_all_accounts()[1] }):await())
    assert.is_true(r.from_cache)
    assert.equal(0, app.config.system.transport.n)
    local ok, err = pcall(msal.PublicClientApplication.new, { auth = { client_id = "x", cloud_discovery_metadata = "{}" } })
    assert.is_false(ok)
    assert.equal("invalid_cloud_discovery_metadata", err.error_code)
  end)
end)

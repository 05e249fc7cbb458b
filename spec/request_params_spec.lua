-- MSAL's request options against the local Entra-like authority, which logs
-- every request it answers: extra query/body parameters, cache_lookup_policy,
-- the refresh token's own expiry, sid, max_age, the caller's state, a
-- per-request open_browser and configurable default scopes.
local msal = require("msal")
local entra = require("entra")
local network = require("msal.network")

local REDIRECT = "http://localhost:8400/callback"
local P = msal.CacheLookupPolicy

-- An app whose clock the spec moves (skew[1] seconds ahead).
local function new_app(extra_auth)
  local skew = { 0 }
  local auth = { client_id = "lua-msal-app", authority = entra.base() .. "/" .. entra.TENANT, redirect_uri = REDIRECT }
  for k, v in pairs(extra_auth or {}) do auth[k] = v end
  local app = msal.PublicClientApplication.new({ auth = auth,
    system = { clock = function() return os.time() + skew[1] end } })
  return app, skew
end

local function signed_in(extra_auth)
  local app, skew = new_app(extra_auth)
  entra.sign_in(app)
  return app, app:get_all_accounts()[1], skew
end

local function drop_access_tokens(app)
  local store = app:get_token_cache().store
  for _, k in ipairs(store:find("AccessToken", {})) do store:remove("AccessToken", k) end
end

local function query_of(url)
  return network.form_decode(url:match("%?(.*)$"))
end

-- What the browser lands on after the authority's page (a 302).
local function browse(app, url)
  local res = assert(network.transport(app):send({ method = "GET", url = url }):await())
  assert.equal(302, res.status)
  return res.headers.location
end

local function token_requests(grant)
  local out = {}
  for _, r in ipairs(entra.requests("token")) do
    if r.form.grant_type == grant then out[#out + 1] = r end
  end
  return out
end

describe("request options", function()
  before_each(function() entra.reset() end)

  describe("extra parameters", function()
    it("go to the authorize URL, the token URL and the token body", function()
      local app = new_app()
      local r = assert(app:acquire_token_redirect({ scopes = { "User.Read" },
        extra_query_parameters = { dc = "ESTS-PUB-WEULR1-AZ1-FD000-TEST1", instance_aware = "true" },
        extra_body_parameters = { audience = "https://api.example.com" } }):await())
      local q = query_of(r.url)
      assert.equal("ESTS-PUB-WEULR1-AZ1-FD000-TEST1", q.dc)
      assert.equal("true", q.instance_aware)
      assert(app:handle_redirect_promise(browse(app, r.url)):await())
      local redeemed = token_requests("authorization_code")[1]
      assert.equal("ESTS-PUB-WEULR1-AZ1-FD000-TEST1", redeemed.query.dc)
      assert.equal("https://api.example.com", redeemed.form.audience)
      -- a refresh: the alias token_body_parameters, and query parameters
      drop_access_tokens(app)
      assert(app:acquire_token_silent({ scopes = { "User.Read" }, account = app:get_all_accounts()[1],
        extra_query_parameters = { slice = "testslice" }, token_body_parameters = { audience = "aud2", n = 5 } }):await())
      local refreshed = token_requests("refresh_token")[1]
      assert.equal("testslice", refreshed.query.slice)
      assert.equal("aud2", refreshed.form.audience)
      assert.equal("5", refreshed.form.n)
    end)

    it("never override the protocol's own parameters", function()
      local app, account = signed_in()
      drop_access_tokens(app)
      entra.reset()
      for _, req in ipairs({
        { extra_query_parameters = { client_id = "other-app" } },
        { extra_body_parameters = { grant_type = "password" } },
        { token_body_parameters = { refresh_token = "stolen" } },
        { extra_body_parameters = { scope = "x" } },
      }) do
        req.scopes, req.account = { "User.Read" }, account
        local _, err = app:acquire_token_silent(req):await()
        assert.equal("ClientConfigurationError", err.name)
        assert.equal("reserved_parameter", err.error_code)
      end
      local _, err = app:acquire_token_redirect({ extra_query_parameters = { state = "mine" } }):await()
      assert.equal("reserved_parameter", err.error_code)
      assert.matches("use the request's 'state'", err.error_message, 1, true)
      _, err = app:acquire_token_redirect({ extra_query_parameters = { code_challenge = "x" } }):await()
      assert.equal("reserved_parameter", err.error_code)
      assert.same({}, entra.requests("token"))
    end)

    it("make separate token requests when they differ (no shared refresh)", function()
      local app, account = signed_in()
      drop_access_tokens(app)
      local a = app:acquire_token_silent({ scopes = { "User.Read" }, account = account,
        extra_body_parameters = { audience = "a" } })
      local b = app:acquire_token_silent({ scopes = { "User.Read" }, account = account,
        extra_body_parameters = { audience = "b" } })
      assert(a:await())
      assert(b:await())
      assert.equal(2, entra.refresh_requests())
    end)
  end)

  describe("cache_lookup_policy", function()
    it("has msal-browser's values", function()
      assert.same({ Default = 0, AccessToken = 1, AccessTokenAndRefreshToken = 2, RefreshToken = 3,
        RefreshTokenAndNetwork = 4, Skip = 5 }, P)
    end)

    it("decides between the cached token, the refresh token and nothing", function()
      local app, account = signed_in()
      local function silent(policy)
        return app:acquire_token_silent({ scopes = { "User.Read" }, account = account, cache_lookup_policy = policy }):await()
      end
      -- a cached token: the cache policies answer from it, the refresh ones refresh
      for _, policy in ipairs({ P.Default, P.AccessToken, P.AccessTokenAndRefreshToken }) do
        assert.is_true(assert(silent(policy)).from_cache)
      end
      assert.equal(0, entra.refresh_requests())
      assert.is_false(assert(silent(P.RefreshToken)).from_cache)
      assert.equal(1, entra.refresh_requests())
      assert.is_false(assert(silent(P.RefreshTokenAndNetwork)).from_cache)
      assert.equal(2, entra.refresh_requests())
      -- Skip: neither; msal-browser's next step is a hidden iframe, ours the user
      local _, err = silent(P.Skip)
      assert.equal("InteractionRequiredAuthError", err.name)
      assert.equal(2, entra.refresh_requests())
      -- no cached token: AccessToken stops there, as msal-browser does
      drop_access_tokens(app)
      _, err = silent(P.AccessToken)
      assert.equal("ClientAuthError", err.name)
      assert.equal("token_refresh_required", err.error_code)
      assert.equal(2, entra.refresh_requests())
      assert.is_false(assert(silent(P.AccessTokenAndRefreshToken)).from_cache)
      assert.equal(3, entra.refresh_requests())
    end)

    it("lets acquire_token go interactive at once with Skip", function()
      local app, account = signed_in()
      local r = assert(app:acquire_token({ scopes = { "User.Read" }, account = account, cache_lookup_policy = P.Skip },
        { interaction = "redirect" }):await())
      assert.matches("/oauth2/v2.0/authorize?", r.url, 1, true)
      assert.equal(0, entra.refresh_requests())
    end)
  end)

  describe("the refresh token's own expiry", function()
    it("is refresh_token_expired, with no request, once it is within the offset", function()
      entra.config({ refresh_token_expires_in = 3600 })
      local app, account, skew = signed_in()
      drop_access_tokens(app)
      local req = { scopes = { "User.Read" }, account = account }
      -- 3600 s left: fine with the default offset (300 s), not with 4000
      req.refresh_token_expiration_offset = 4000
      local _, err = app:acquire_token_silent(req):await()
      assert.equal("InteractionRequiredAuthError", err.name)
      assert.equal("refresh_token_expired", err.error_code)
      assert.equal(0, entra.refresh_requests())
      req.refresh_token_expiration_offset = nil
      assert(app:acquire_token_silent(req):await())
      assert.equal(1, entra.refresh_requests())
      -- the new refresh token has a new expiry; past it (less the offset)
      -- nothing is sent either
      drop_access_tokens(app)
      skew[1] = 3600 - 299
      _, err = app:acquire_token_silent(req):await()
      assert.equal("refresh_token_expired", err.error_code)
      assert.equal(1, entra.refresh_requests())
      -- acquire_token takes it as interaction required
      local r = assert(app:acquire_token(req, { interaction = "redirect" }):await())
      assert.matches("/oauth2/v2.0/authorize?", r.url, 1, true)
    end)
  end)

  describe("authorize parameters", function()
    it("send sid with prompt=none instead of the login hint, as MSAL does", function()
      local app = new_app()
      local q = query_of(assert(app:acquire_token_redirect({ scopes = { "User.Read" }, sid = "sid-1",
        prompt = "none", login_hint = "test.user@example.com" }):await()).url)
      assert.equal("sid-1", q.sid)
      assert.is_nil(q.login_hint)
      q = query_of(assert(app:acquire_token_redirect({ scopes = { "User.Read" }, sid = "sid-1",
        login_hint = "test.user@example.com" }):await()).url)
      assert.is_nil(q.sid)
      assert.equal("test.user@example.com", q.login_hint)
    end)

    it("send max_age and check the id token's auth_time", function()
      local app = new_app()
      local r = assert(app:acquire_token_redirect({ scopes = { "User.Read" }, max_age = 0 }):await())
      assert.equal("0", query_of(r.url).max_age)
      -- a fresh sign-in: auth_time is now
      assert(app:handle_redirect_promise(browse(app, r.url)):await())
      -- an old sign-in
      app = new_app()
      entra.next({ endpoint = "token", id_token_claims = { auth_time = os.time() - 4000 } })
      r = assert(app:acquire_token_redirect({ scopes = { "User.Read" }, max_age = 3600 }):await())
      local _, err = app:handle_redirect_promise(browse(app, r.url)):await()
      assert.equal("ClientAuthError", err.name)
      assert.equal("max_age_transpired", err.error_code)
      assert.same({}, app:get_all_accounts()) -- nothing of it was cached
      -- no auth_time at all
      entra.next({ endpoint = "token", id_token_claims = { auth_time = require("cjson").null } })
      r = assert(app:acquire_token_redirect({ scopes = { "User.Read" }, max_age = 3600 }):await())
      _, err = app:handle_redirect_promise(browse(app, r.url)):await()
      assert.equal("auth_time_not_found", err.error_code)
      assert.same({}, app:get_all_accounts())
    end)
  end)

  describe("the caller's state", function()
    it("rides after the library's state and comes back in the result", function()
      local app = new_app()
      local r = assert(app:acquire_token_redirect({ scopes = { "User.Read" }, state = "page=/inbox|tab=2" }):await())
      local sent = query_of(r.url).state
      assert.equal(r.state, sent)
      assert.matches("^[%w%-%._~]+|page=/inbox|tab=2$", sent)
      local result = assert(app:handle_redirect_promise(browse(app, r.url)):await())
      assert.equal("page=/inbox|tab=2", result.state)
      -- without one, the result has none
      r = assert(app:acquire_token_redirect({ scopes = { "User.Read" } }):await())
      assert.is_nil(assert(app:handle_redirect_promise(browse(app, r.url)):await()).state)
    end)

    it("is checked whole: a changed user part is state_mismatch", function()
      local app = new_app()
      local r = assert(app:acquire_token_redirect({ scopes = { "User.Read" }, state = "mine" }):await())
      local back = browse(app, r.url)
      local lib = r.state:match("^[^|]+")
      local tampered = back:gsub("state=[^&]+", (("state=" .. network.url_encode(lib .. "|theirs")):gsub("%%", "%%%%")))
      local _, err = app:handle_redirect_promise(tampered):await()
      assert.equal("state_mismatch", err.error_code)
      assert.same({}, token_requests("authorization_code"))
    end)

    it("that is not a string, or has no library part, is unknown: state_not_found", function()
      local app = new_app()
      for _, state in ipairs({ {}, "|mine", "" }) do
        local _, err = app:handle_redirect_promise({ code = "c", state = state }):await()
        assert.equal("state_not_found", err.error_code)
      end
    end)

    it("and a per-request open_browser work in the popup flow", function()
      local app = msal.PublicClientApplication.new({
        auth = { client_id = "lua-msal-app", authority = entra.base() .. "/" .. entra.TENANT },
        system = { loopback_timeout = 10, open_browser = function() error("the configured browser was used") end },
      })
      local opened
      local r = assert(app:acquire_token_popup({ scopes = { "User.Read" }, state = "popup-state",
        open_browser = function(url)
          opened = url
          msal.async(function()
            local t = require("msal.transport.curl").new()
            local res = assert(t:send({ method = "GET", url = url }):await())
            t:send({ method = "GET", url = res.headers.location }):await()
            t:close()
          end)
        end }):await())
      assert.equal("|popup-state", query_of(opened).state:match("|.*$"))
      assert.equal("popup-state", r.state)
    end)
  end)

  describe("open_browser", function()
    it("per request opens logout_popup's end-session URL too", function()
      local app = msal.PublicClientApplication.new({
        auth = { client_id = "lua-msal-app", authority = entra.base() .. "/" .. entra.TENANT },
        system = { open_browser = function() error("the configured browser was used") end },
      })
      entra.sign_in(app)
      local opened
      local r = assert(app:logout_popup({ account = app:get_all_accounts()[1],
        open_browser = function(url) opened = url end }):await())
      assert.equal(r.url, opened)
      assert.matches("/oauth2/v2.0/logout?", opened, 1, true)
    end)
  end)

  describe("auth.oidc_options.default_scopes", function()
    it("replace openid profile offline_access on every request, openid kept", function()
      local app = new_app({ oidc_options = { default_scopes = { "profile" } } })
      local r = assert(app:acquire_token_redirect({ scopes = { "User.Read" } }):await())
      assert.equal("User.Read openid profile", query_of(r.url).scope)
      assert(app:handle_redirect_promise(browse(app, r.url)):await())
      assert.equal("User.Read openid profile", token_requests("authorization_code")[1].form.scope)
    end)

    it("keep offline_access when listed, and the refresh works", function()
      local app = new_app({ oidc_options = { default_scopes = { "openid", "offline_access" } } })
      local r = assert(app:acquire_token_redirect({ scopes = { "User.Read" } }):await())
      assert.equal("User.Read openid offline_access", query_of(r.url).scope)
      assert(app:handle_redirect_promise(browse(app, r.url)):await())
      drop_access_tokens(app)
      assert(app:acquire_token_silent({ scopes = { "User.Read" }, account = app:get_all_accounts()[1] }):await())
      assert.equal("User.Read openid offline_access", token_requests("refresh_token")[1].form.scope)
    end)

    it("are checked", function()
      for _, bad in ipairs({ "openid", { 1 }, { "a b" } }) do
        local ok, err = pcall(msal.PublicClientApplication.new,
          { auth = { client_id = "x", oidc_options = { default_scopes = bad } } })
        assert.is_false(ok)
        assert.equal("ClientConfigurationError", err.name)
      end
      local ok, err = pcall(msal.PublicClientApplication.new, { auth = { client_id = "x", oidc_options = { defaultScopes = {} } } })
      assert.is_false(ok)
      assert.matches("use 'auth.oidc_options.default_scopes'", err.error_message, 1, true)
    end)
  end)
end)

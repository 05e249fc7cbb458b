-- The authorization-code flow in two calls for apps with their own redirect
-- handler (get_auth_code_url, acquire_token_by_code), and the migration of a
-- refresh token from elsewhere (acquire_token_by_refresh_token), against the
-- local Entra-like authority.
local msal = require("msal")
local entra = require("entra")
local network = require("msal.network")

local REDIRECT = "http://localhost:8400/callback"

local function new_app(client_id)
  return msal.PublicClientApplication.new({
    auth = { client_id = client_id or "lua-msal-app", authority = entra.base() .. "/" .. entra.TENANT,
      redirect_uri = REDIRECT },
  })
end

local function query_of(url)
  return network.form_decode(url:match("%?(.*)$"))
end

-- The code the authority sends back to the app's redirect handler.
local function code_for(app, url)
  local res = assert(network.transport(app):send({ method = "GET", url = url }):await())
  assert.equal(302, res.status)
  return query_of(res.headers.location)
end

describe("get_auth_code_url and acquire_token_by_code", function()
  before_each(function() entra.reset() end)

  it("make the URL from the caller's PKCE, state and nonce, then redeem and cache", function()
    local app = new_app()
    local pkce = msal.pkce()
    assert.equal("S256", pkce.method)
    assert.equal(43, #pkce.verifier)
    local url = assert(app:get_auth_code_url({ scopes = { "User.Read" }, code_challenge = pkce.challenge,
      state = "app-state-1", nonce = "app-nonce-1", login_hint = "test.user@example.com",
      extra_query_parameters = { dc = "x1" } }):await())
    assert.is_string(url)
    local q = query_of(url)
    assert.equal(pkce.challenge, q.code_challenge)
    assert.equal("S256", q.code_challenge_method)
    assert.equal("app-state-1", q.state) -- as given: the app's handler checks it
    assert.equal("app-nonce-1", q.nonce)
    assert.equal(REDIRECT, q.redirect_uri)
    assert.equal("User.Read openid profile offline_access", q.scope)
    assert.equal("x1", q.dc)
    local back = code_for(app, url)
    assert.equal("app-state-1", back.state)
    local r = assert(app:acquire_token_by_code({ code = back.code, code_verifier = pkce.verifier,
      scopes = { "User.Read" }, nonce = "app-nonce-1", extra_body_parameters = { audience = "aud" } }):await())
    assert.is_false(r.from_cache)
    assert.equal("test.user@example.com", r.account.username)
    assert.equal("app-nonce-1", r.id_token_claims.nonce)
    local redeemed = entra.requests("token")[1]
    assert.equal(pkce.verifier, redeemed.form.code_verifier)
    assert.equal("aud", redeemed.form.audience)
    -- cached like any other sign-in
    local again = assert(app:acquire_token_silent({ scopes = { "User.Read" }, account = app:get_all_accounts()[1] }):await())
    assert.is_true(again.from_cache)
    assert.equal(r.access_token, again.access_token)
  end)

  it("refuse a URL without PKCE, and the plain method", function()
    local app = new_app()
    local _, err = app:get_auth_code_url({ scopes = { "User.Read" } }):await()
    assert.equal("ClientConfigurationError", err.name)
    assert.equal("pkce_required", err.error_code)
    _, err = app:get_auth_code_url({ code_challenge = "abc", code_challenge_method = "plain" }):await()
    assert.equal("ClientConfigurationError", err.name)
    assert.matches("S256", err.error_message, 1, true)
  end)

  it("reject a wrong verifier or nonce, and a missing code, caching nothing", function()
    local app = new_app()
    local pkce = msal.pkce()
    local url = assert(app:get_auth_code_url({ scopes = { "User.Read" }, code_challenge = pkce.challenge,
      nonce = "n1" }):await())
    local _, err = app:acquire_token_by_code({ code = code_for(app, url).code, code_verifier = msal.pkce().verifier,
      scopes = { "User.Read" } }):await()
    assert.equal("ServerError", err.name)
    assert.equal("invalid_grant", err.error_code)
    url = assert(app:get_auth_code_url({ scopes = { "User.Read" }, code_challenge = pkce.challenge,
      nonce = "n1" }):await())
    _, err = app:acquire_token_by_code({ code = code_for(app, url).code, code_verifier = pkce.verifier,
      scopes = { "User.Read" }, nonce = "n2" }):await()
    assert.equal("nonce_mismatch", err.error_code)
    _, err = app:acquire_token_by_code({ code_verifier = pkce.verifier }):await()
    assert.equal("ClientConfigurationError", err.name)
    assert.same({}, app:get_all_accounts())
  end)

  it("need a redirect URI from the request or the configuration", function()
    local app = msal.PublicClientApplication.new({
      auth = { client_id = "lua-msal-app", authority = entra.base() .. "/" .. entra.TENANT } })
    local _, err = app:get_auth_code_url({ code_challenge = msal.pkce().challenge }):await()
    assert.equal("redirect_uri_empty", err.error_code)
    local url = assert(app:get_auth_code_url({ code_challenge = msal.pkce().challenge,
      redirect_uri = "http://localhost:9/x" }):await())
    assert.equal("http://localhost:9/x", query_of(url).redirect_uri)
  end)
end)

describe("acquire_token_by_refresh_token", function()
  before_each(function() entra.reset() end)

  it("redeems a refresh token from elsewhere and caches the account and its tokens", function()
    -- the refresh token another library holds for this app
    local elsewhere = new_app()
    entra.sign_in(elsewhere)
    local store = elsewhere:get_token_cache().store
    local rt = store:get("RefreshToken", store:find("RefreshToken", {})[1]).secret

    local app = new_app()
    local r = assert(app:acquire_token_by_refresh_token({ refresh_token = rt, scopes = { "User.Read" } }):await())
    assert.is_false(r.from_cache)
    assert.equal("test.user@example.com", r.account.username)
    assert.equal(entra.UID .. "." .. entra.TENANT, r.account.home_account_id)
    assert.equal(1, entra.refresh_requests())
    assert.equal(rt, entra.requests("token")[2].form.refresh_token)
    -- from now on the cache answers, and refreshes with the new refresh token
    local account = assert(app:get_all_accounts()[1])
    assert.is_true(assert(app:acquire_token_silent({ scopes = { "User.Read" }, account = account }):await()).from_cache)
    local cached_rt = app:get_token_cache().store
    cached_rt = cached_rt:get("RefreshToken", cached_rt:find("RefreshToken", {})[1]).secret
    assert.are_not.equal(rt, cached_rt)
    assert.is_false(assert(app:acquire_token_silent({ scopes = { "User.Read" }, account = account,
      force_refresh = true }):await()).from_cache)
    assert.equal(cached_rt, entra.requests("token")[3].form.refresh_token)
  end)

  it("rejects a bad refresh token with the server's error and caches nothing", function()
    local app = new_app()
    local _, err = app:acquire_token_by_refresh_token({ refresh_token = "rt.unknown", scopes = { "User.Read" } }):await()
    assert.equal("ServerError", err.name)
    assert.equal("invalid_grant", err.error_code)
    entra.next({ endpoint = "token", canned = "bad_token" })
    _, err = app:acquire_token_by_refresh_token({ refresh_token = "rt.x", scopes = { "User.Read" } }):await()
    assert.equal("InteractionRequiredAuthError", err.name)
    assert.same({}, app:get_all_accounts())
    _, err = app:acquire_token_by_refresh_token({ scopes = { "User.Read" } }):await()
    assert.equal("ClientConfigurationError", err.name)
    _, err = app:acquire_token_by_refresh_token({ refresh_token = "rt.x" }):await()
    assert.equal("ClientConfigurationError", err.name)
  end)
end)

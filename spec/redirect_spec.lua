-- acquire_token_redirect / handle_redirect_promise against the local
-- Entra-like authority; the "browser" is a plain HTTP GET of the authorize
-- URL, whose 302 carries the redirect back.
local msal = require("msal")
local entra = require("entra")
local network = require("msal.network")

local REDIRECT = "http://localhost:8400/callback"

local function new_app()
  return msal.PublicClientApplication.new({
    auth = { client_id = "lua-msal-app", authority = entra.base() .. "/" .. entra.TENANT, redirect_uri = REDIRECT },
  })
end

-- What the browser would land on after the authority's page.
local function browse(app, url)
  local res = assert(require("msal.network").transport(app):send({ method = "GET", url = url }):await())
  assert.equal(302, res.status)
  return res.headers.location
end

local function codes_redeemed() return #entra.grant_forms("authorization_code") end

describe("redirect flow", function()
  before_each(function() entra.reset() end)

  it("builds the authorize URL with PKCE, state, nonce and MSAL's parameters", function()
    local app = new_app()
    local r = assert(app:acquire_token_redirect({ scopes = { "User.Read" }, extra_scopes_to_consent = { "Mail.Read" },
      prompt = "login", login_hint = "test.user@example.com", domain_hint = "example.com",
      claims = '{"id_token":{"auth_time":{"essential":true}}}' }):await())
    local q = network.form_decode(r.url:match("%?(.*)$"))
    assert.equal(r.state, q.state)
    assert.equal("lua-msal-app", q.client_id)
    assert.equal("code", q.response_type)
    assert.equal("S256", q.code_challenge_method)
    assert.equal(43, #q.code_challenge)
    assert.is_true(#q.nonce >= 32 and #q.state >= 32)
    assert.equal("User.Read Mail.Read openid profile offline_access", q.scope)
    assert.equal(REDIRECT, q.redirect_uri)
    assert.equal("1", q.client_info)
    assert.equal("login", q.prompt)
    assert.equal("test.user@example.com", q.login_hint)
    assert.equal("example.com", q.domain_hint)
    assert.equal('{"id_token":{"auth_time":{"essential":true}}}', q.claims)
    local r2 = assert(app:acquire_token_redirect({ scopes = { "User.Read" } }):await())
    assert.are_not.equal(r.state, r2.state)
  end)

  it("redeems the code once, caches the tokens, and serves the next silent call", function()
    local app = new_app()
    local seen = {}
    app:add_event_callback(function(m) seen[#seen + 1] = m.event_type end)
    local r = assert(app:acquire_token_redirect({ scopes = { "User.Read" } }):await())
    local back = browse(app, r.url)
    local result = assert(app:handle_redirect_promise(back):await())
    assert.is_false(result.from_cache)
    assert.equal("Test User", result.id_token_claims.name)
    local q = entra.requests("token")
    assert.equal(q[#q].form.code_verifier ~= nil, true)
    assert.equal(REDIRECT, q[#q].form.redirect_uri)
    local silent = assert(app:acquire_token_silent({ scopes = { "User.Read" }, account = app:get_all_accounts()[1] }):await())
    assert.is_true(silent.from_cache)
    assert.equal(result.access_token, silent.access_token)
    -- the sign-in put a new account in the cache: ACCOUNT_ADDED follows the success
    assert.same({ msal.EventType.HANDLE_REDIRECT_START, msal.EventType.ACQUIRE_TOKEN_START,
      msal.EventType.ACQUIRE_TOKEN_SUCCESS, msal.EventType.ACCOUNT_ADDED, msal.EventType.HANDLE_REDIRECT_END },
      { seen[1], seen[2], seen[3], seen[4], seen[5] })
    -- the same redirect again (a reload, a replay) redeems nothing
    local _, err = app:handle_redirect_promise(back):await()
    assert.equal("state_not_found", err.error_code)
    assert.equal(1, codes_redeemed())
  end)

  it("resolves nil for input that is no redirect response", function()
    local app = new_app()
    assert.is_nil((app:handle_redirect_promise("http://localhost:8400/"):await()))
    assert.is_nil((app:handle_redirect_promise({}):await()))
    assert.is_nil((app:handle_redirect_promise("?foo=bar"):await()))
  end)

  it("refuses an unknown state without redeeming anything", function()
    local app = new_app()
    local _, err = app:handle_redirect_promise("http://localhost:8400/callback?code=abc&state=forged"):await()
    assert.equal("ClientAuthError", err.name)
    assert.equal(0, codes_redeemed())
  end)

  it("takes form_post parameters and query strings", function()
    local app = new_app()
    local r = assert(app:acquire_token_redirect({ scopes = { "User.Read" }, response_mode = "form_post" }):await())
    assert.equal("form_post", network.form_decode(r.url:match("%?(.*)$")).response_mode)
    -- the server posts a form; a web handler hands us its parsed body
    local r2 = assert(app:acquire_token_redirect({ scopes = { "User.Read" } }):await())
    local back = browse(app, r2.url)
    local params = network.form_decode(back:match("%?(.*)$"))
    assert.is_table(assert(app:handle_redirect_promise(params):await()))
    local r3 = assert(app:acquire_token_redirect({ scopes = { "User.Read" } }):await())
    back = browse(app, r3.url)
    assert.is_table(assert(app:handle_redirect_promise(back:match("(%?.*)$")):await()))
  end)

  it("classifies error redirects: interaction required, consent denied", function()
    local app = new_app()
    entra.next({ endpoint = "authorize", redirect_params = { error = "interaction_required",
      error_description = "AADSTS50079: MFA needed" } })
    local r = assert(app:acquire_token_redirect({ scopes = { "User.Read" } }):await())
    local _, err = app:handle_redirect_promise(browse(app, r.url)):await()
    assert.equal("InteractionRequiredAuthError", err.name)
    entra.next({ endpoint = "authorize", redirect_params = { error = "access_denied",
      error_description = "AADSTS65004: User declined to consent" } })
    r = assert(app:acquire_token_redirect({ scopes = { "User.Read" } }):await())
    _, err = app:handle_redirect_promise(browse(app, r.url)):await()
    assert.equal("ServerError", err.name)
    assert.equal("access_denied", err.error_code)
    assert.equal(0, codes_redeemed())
  end)

  it("refuses an id token whose nonce is not this request's", function()
    local app = new_app()
    entra.next({ endpoint = "token", id_token_claims = { nonce = "not-the-one" }, when = { grant_type = "authorization_code" } })
    local r = assert(app:acquire_token_redirect({ scopes = { "User.Read" } }):await())
    local _, err = app:handle_redirect_promise(browse(app, r.url)):await()
    assert.equal("nonce_mismatch", err.error_code)
    assert.same({}, require("cjson").decode(app:get_token_cache():serialize()).AccessToken)
  end)

  it("acquire_token: silent first, the redirect only when interaction is needed", function()
    local app = new_app()
    local r = assert(app:acquire_token({ scopes = { "User.Read" } }, { interaction = "redirect" }):await())
    assert.is_string(r.url)
    assert(app:handle_redirect_promise(browse(app, r.url)):await())
    local again = assert(app:acquire_token({ scopes = { "User.Read" }, account = app:get_all_accounts()[1] },
      { interaction = "redirect" }):await())
    assert.is_true(again.from_cache)
    local _, err = app:acquire_token({ scopes = { "User.Read" } }, { interaction = "telepathy" }):await()
    assert.equal("ClientConfigurationError", err.name)
  end)
end)

describe("redirect responses that could be a mix-up", function()
  before_each(function() entra.reset() end)

  -- Each malformed response is refused before the state is taken: the
  -- genuine response that follows still redeems.
  for name, tamper in pairs({
    ["a repeated code"] = function(loc) return loc .. "&code=attacker-code" end,
    ["a response split between the query and the fragment"] = function(loc)
      local state = loc:match("[?&]state=([^&#]*)")
      return (loc:gsub("[?&]state=[^&#]*", "")) .. "#state=" .. state
    end,
  }) do
    it("refuses " .. name .. " and redeems nothing", function()
      local app = new_app()
      local r = assert(app:acquire_token_redirect({ scopes = { "User.Read" } }):await())
      local loc = browse(app, r.url)
      local res, err = app:handle_redirect_promise(tamper(loc)):await()
      assert.is_nil(res)
      assert.equal("ClientAuthError", err.name)
      assert.equal("invalid_redirect_response", err.error_code)
      assert.equal(0, codes_redeemed())
      assert.is_table(assert(app:handle_redirect_promise(loc):await()))
      assert.equal(1, codes_redeemed())
    end)
  end
end)

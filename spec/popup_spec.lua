-- acquire_token_popup against the local Entra-like authority: a stand-in
-- browser (plain HTTP, following the authority's redirect to our loopback
-- listener) plays the user. The same in headless Chromium against
-- oidc-provider's real pages: spec/browser_spec.lua.
local msal = require("msal")
local entra = require("entra")
local cjson = require("cjson")

-- open_browser: fetch the authorize URL, then follow its 302 to the loopback
-- listener, from the loop (a browser runs on its own).
local function browser(log)
  return function(url)
    log.opened = url
    msal.async(function()
      local t = require("msal.transport.curl").new()
      local res = assert(t:send({ method = "GET", url = url }):await())
      log.authorize_status = res.status
      local loc = res.headers.location
      if not loc then return end
      log.redirect = loc
      local page = t:send({ method = "GET", url = loc }):await()
      log.page = page and page.body
      t:close()
    end)
  end
end

local function new_app(log, o)
  o = o or {}
  local skew = o.skew or { 0 }
  return msal.PublicClientApplication.new({
    auth = { client_id = "lua-msal-app", authority = entra.base() .. "/" .. entra.TENANT },
    system = { open_browser = o.open_browser or browser(log), loopback_timeout = o.timeout or 10,
      clock = function() return os.time() + skew[1] end },
  }), skew
end

describe("acquire_token_popup", function()
  before_each(function() entra.reset() end)

  it("signs in from an empty cache, then the cache answers, then refresh, then interaction again", function()
    -- short-lived access tokens, so the clock moves less than the id token lives
    entra.config({ expires_in = 400 })
    local log = {}
    local app, skew = new_app(log)
    local r = assert(app:acquire_token_popup({ scopes = { "User.Read" } }):await())
    assert.is_false(r.from_cache)
    assert.equal("Test User", r.id_token_claims.name)
    assert.matches("^http://localhost:%d+/%?code=", log.redirect)
    assert.is_nil(log.page:find(r.access_token, 1, true))
    assert.is_nil(log.page:find("code=", 1, true))
    local q = require("msal.network").form_decode(log.opened:match("%?(.*)$"))
    assert.equal("S256", q.code_challenge_method)
    assert.matches("^http://localhost:%d+/$", q.redirect_uri)
    -- silent from the cache
    local account = app:get_all_accounts()[1]
    assert.is_true(assert(app:acquire_token_silent({ scopes = { "User.Read" }, account = account }):await()).from_cache)
    -- silent refresh after expiry
    skew[1] = 200
    assert.is_false(assert(app:acquire_token_silent({ scopes = { "User.Read" }, account = account }):await()).from_cache)
    -- the server insists on interaction: the one-call pattern opens the browser again
    entra.next({ endpoint = "token", canned = "interaction_required", when = { grant_type = "refresh_token" } })
    log.opened = nil
    local again = assert(app:acquire_token({ scopes = { "User.Read" }, account = account, force_refresh = true },
      { interaction = "popup" }):await())
    assert.is_string(log.opened)
    assert.is_false(again.from_cache)
  end)

  it("rejects when the user denies consent, without redeeming anything", function()
    local app = new_app({})
    entra.next({ endpoint = "authorize", redirect_params = { error = "access_denied",
      error_description = "AADSTS65004: User declined to consent" } })
    local _, err = app:acquire_token_popup({ scopes = { "User.Read" } }):await()
    assert.equal("ServerError", err.name)
    assert.equal("access_denied", err.error_code)
    for _, q in ipairs(entra.requests("token")) do assert.are_not.equal("authorization_code", q.form.grant_type) end
  end)

  it("times out when the user never finishes, and closes the port", function()
    local opened
    local app = new_app(nil, { timeout = 1, open_browser = function(url) opened = url end })
    local t = require("msal.core").now_ms()
    local _, err = app:acquire_token_popup({ scopes = { "User.Read" } }):await()
    assert.equal("BrowserAuthError", err.name)
    assert.equal("timed_out", err.error_code)
    assert.is_true(require("msal.core").now_ms() - t < 5000)
    local port = require("msal.network").form_decode(opened:match("%?(.*)$")).redirect_uri:match(":(%d+)/")
    local res, cerr = require("msal.transport.curl").new():send({ method = "GET",
      url = "http://127.0.0.1:" .. port .. "/?code=x&state=y" }):await()
    assert.is_nil(res)
    assert.equal("connect", cerr.kind)
  end)

  it("reports a browser that cannot be opened", function()
    local app = new_app(nil, { open_browser = function() error("no display") end })
    local _, err = app:acquire_token_popup({ scopes = { "User.Read" } }):await()
    assert.equal("BrowserAuthError", err.name)
    assert.matches("no display", err.error_message, 1, true)
  end)

  it("emits login events for login_popup", function()
    local app = new_app({})
    local seen = {}
    app:add_event_callback(function(m) seen[#seen + 1] = m.event_type end)
    assert(app:login_popup({ scopes = {} }):await())
    -- the sign-in put a new account in the cache: ACCOUNT_ADDED follows
    assert.same({ msal.EventType.LOGIN_START, msal.EventType.LOGIN_SUCCESS, msal.EventType.ACCOUNT_ADDED }, seen)
    assert.equal(1, #app:get_all_accounts())
    assert.is_table(cjson.decode(app:get_token_cache():serialize()).IdToken)
  end)
end)

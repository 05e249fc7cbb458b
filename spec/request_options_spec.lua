-- Request tables are checked like the configuration (#14 item 7): an
-- unknown option or a wrongly typed one rejects the method's promise with a
-- ClientConfigurationError naming it, and MSAL.js's camelCase spelling of a
-- known option names ours. No network: the authority's metadata is
-- configured and the transport refuses every call.
local msal = require("msal")
local cjson = require("cjson")
local F = require("fixtures")
local options = require("msal.request_options")

local AUTHORITY = "https://login.microsoftonline.com/common"
local NOW = 1800000000

local function new_app(answer, doc)
  local app = msal.PublicClientApplication.new({
    auth = { client_id = F.CLIENT, authority = AUTHORITY, redirect_uri = "http://localhost:8400/",
      authority_metadata = cjson.encode({ issuer = AUTHORITY .. "/v2.0", token_endpoint = AUTHORITY .. "/oauth2/v2.0/token",
        authorization_endpoint = AUTHORITY .. "/oauth2/v2.0/authorize", end_session_endpoint = AUTHORITY .. "/oauth2/v2.0/logout" }) },
    system = { clock = function() return NOW end, open_browser = function() error("no browser expected") end,
      transport = require("fake_transport").new(answer or function() error("no network expected") end) },
  })
  app:get_token_cache():deserialize(cjson.encode(doc or F.signed_in()))
  return app
end

local function account(app) return app:get_all_accounts()[1] end

-- Each public method that takes a request, called with req.
local METHODS = {
  acquire_token_silent = function(app, req) return app:acquire_token_silent(req) end,
  acquire_token_popup = function(app, req) return app:acquire_token_popup(req) end,
  acquire_token_redirect = function(app, req) return app:acquire_token_redirect(req) end,
  login_redirect = function(app, req) return app:login_redirect(req) end,
  login_popup = function(app, req) return app:login_popup(req) end,
  acquire_token_by_device_code = function(app, req) return app:acquire_token_by_device_code(req) end,
  acquire_token = function(app, req) return app:acquire_token(req, { interaction = "popup" }) end,
  ["acquire_token's opts"] = function(app, req)
    req.interaction = "popup"
    return app:acquire_token({ scopes = { "User.Read" } }, req)
  end,
  logout_redirect = function(app, req) return app:logout_redirect(req) end,
  logout_popup = function(app, req) return app:logout_popup(req) end,
}

local function rejection(p)
  local r, err = p:await()
  assert.is_nil(r)
  assert.equals("ClientConfigurationError", err.name)
  assert.equals("invalid_request", err.error_code)
  return err.error_message
end

describe("request options", function()
  for name, call in pairs(METHODS) do
    describe(name, function()
      it("rejects an unknown option, naming it", function()
        local msg = rejection(call(new_app(), { claimsRequest = "{}" }))
        assert.truthy(msg:find("'claimsRequest'", 1, true), msg)
        assert.truthy(msg:find(name, 1, true), msg)
      end)

      if name == "acquire_token's opts" then return end -- opts has no camelCase spelling
      it("rejects MSAL.js's camelCase spelling, naming ours", function()
        local msg = rejection(call(new_app(), { correlationId = "c-1" }))
        assert.truthy(msg:find("'correlationId'", 1, true), msg)
        assert.truthy(msg:find("did you mean 'correlation_id'", 1, true), msg)
      end)
    end)
  end

  it("names force_refresh for forceRefresh, login_hint for loginHint, redirect_uri for redirectUri", function()
    local app = new_app()
    assert.truthy(rejection(app:acquire_token_silent({ scopes = { "User.Read" }, account = account(app), forceRefresh = true }))
      :find("did you mean 'force_refresh'", 1, true))
    assert.truthy(rejection(app:acquire_token_redirect({ loginHint = "a@b" })):find("did you mean 'login_hint'", 1, true))
    assert.truthy(rejection(app:acquire_token_popup({ redirectUri = "http://localhost" })):find("did you mean 'redirect_uri'", 1, true))
    assert.truthy(rejection(app:login_redirect({ extraScopesToConsent = {} })):find("did you mean 'extra_scopes_to_consent'", 1, true))
    assert.truthy(rejection(app:login_popup({ domainHint = "x" })):find("did you mean 'domain_hint'", 1, true))
    assert.truthy(rejection(app:logout_redirect({ postLogoutRedirectUri = "x" })):find("did you mean 'post_logout_redirect_uri'", 1, true))
  end)

  it("treats MSAL.js options with no equivalent here as unknown, with no suggestion", function()
    local msg = rejection(new_app():acquire_token_silent({ scopes = { "User.Read" }, claimsRequest = "{}" }))
    assert.truthy(msg:find("unknown request option 'claimsRequest'", 1, true), msg)
    assert.is_nil(msg:find("did you mean", 1, true))
  end)

  it("says a list belongs in request.scopes", function()
    assert.truthy(rejection(new_app():acquire_token_silent({ "User.Read" })):find("request.scopes", 1, true))
  end)

  it("rejects a request that is not a table", function()
    assert.truthy(rejection(new_app():acquire_token_popup("User.Read")):find("must be a table", 1, true))
  end)

  it("rejects wrongly typed options, naming the option and the type", function()
    local app = new_app()
    local cases = {
      { function() return app:acquire_token_silent({ scopes = { "User.Read" }, account = account(app), force_refresh = "yes" }) end, "force_refresh", "boolean" },
      { function() return app:acquire_token_silent({ scopes = "User.Read", account = account(app) }) end, "scopes", "table" },
      { function() return app:acquire_token_silent({ scopes = { "User.Read" }, account = "someone" }) end, "account", "table" },
      { function() return app:acquire_token_redirect({ login_hint = 42 }) end, "login_hint", "string" },
      { function() return app:acquire_token_popup({ prompt = true }) end, "prompt", "string" },
      { function() return app:login_redirect({ authority = {} }) end, "authority", "string" },
      { function() return app:acquire_token_by_device_code({ device_code_callback = print, correlation_id = 1 }) end, "correlation_id", "string" },
      { function() return app:acquire_token_by_device_code({ device_code_callback = print, timeout = "10" }) end, "timeout", "number" },
      { function() return app:logout_popup({ logout_hint = false }) end, "logout_hint", "string" },
      { function() return app:acquire_token({ scopes = { "User.Read" }, claims = {} }, { interaction = "redirect" }) end, "claims", "string" },
    }
    for _, c in ipairs(cases) do
      local msg = rejection(c[1]())
      assert.truthy(msg:find("'" .. c[2] .. "'", 1, true), msg)
      assert.truthy(msg:find("must be a " .. c[3], 1, true), msg)
    end
  end)

  -- Every option a flow reads is a known option of its kind: the list
  -- cannot fall behind the code that reads requests.
  it("knows every option the flows read", function()
    local reads = { silent = { "silent", "refresh" }, redirect = { "authorize" }, popup = { "popup", "authorize" },
      device_code = { "device_code", "refresh" }, logout = { "logout" } }
    for kind, flows in pairs(reads) do
      for _, flow in ipairs(flows) do
        local path = assert(package.searchpath("msal.flows." .. flow, package.path))
        local f = assert(io.open(path))
        local src = f:read("a") or f:read("*a")
        f:close()
        for key in src:gmatch("req%.([%a_][%w_]*)") do
          assert.truthy(options.KNOWN[kind][key], flow .. ".lua reads req." .. key .. ", unknown to " .. kind)
        end
      end
    end
  end)

  -- A valid value of every known option: a new option without one fails here.
  local function valid_request(kind, app)
    local values = {
      scopes = { "User.Read" }, account = account(app), claims = "{}", force_refresh = false, authority = AUTHORITY,
      correlation_id = "00000000-0000-0000-0000-0000000000c1", extra_scopes_to_consent = { "Mail.Read" },
      prompt = "consent", login_hint = "user@example.com", domain_hint = "example.com",
      redirect_uri = "http://localhost:8400/", response_mode = "query", post_logout_redirect_uri = "http://localhost:8400/",
      logout_hint = "user@example.com", state = "s-1", cache_lookup_policy = msal.CacheLookupPolicy.Default,
    }
    local req = {}
    for key in pairs(options.KNOWN[kind]) do
      assert.is_not_nil(values[key], "no valid value for " .. kind .. " option " .. key)
      req[key] = values[key]
    end
    return req
  end

  it("accepts every known silent option with a valid value", function()
    local app = new_app()
    local r, err = app:acquire_token_silent(valid_request("silent", app)):await()
    assert.is_nil(err)
    assert.equals("fake-access-token", r.access_token)
    assert.equals("00000000-0000-0000-0000-0000000000c1", r.correlation_id)
  end)

  it("accepts every known redirect option with a valid value", function()
    local app = new_app()
    local r, err = app:acquire_token_redirect(valid_request("redirect", app)):await()
    assert.is_nil(err)
    assert.truthy(r.url:find("login_hint=user%40example.com", 1, true) or r.url:find("domain_hint=example.com", 1, true), r.url)
  end)

  it("accepts every known logout option with a valid value", function()
    local app = new_app()
    local r, err = app:logout_redirect(valid_request("logout", app)):await()
    assert.is_nil(err)
    assert.truthy(r.url:find("state=s-1", 1, true), r.url)
  end)

  it("hands acquire_token's request to the interactive flow without silent-only options", function()
    -- the refresh token is refused: interaction required
    local app = new_app(function()
      return { status = 400, json = { error = "invalid_grant", suberror = "consent_required", error_codes = { 65001 } } }
    end)
    local r, err = app:acquire_token({ scopes = { "Mail.Send" }, account = account(app), force_refresh = false,
      login_hint = "user@example.com" }, { interaction = "redirect" }):await()
    assert.is_nil(err)
    assert.truthy(r.url:find("Mail.Send", 1, true), r.url)
  end)
end)

-- cache_lookup_policy (#14 item 8), msal-browser's values; the refresh
-- token is this library's only silent network.
describe("cache_lookup_policy", function()
  local P = msal.CacheLookupPolicy
  local function refused() return { status = 400, json = { error = "invalid_grant", suberror = "consent_required" } } end
  local function silent(policy, doc)
    local app = new_app(refused, doc)
    local r, err = app:acquire_token_silent({ scopes = { "User.Read" }, account = account(app), cache_lookup_policy = policy }):await()
    return r, err, app.config.system.transport.n
  end
  local expired = F.signed_in({ expires_on = F.PAST, extended_expires_on = F.PAST })

  it("has MSAL's names and numbers", function()
    assert.same({ Default = 0, AccessToken = 1, AccessTokenAndRefreshToken = 2, RefreshToken = 3,
      RefreshTokenAndNetwork = 4, Skip = 5 }, P)
  end)

  it("serves a valid cached token under Default, AccessToken and AccessTokenAndRefreshToken", function()
    for _, policy in ipairs({ P.Default, P.AccessToken, P.AccessTokenAndRefreshToken }) do
      local r, err, calls = silent(policy)
      assert.is_nil(err)
      assert.equals("fake-access-token", r.access_token)
      assert.equals(0, calls)
    end
  end)

  it("AccessToken never refreshes: an expired token is token_refresh_required, with no request", function()
    local r, err, calls = silent(P.AccessToken, expired)
    assert.is_nil(r)
    assert.equals("ClientAuthError", err.name)
    assert.equals("token_refresh_required", err.error_code)
    assert.equals(0, calls)
  end)

  it("RefreshToken and RefreshTokenAndNetwork skip a valid cached token and redeem the refresh token", function()
    for _, policy in ipairs({ P.RefreshToken, P.RefreshTokenAndNetwork }) do
      local r, err, calls = silent(policy)
      assert.is_nil(r)
      assert.is_true(msal.is_interaction_required(err))
      assert.equals(1, calls)
    end
  end)

  it("Skip uses neither token: interaction required, with no request", function()
    local r, err, calls = silent(P.Skip)
    assert.is_nil(r)
    assert.is_true(msal.is_interaction_required(err))
    assert.equals(0, calls)
  end)

  it("refuses a value that is no policy", function()
    for _, bad in ipairs({ 6, -1, 1.5 }) do
      local app = new_app()
      assert.truthy(rejection(app:acquire_token_silent({ scopes = { "User.Read" }, account = account(app),
        cache_lookup_policy = bad })):find("CacheLookupPolicy", 1, true))
    end
  end)
end)

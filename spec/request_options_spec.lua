-- Request tables are checked like the configuration: an unknown key, or
-- MSAL.js's camelCase spelling of a known one, is a ClientConfigurationError
-- naming it (and the snake_case option to use); a wrongly typed value too.
-- Every public method rejects its promise with the error, and sends nothing.
local msal = require("msal")
local F = require("fixtures")
local cjson = require("cjson")

local AUTHORITY = "https://login.microsoftonline.com/common"

local function new_app()
  local transport = require("fake_transport").new(function()
    return { status = 400, json = { error = "invalid_grant", error_description = "AADSTS70000: no" } }
  end)
  local app = msal.PublicClientApplication.new({
    auth = { client_id = F.CLIENT, authority = AUTHORITY, redirect_uri = "http://localhost:8400/cb",
      authority_metadata = cjson.encode({ issuer = AUTHORITY .. "/v2.0", token_endpoint = AUTHORITY .. "/oauth2/v2.0/token",
        authorization_endpoint = AUTHORITY .. "/oauth2/v2.0/authorize", end_session_endpoint = AUTHORITY .. "/logout" }) },
    system = { clock = function() return 1800000000 end, transport = transport,
      open_browser = function() error("no browser in this spec") end },
  })
  app:get_token_cache():deserialize(cjson.encode(F.signed_in()))
  return app, transport
end

-- The rejection of a call, which must be a ClientConfigurationError.
local function refused(p)
  local r, err = p:await()
  assert.is_nil(r)
  assert.is_table(err, "the call was not refused")
  assert.equal("ClientConfigurationError", err.name)
  return err
end

describe("request tables", function()
  it("refuse MSAL.js's camelCase keys, naming the snake_case option", function()
    local app, transport = new_app()
    local account = app:get_all_accounts()[1]
    for camel, snake in pairs({ forceRefresh = "force_refresh", claimsRequest = "claims",
      extraQueryParameters = "extra_query_parameters", correlationId = "correlation_id",
      cacheLookupPolicy = "cache_lookup_policy", tokenBodyParameters = "token_body_parameters",
      refreshTokenExpirationOffsetSeconds = "refresh_token_expiration_offset" }) do
      local err = refused(app:acquire_token_silent({ scopes = { "User.Read" }, account = account, [camel] = true }))
      assert.equal("invalid_request", err.error_code)
      assert.matches("unknown request key '" .. camel .. "'", err.error_message, 1, true)
      assert.matches("use '" .. snake .. "'", err.error_message, 1, true)
      assert.matches("acquire_token_silent", err.error_message, 1, true)
    end
    for camel, snake in pairs({ loginHint = "login_hint", redirectUri = "redirect_uri", domainHint = "domain_hint",
      extraScopesToConsent = "extra_scopes_to_consent", maxAge = "max_age", openBrowser = "open_browser" }) do
      local err = refused(app:acquire_token_popup({ scopes = { "User.Read" }, [camel] = "x" }))
      assert.matches("'" .. camel .. "'; use '" .. snake .. "'", err.error_message, 1, true)
    end
    assert.matches("use 'device_code_callback'", refused(app:acquire_token_by_device_code({
      scopes = { "User.Read" }, deviceCodeCallback = print })).error_message, 1, true)
    assert.matches("use 'post_logout_redirect_uri'", refused(app:logout_redirect({
      postLogoutRedirectUri = "http://localhost/" })).error_message, 1, true)
    assert.equal(0, transport.n) -- nothing was sent
    assert.equal(1, #app:get_all_accounts()) -- the refused logout removed nobody
  end)

  it("refuse unknown keys and typos in every public method", function()
    local app, transport = new_app()
    local account = app:get_all_accounts()[1]
    local calls = {
      function() return app:acquire_token_silent({ scopes = { "User.Read" }, account = account, scope = { "x" } }) end,
      function() return app:acquire_token_popup({ scopes = { "User.Read" }, promt = "login" }) end,
      function() return app:login_popup({ foo = 1 }) end,
      function() return app:acquire_token_redirect({ scopes = { "User.Read" }, force_refresh = true }) end,
      function() return app:login_redirect({ loginhint = "a@b" }) end,
      function() return app:acquire_token_by_device_code({ scopes = { "User.Read" }, device_code_callback = print,
        interval = 5 }) end,
      function() return app:logout_redirect({ acount = account }) end,
      function() return app:logout_popup({ accounts = { account } }) end,
      function() return app:acquire_token({ scopes = { "User.Read" }, account = account, bogus = 1 },
        { interaction = "redirect" }) end,
      function() return app:acquire_token_by_refresh_token({ refresh_token = "rt", scopes = { "User.Read" },
        account = account }) end,
      function() return app:get_auth_code_url({ code_challenge = msal.pkce().challenge, code_verifier = "v" }) end,
      function() return app:acquire_token_by_code({ code = "c", code_challenge = "x" }) end,
    }
    for i, call in ipairs(calls) do
      local err = refused(call())
      assert.matches("unknown request key", err.error_message, 1, true, "call " .. i)
    end
    assert.equal(0, transport.n)
    assert.equal(1, #app:get_all_accounts())
  end)

  it("check the types and values, naming the key", function()
    local app = new_app()
    local account = app:get_all_accounts()[1]
    local function silent(extra)
      local req = { scopes = { "User.Read" }, account = account }
      for k, v in pairs(extra) do req[k] = v end
      return refused(app:acquire_token_silent(req)).error_message
    end
    assert.matches("'force_refresh' must be a boolean, not a string", silent({ force_refresh = "yes" }), 1, true)
    assert.matches("'claims' must be a string, not a table", silent({ claims = { id_token = {} } }), 1, true)
    assert.matches("'account' must be a table, not a string", silent({ account = "me" }), 1, true)
    assert.matches("'extra_query_parameters' must be a table, not a string", silent({ extra_query_parameters = "dc=1" }),
      1, true)
    assert.matches("cache_lookup_policy", silent({ cache_lookup_policy = 6 }), 1, true)
    assert.matches("cache_lookup_policy", silent({ cache_lookup_policy = 1.5 }), 1, true)
    assert.matches("refresh_token_expiration_offset", silent({ refresh_token_expiration_offset = -1 }), 1, true)
    assert.matches("'extra_body_parameters.audience' must be a string", silent({ extra_body_parameters = { audience = {} } }),
      1, true)
    assert.matches("max_age", refused(app:acquire_token_redirect({ scopes = { "User.Read" }, max_age = -5 })).error_message,
      1, true)
    assert.matches("'state' must be a string", refused(app:acquire_token_redirect({ state = 42 })).error_message, 1, true)
    assert.matches("must be a table, not a string", refused(app:acquire_token_silent("User.Read")).error_message, 1, true)
    assert.matches("must be a table, not a nil", refused(app:acquire_token_popup()).error_message, 1, true)
  end)

  it("reject through the promise, never synchronously", function()
    local app = new_app()
    local seen
    local p = app:acquire_token_silent({ forceRefresh = true })
    p:catch(function(e) seen = e end)
    assert.is_nil(seen)
    msal.run()
    assert.equal("ClientConfigurationError", seen.name)
  end)

  it("take no request at all where MSAL takes none", function()
    local app = new_app()
    local r = assert(app:login_redirect():await())
    assert.matches("^https://login.microsoftonline.com/common/oauth2/v2.0/authorize%?", r.url)
    assert(app:logout_redirect():await())
  end)

  it("give acquire_token the keys of both flows, each flow its own", function()
    local app = new_app()
    local account = app:get_all_accounts()[1]
    -- force_refresh is the silent call's, prompt the redirect's: the silent
    -- call (refused by the server) falls through to the redirect
    local transport = require("fake_transport").new(function()
      return { status = 400, json = { error = "invalid_grant", suberror = "consent_required",
        error_description = "AADSTS65001: consent" } }
    end)
    app.config.system.transport = transport
    local r = assert(app:acquire_token({ scopes = { "User.Read" }, account = account, force_refresh = true,
      prompt = "consent" }, { interaction = "redirect" }):await())
    assert.matches("prompt=consent", r.url, 1, true)
    assert.equal(1, transport.n)
    assert.is_nil(transport.requests[1].form.prompt)
    -- a key of another interaction is still refused
    local err = refused(app:acquire_token({ scopes = { "User.Read" }, account = account,
      device_code_callback = print }, { interaction = "redirect" }))
    assert.matches("'device_code_callback'", err.error_message, 1, true)
  end)

  it("check the configuration's keys with the same hint", function()
    local ok, err = pcall(msal.PublicClientApplication.new, { auth = { clientId = "x" } })
    assert.is_false(ok)
    assert.matches("unknown configuration key 'auth.clientId'; use 'auth.client_id'", err.error_message, 1, true)
    ok, err = pcall(msal.PublicClientApplication.new, { auth = { client_id = "x" },
      system = { tokenRenewalOffsetSeconds = 60 } })
    assert.is_false(ok)
    assert.matches("use 'system.token_renewal_offset'", err.error_message, 1, true)
  end)

  -- Every key a flow reads is a key of a method that runs it: the key
  -- sets cannot fall behind the code that reads requests.
  it("know every key the flows read", function()
    local options = require("msal.request_options")
    local runs = { silent = { "acquire_token_silent" }, authorize = { "acquire_token_redirect", "acquire_token_popup" },
      popup = { "acquire_token_popup" }, device_code = { "acquire_token_by_device_code" },
      logout = { "logout_redirect", "logout_popup" }, auth_code = { "get_auth_code_url", "acquire_token_by_code" },
      refresh = { "acquire_token_silent", "acquire_token_by_refresh_token", "acquire_token_by_device_code" } }
    for flow, methods in pairs(runs) do
      local path = assert(package.searchpath("msal.flows." .. flow, package.path))
      local f = assert(io.open(path))
      local src = f:read("*a")
      f:close()
      for key in src:gmatch("req%.([%a_][%w_]*)") do
        local known = false
        for _, m in ipairs(methods) do known = known or options.METHODS[m].keys[key] ~= nil end
        assert.is_true(known, flow .. ".lua reads req." .. key .. ", a key none of its methods take")
      end
    end
  end)
end)

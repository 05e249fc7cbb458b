-- Logs that explain a silent call (#14 item 11): one line per decision at
-- info/verbose, the account only with PII logging on, never a token.
local msal = require("msal")
local F = require("fixtures")
local cjson = require("cjson")

local NOW = 1800000000
local AUTHORITY = "https://login.microsoftonline.com/" .. F.TENANT

local function app_logging(pii, answers)
  local lines = {}
  local app = msal.PublicClientApplication.new({
    auth = { client_id = F.CLIENT, authority = AUTHORITY,
      authority_metadata = cjson.encode({ issuer = AUTHORITY .. "/v2.0", token_endpoint = AUTHORITY .. "/oauth2/v2.0/token",
        authorization_endpoint = AUTHORITY .. "/oauth2/v2.0/authorize" }) },
    system = { clock = function() return NOW end, transport = require("fake_transport").new(answers or {}),
      logger = { level = "trace", pii = pii, sink = function(level, msg, has_pii)
        lines[#lines + 1] = { level = level, msg = msg, pii = has_pii }
      end } },
  })
  app:get_token_cache():deserialize(cjson.encode(F.signed_in()))
  return app, lines
end

local function text(lines)
  local out = {}
  for _, l in ipairs(lines) do out[#out + 1] = l.level .. ": " .. l.msg end
  return table.concat(out, "\n")
end

local function refused()
  return { status = 400, json = { error = "invalid_grant", error_description = "AADSTS70000: revoked" } }
end

local SECRETS = { "fake-access-token", "fake-refresh-token", "test.user@example.com", F.UID }

local function assert_no_secrets(all)
  for _, s in ipairs(SECRETS) do
    assert.is_nil(all:find(s, 1, true), "the logs name " .. s .. ":\n" .. all)
  end
end

describe("silent-flow logs", function()
  it("say a hit was served from the cache", function()
    local app, lines = app_logging(false)
    assert(app:acquire_token_silent({ scopes = { "User.Read" }, account = app:get_all_accounts()[1] }):await())
    local all = text(lines)
    assert.matches("verbose: acquire_token_silent: served from the cache", all, 1, true)
    assert_no_secrets(all)
  end)

  for _, c in ipairs({
    { { scopes = { "Mail.Send" } }, "cache miss: no access token for these scopes" },
    { { scopes = { "User.Read" }, force_refresh = true }, "cache miss: force_refresh was asked" },
    { { scopes = { "User.Read" }, claims = '{"access_token":{"xms_cc":{"values":["cp1"]}}}' },
      "cache miss: the request carries claims" },
  }) do
    it("say why the cache missed (" .. c[2] .. "), which grant was sent and what came back", function()
      local app, lines = app_logging(false, refused)
      local req = c[1]
      req.account = app:get_all_accounts()[1]
      local r, err = app:acquire_token_silent(req):await()
      assert.is_nil(r)
      assert.equal("invalid_grant", err.error_code)
      local all = text(lines)
      assert.matches("info: acquire_token_silent: " .. c[2], all, 1, true)
      assert.matches(("info: token request: grant refresh_token to " .. AUTHORITY
        .. "/oauth2/v2.0/token: HTTP 400 in "):gsub("%p", "%%%0") .. "%d+ ms", all)
      assert.matches("acquire_token_silent failed: invalid_grant", all, 1, true)
      assert_no_secrets(all)
    end)
  end

  it("say an expired token is why", function()
    local doc = F.signed_in()
    for _, at in pairs(doc.AccessToken) do at.expires_on = tostring(NOW - 10) end
    local app, lines = app_logging(false, refused)
    app:get_token_cache():deserialize(cjson.encode(doc))
    app:acquire_token_silent({ scopes = { "User.Read" }, account = app:get_all_accounts()[1] }):await()
    assert.matches("cache miss: the access token expired", text(lines), 1, true)
  end)

  it("name the account only when PII logging is on", function()
    local app, lines = app_logging(true, refused)
    app:acquire_token_silent({ scopes = { "Mail.Send" }, account = app:get_all_accounts()[1] }):await()
    local all = text(lines)
    assert.matches("no access token for these scopes (account test.user@example.com)", all, 1, true)
    for _, s in ipairs({ "fake-access-token", "fake-refresh-token" }) do assert.is_nil(all:find(s, 1, true)) end
    local flagged = false
    for _, l in ipairs(lines) do flagged = flagged or (l.pii and l.msg:find("test.user", 1, true) ~= nil) end
    assert.is_true(flagged)
  end)

  it("say a network failure and its timing", function()
    local app, lines = app_logging(false, function() return nil, { kind = "io", message = "connection refused" } end)
    app:acquire_token_silent({ scopes = { "Mail.Send" }, account = app:get_all_accounts()[1] }):await()
    assert.matches("token request: grant refresh_token to [^ ]+: network_error after %d+ ms", text(lines))
  end)

  it("say how long the cross-process refresh lock took", function()
    local app, lines = app_logging(false, refused)
    local tc = app:get_token_cache()
    tc.plugin = { before_cache_access = function() end, after_cache_access = function() end,
      lock_refresh = function() return require("msal.promise").resolve(function() end) end }
    app:acquire_token_silent({ scopes = { "Mail.Send" }, account = app:get_all_accounts()[1] }):await()
    assert.matches("verbose: acquire_token_silent: took the refresh lock after %d+ ms", text(lines))
  end)
end)

-- logout_redirect / logout_popup: the account leaves the cache, the
-- end-session URL carries MSAL's parameters, LOGOUT_* events are emitted.
-- The authority's metadata is configured, so nothing here uses the network.
local msal = require("msal")
local cjson = require("cjson")
local network = require("msal.network")
local F = require("fixtures")

local AUTHORITY = "https://login.microsoftonline.com/common"
local END_SESSION = AUTHORITY .. "/oauth2/v2.0/logout"
local OTHER_HID = "00000000-0000-0000-aaaa-000000000009." .. F.TENANT

local function two_users()
  local other = { home_account_id = OTHER_HID, local_account_id = "00000000-0000-0000-aaaa-000000000009",
    username = "other@example.com" }
  return F.doc({
    Account = { F.account(), F.account(other) },
    IdToken = { F.id_token(), F.id_token({ home_account_id = OTHER_HID, secret = F.jwt({ sub = "other" }) }) },
    AccessToken = { F.access_token(), F.access_token({ home_account_id = OTHER_HID, secret = "other-at" }) },
    RefreshToken = { F.refresh_token(), F.refresh_token({ home_account_id = OTHER_HID, secret = "other-rt" }) },
  })
end

local function new_app(o)
  o = o or {}
  local metadata = { issuer = AUTHORITY .. "/v2.0", token_endpoint = AUTHORITY .. "/oauth2/v2.0/token",
    authorization_endpoint = AUTHORITY .. "/oauth2/v2.0/authorize" }
  if not o.no_end_session then metadata.end_session_endpoint = END_SESSION end
  local app = msal.PublicClientApplication.new({
    auth = { client_id = F.CLIENT, authority = AUTHORITY, authority_metadata = cjson.encode(metadata),
      post_logout_redirect_uri = o.post_logout_redirect_uri },
    cache = o.cache,
    system = { open_browser = o.open_browser, logger = o.logger,
      transport = require("fake_transport").new(function() error("no network expected") end) },
  })
  app:get_token_cache():deserialize(cjson.encode(two_users()))
  local seen = {}
  app:add_event_callback(function(m) seen[#seen + 1] = m end)
  return app, seen
end

local function account_of(app, username)
  return assert(app:get_account({ username = username }))
end

local function query_of(url)
  return network.form_decode(url:match("%?(.*)$"))
end

describe("logout", function()
  it("logout_redirect removes the account and resolves the end-session URL", function()
    local app, seen = new_app({ post_logout_redirect_uri = "https://app.example/bye" })
    local account = account_of(app, "test.user@example.com")
    local r = assert(app:logout_redirect({ account = account, state = "s1", correlation_id = "cid-1" }):await())
    assert.equal(END_SESSION, r.url:match("^[^?]*"))
    local q = query_of(r.url)
    assert.equal(F.id_token().secret, q.id_token_hint)
    assert.equal("https://app.example/bye", q.post_logout_redirect_uri)
    assert.equal("s1", q.state)
    assert.equal("cid-1", q["client-request-id"])
    assert.is_nil(q.client_id) -- Entra: MSAL sends none
    -- only that account is gone, with all its tokens
    local accounts = app:get_all_accounts()
    assert.equal(1, #accounts)
    assert.equal("other@example.com", accounts[1].username)
    local doc = cjson.decode(app:get_token_cache():serialize())
    for _, section in ipairs({ "Account", "IdToken", "AccessToken", "RefreshToken" }) do
      for _, e in pairs(doc[section]) do assert.equal(OTHER_HID, e.home_account_id) end
    end
    -- events: start, the account removed, success, end; no token in any of them
    local types = {}
    for _, m in ipairs(seen) do
      types[#types + 1] = m.event_type
      assert.equal("redirect", m.interaction_type)
      assert.is_nil(cjson.encode(m.payload or {}):find(F.id_token().secret, 1, true))
    end
    assert.same({ msal.EventType.LOGOUT_START, msal.EventType.ACCOUNT_REMOVED, msal.EventType.LOGOUT_SUCCESS,
      msal.EventType.LOGOUT_END }, types)
    assert.equal(F.HID, seen[2].payload.home_account_id)
  end)

  it("forgets every account when none is named, as msal-browser does", function()
    local app = new_app()
    local r = assert(app:logout_redirect():await())
    assert.is_nil(query_of(r.url).id_token_hint)
    assert.same({}, app:get_all_accounts())
    assert.same({}, cjson.decode(app:get_token_cache():serialize()).RefreshToken)
  end)

  it("forgets every account in one cache access, and one per partition when partitioned", function()
    local function counting(partitioned)
      local p = { writes = 0, keys = {} }
      function p.before_cache_access() end
      function p.after_cache_access(_, ctx)
        if ctx.will_write then
          p.writes = p.writes + 1
          p.keys[#p.keys + 1] = ctx.partition_key or "-"
        end
      end
      if partitioned then
        function p.partition_key_for(_, info) return info.home_account_id end
      end
      return p
    end
    local plugin = counting(false)
    local app = new_app({ cache = plugin })
    assert(app:logout_redirect():await())
    assert.same({}, app:get_all_accounts())
    assert.equal(1, plugin.writes)
    plugin = counting(true)
    app = new_app({ cache = plugin })
    assert(app:logout_redirect():await())
    assert.same({}, app:get_all_accounts())
    table.sort(plugin.keys)
    assert.same({ F.HID, OTHER_HID }, plugin.keys) -- sorted
  end)

  it("signs out locally when the authority publishes no end_session_endpoint", function()
    local app = new_app({ no_end_session = true })
    local r = assert(app:logout_redirect({ account = account_of(app, "other@example.com") }):await())
    assert.is_nil(r.url)
    assert.equal(1, #app:get_all_accounts())
  end)

  it("logout_popup opens the end-session URL in the browser", function()
    local opened
    local app, seen = new_app({ open_browser = function(url) opened = url end })
    local r = assert(app:logout_popup({ account = account_of(app, "other@example.com"),
      post_logout_redirect_uri = "http://localhost:8400/" }):await())
    assert.equal(r.url, opened)
    assert.equal("http://localhost:8400/", query_of(opened).post_logout_redirect_uri)
    assert.equal("popup", seen[1].interaction_type)
    assert.equal(1, #app:get_all_accounts())
  end)

  it("a browser that cannot open is a BrowserAuthError, after the local sign-out", function()
    local app, seen = new_app({ open_browser = function() error("no display") end })
    local _, err = app:logout_popup({ account = account_of(app, "other@example.com") }):await()
    assert.equal("BrowserAuthError", err.name)
    assert.equal("popup_window_error", err.error_code)
    assert.equal(1, #app:get_all_accounts())
    assert.same({ msal.EventType.LOGOUT_START, msal.EventType.ACCOUNT_REMOVED, msal.EventType.LOGOUT_FAILURE,
      msal.EventType.LOGOUT_END }, { seen[1].event_type, seen[2].event_type, seen[3].event_type, seen[4].event_type })
    assert.equal(err, seen[3].error)
  end)

  it("refuses bad requests with ClientConfigurationError and keeps the cache", function()
    local app = new_app()
    for _, req in ipairs({ "x", { account = "me" }, { account = { home_account_id = 1 } },
      { post_logout_redirect_uri = 42 }, { state = {} }, { authority = "ftp://nope" } }) do
      local r, err = app:logout_redirect(req):await()
      assert.is_nil(r)
      assert.equal("ClientConfigurationError", err.name)
    end
    assert.equal(2, #app:get_all_accounts())
  end)

  it("sends client_id to a generic OpenID provider", function()
    local issuer = "https://idp.example"
    local app = msal.PublicClientApplication.new({
      auth = { client_id = "c1", authority = issuer, protocol_mode = "oidc",
        authority_metadata = cjson.encode({ issuer = issuer, token_endpoint = issuer .. "/token",
          authorization_endpoint = issuer .. "/auth", end_session_endpoint = issuer .. "/session/end?x=1" }) },
    })
    local r = assert(app:logout_redirect():await())
    assert.matches("^https://idp%.example/session/end%?x=1&", r.url)
    assert.equal("c1", query_of(r.url).client_id)
  end)
end)

describe("event payloads", function()
  local function token_events(logger)
    local app = new_app({ logger = logger })
    local got
    app:on(msal.EventType.ACQUIRE_TOKEN_SUCCESS, function(m) got = m.payload end)
    assert(app:acquire_token_silent({ scopes = { "User.Read" },
      account = account_of(app, "test.user@example.com") }):await())
    return got
  end

  it("carry no token unless PII logging is on", function()
    local p = token_events(nil)
    assert.is_nil(p.access_token)
    assert.is_nil(p.id_token)
    assert.equal("test.user@example.com", p.account.username)
    assert.is_table(p.scopes)
    p = token_events({ pii = true })
    assert.equal("fake-access-token", p.access_token)
    assert.equal(F.id_token().secret, p.id_token)
  end)
end)

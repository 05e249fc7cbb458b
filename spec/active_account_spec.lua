-- Account filters (msal-browser's AccountFilter), the active account kept
-- with the cache, and the account events: through the public API, offline
-- (fixture caches) and against the Entra-like authority.
local msal = require("msal")
local F = require("fixtures")
local cjson = require("cjson")
local entra = require("entra")
local proc = require("proc")
local files = require("files")

local NOW = 1800000000
local GUEST = "00000000-0000-0000-bbbb-000000000003"
local OTHER_UID = "00000000-0000-0000-aaaa-000000000099"
local OTHER_HID = OTHER_UID .. "." .. F.TENANT

-- Two users; the first is also a guest of GUEST (an id token, a profile).
local function two_users()
  local guest_profile = '{"tenantId":"' .. GUEST .. '","localAccountId":"guest-oid","name":"Guest Name",'
    .. '"username":"test.user@example.com","loginHint":"hint-1","isHomeTenant":false}'
  local home_profile = '{"tenantId":"' .. F.TENANT .. '","localAccountId":"' .. F.UID .. '","name":"Test User",'
    .. '"username":"test.user@example.com","isHomeTenant":true}'
  return F.doc({
    Account = {
      F.account({ tenantProfiles = { home_profile, guest_profile } }),
      F.account({ home_account_id = OTHER_HID, local_account_id = OTHER_UID, username = "Other@Example.com",
        name = "Other User" }),
    },
    IdToken = {
      F.id_token({ secret = F.jwt({ aud = F.CLIENT, tid = F.TENANT, oid = F.UID, sid = "sid-home",
        name = "Test User", preferred_username = "test.user@example.com", exp = NOW + 3600 }) }),
      F.id_token({ realm = GUEST, secret = F.jwt({ aud = F.CLIENT, tid = GUEST, oid = "guest-oid", sid = "sid-guest",
        name = "Guest Name", preferred_username = "test.user@example.com", exp = NOW + 3600 }) }),
      F.id_token({ home_account_id = OTHER_HID, secret = F.jwt({ aud = F.CLIENT, tid = F.TENANT, oid = OTHER_UID,
        name = "Other User", preferred_username = "Other@Example.com", emails = { "other.mail@example.com" },
        exp = NOW + 3600 }) }),
    },
    AccessToken = {
      F.access_token({ secret = "home-at" }),
      F.access_token({ realm = GUEST, secret = "guest-at" }),
      F.access_token({ home_account_id = OTHER_HID, secret = "other-at" }),
    },
    RefreshToken = { F.refresh_token(), F.refresh_token({ home_account_id = OTHER_HID }) },
  })
end

local function app_with(doc, cache)
  local authority = "https://login.microsoftonline.com/common"
  local app = msal.PublicClientApplication.new({
    auth = { client_id = F.CLIENT, authority = authority,
      authority_metadata = cjson.encode({ issuer = authority .. "/v2.0", token_endpoint = authority .. "/oauth2/v2.0/token",
        authorization_endpoint = authority .. "/oauth2/v2.0/authorize" }) },
    cache = cache,
    system = { clock = function() return NOW end,
      transport = require("fake_transport").new(function() error("no network expected") end) },
  })
  if doc then app:get_token_cache():deserialize(cjson.encode(doc)) end
  return app
end

local function events_of(app)
  local seen = {}
  app:add_event_callback(function(m) seen[#seen + 1] = m end)
  return seen
end

local function types(seen)
  local out = {}
  for i, m in ipairs(seen) do out[i] = m.event_type end
  return out
end

describe("account filters", function()
  it("find accounts by tenant_id, login_hint, sid and the user's fields", function()
    local app = app_with(two_users())
    local function find(f) return app:get_account(f) end
    assert.equal(GUEST, find({ tenant_id = GUEST }).tenant_id)
    assert.equal("guest-oid", find({ tenant_id = GUEST }).local_account_id)
    assert.equal("Guest Name", find({ tenant_id = GUEST }).name)
    assert.equal(F.TENANT, find({ tenant_id = F.TENANT }).tenant_id)
    -- login_hint: the profile's login hint, a username (without case), an email claim
    assert.equal(GUEST, find({ login_hint = "hint-1" }).tenant_id)
    assert.equal(F.HID, find({ login_hint = "TEST.USER@example.com" }).home_account_id)
    assert.equal(F.TENANT, find({ login_hint = "TEST.USER@example.com" }).tenant_id)
    assert.equal(OTHER_HID, find({ login_hint = "other@example.com" }).home_account_id)
    assert.equal(OTHER_HID, find({ login_hint = "other.mail@example.com" }).home_account_id)
    -- sid: the id token's claim, per tenant
    assert.equal(F.TENANT, find({ sid = "sid-home" }).tenant_id)
    assert.equal(GUEST, find({ sid = "sid-guest" }).tenant_id)
    assert.is_nil(find({ sid = "sid-none" }))
    -- the user's own fields, as before
    assert.equal(OTHER_HID, find({ home_account_id = OTHER_HID }).home_account_id)
    assert.equal(OTHER_HID, find({ local_account_id = OTHER_UID }).home_account_id)
    assert.equal(GUEST, find({ local_account_id = "guest-oid" }).tenant_id)
    assert.equal(OTHER_HID, find({ username = "OTHER@example.COM" }).home_account_id)
    assert.equal(OTHER_HID, find({ name = "Other User" }).home_account_id)
    assert.equal(F.HID, find({ environment = "login.microsoftonline.com", username = "test.user@example.com" }).home_account_id)
    assert.is_nil(find({ environment = "login.partner.microsoftonline.cn", username = "test.user@example.com" }))
    assert.equal(GUEST, find({ is_home_tenant = false }).tenant_id)
    assert.equal(GUEST, find({ home_account_id = F.HID, tenant_id = GUEST }).tenant_id)
    assert.is_nil(find({ home_account_id = OTHER_HID, tenant_id = GUEST }))
    assert.equal("MSSTS", find({ authority_type = "MSSTS" }).authority_type)
  end)

  it("pick accounts for get_all_accounts, one view per user", function()
    local app = app_with(two_users())
    assert.equal(2, #app:get_all_accounts())
    assert.equal(2, #app:get_all_accounts({}))
    local in_guest = app:get_all_accounts({ tenant_id = GUEST })
    assert.equal(1, #in_guest)
    assert.equal(GUEST, in_guest[1].tenant_id)
    local home = app:get_all_accounts({ is_home_tenant = true })
    assert.equal(2, #home)
    for _, a in ipairs(home) do assert.equal(F.TENANT, a.tenant_id) end
    assert.same({}, app:get_all_accounts({ username = "nobody@example.com" }))
  end)

  it("refuse unknown keys (naming them, with MSAL.js spellings' snake_case), wrong types, and empty filters", function()
    local app = app_with(two_users())
    local function refused(fn, f, pattern)
      local ok, err = pcall(fn, app, f)
      assert.is_false(ok)
      assert.equal("ClientConfigurationError", err.name)
      assert.equal("invalid_account_filter", err.error_code)
      if pattern then assert.matches(pattern, err.error_message, 1, true) end
    end
    for _, fn in ipairs({ app.get_account, app.get_all_accounts }) do
      refused(fn, { tenantId = GUEST }, "'tenantId' (did you mean 'tenant_id'?)")
      refused(fn, { loginHint = "x" }, "'login_hint'")
      refused(fn, { home_account = F.HID }, "unknown account filter key 'home_account'")
      refused(fn, { username = 5 }, "'username' must be a string")
      refused(fn, { is_home_tenant = "yes" }, "must be a boolean")
      refused(fn, "x")
    end
    refused(app.get_account, {})
    refused(app.get_account, { home_account_id = 5 })
  end)
end)

describe("the active account", function()
  it("is set, kept with the cache as msal-browser keeps it, used by silent calls, and cleared", function()
    local app = app_with(two_users())
    local seen = events_of(app)
    assert.is_nil(app:get_active_account())
    local _, err = app:acquire_token_silent({ scopes = { "User.Read" } }):await()
    assert.equal("no_account_in_silent_request", err.error_code)
    app:set_active_account(app:get_account({ tenant_id = GUEST }))
    local a = app:get_active_account()
    assert.equal(F.HID, a.home_account_id)
    assert.equal(GUEST, a.tenant_id)
    assert.equal("guest-oid", a.local_account_id)
    assert.equal("guest-at", assert(app:acquire_token_silent({ scopes = { "User.Read" } }):await()).access_token)
    -- a request's account wins
    assert.equal("other-at", assert(app:acquire_token_silent({ scopes = { "User.Read" },
      account = app:get_account({ home_account_id = OTHER_HID }) }):await()).access_token)
    -- in the document: its own section, msal-browser's name and filters
    local doc = cjson.decode(app:get_token_cache():serialize())
    assert.same({ ["msal." .. F.CLIENT .. ".active-account-filters"] =
      { homeAccountId = F.HID, localAccountId = "guest-oid", tenantId = GUEST } }, doc.ActiveAccount)
    -- another app reading the document has the same active account
    local other = app_with(doc)
    assert.equal(GUEST, other:get_active_account().tenant_id)
    -- the same account again changes nothing; nil clears
    app:set_active_account(app:get_account({ tenant_id = GUEST }))
    app:set_active_account(nil)
    assert.is_nil(app:get_active_account())
    assert.is_nil(cjson.decode(app:get_token_cache():serialize()).ActiveAccount)
    assert.same({ msal.EventType.ACQUIRE_TOKEN_START, msal.EventType.ACQUIRE_TOKEN_FAILURE,
      msal.EventType.ACTIVE_ACCOUNT_CHANGED, msal.EventType.ACQUIRE_TOKEN_START, msal.EventType.ACQUIRE_TOKEN_SUCCESS,
      msal.EventType.ACQUIRE_TOKEN_START, msal.EventType.ACQUIRE_TOKEN_SUCCESS, msal.EventType.ACTIVE_ACCOUNT_CHANGED },
      types(seen))
    assert.has_error(function() app:set_active_account("someone") end)
    assert.has_error(function() app:set_active_account({ home_account_id = 5 }) end)
  end)

  it("goes with its account: remove_account and logout clear it, with the events", function()
    local app = app_with(two_users())
    local seen = events_of(app)
    app:set_active_account(app:get_account({ home_account_id = OTHER_HID }))
    -- removing another account leaves it
    assert(select(1, app:remove_account(app:get_account({ home_account_id = F.HID })):await()) == nil)
    assert.equal(OTHER_HID, app:get_active_account().home_account_id)
    app:remove_account(app:get_active_account()):await()
    assert.is_nil(app:get_active_account())
    -- removing an account that is not there any more says nothing
    app:remove_account({ home_account_id = OTHER_HID, environment = F.ENV }):await()
    assert.same({ msal.EventType.ACTIVE_ACCOUNT_CHANGED, msal.EventType.ACCOUNT_REMOVED,
      msal.EventType.ACCOUNT_REMOVED, msal.EventType.ACTIVE_ACCOUNT_CHANGED }, types(seen))
    assert.equal(F.HID, seen[2].payload.home_account_id)
    assert.equal(OTHER_HID, seen[3].payload.home_account_id)

    app = app_with(two_users())
    seen = events_of(app)
    app:set_active_account(app:get_all_accounts()[1])
    assert(app:logout_redirect():await())
    assert.is_nil(app:get_active_account())
    assert.same({ msal.EventType.ACTIVE_ACCOUNT_CHANGED, msal.EventType.LOGOUT_START, msal.EventType.ACCOUNT_REMOVED,
      msal.EventType.ACCOUNT_REMOVED, msal.EventType.ACTIVE_ACCOUNT_CHANGED, msal.EventType.LOGOUT_SUCCESS,
      msal.EventType.LOGOUT_END }, types(seen))
  end)

  it("persists in a file cache across applications, and msal-node keeps it when it writes the file", function()
    local dir, remove_dir = proc.tempdir()
    local path = dir .. "/cache.json"
    local app = app_with(nil, { location = "file", path = path })
    app:get_token_cache():access(true, function() app:get_token_cache():deserialize(cjson.encode(two_users())) end)
    app:set_active_account(app:get_account({ home_account_id = OTHER_HID }))
    local again = app_with(nil, { location = "file", path = path })
    assert.equal(OTHER_HID, again:get_active_account().home_account_id)
    assert.equal("other-at", assert(again:acquire_token_silent({ scopes = { "User.Read" } }):await()).access_token)
    -- msal-node reads the file (its accounts unchanged) and writes the section back
    local PEER = (os.getenv("MSAL_TEST_ROOT") or ".") .. "/spec/support/node/peer.js"
    local out, code, err = proc.run("node " .. proc.quote(PEER) .. " roundtrip " .. proc.quote(path) .. " "
      .. proc.quote(dir .. "/back.json") .. " " .. F.CLIENT .. " https://login.microsoftonline.com/common",
      { plain = true })
    assert(code == 0, "msal-node peer failed: " .. tostring(err) .. tostring(out))
    local back = cjson.decode((assert(files.read(dir .. "/back.json"))))
    assert.same(cjson.decode((assert(files.read(path)))).ActiveAccount, back.ActiveAccount)
    remove_dir()
  end)

  it("answers acquire_token's silent half when the request names no account", function()
    local app = app_with(two_users())
    app:set_active_account(app:get_account({ home_account_id = OTHER_HID }))
    local r = assert(app:acquire_token({ scopes = { "User.Read" } }, { interaction = "device_code" }):await())
    assert.equal("other-at", r.access_token)
  end)
end)

describe("account events against the Entra-like authority", function()
  before_each(function()
    entra.reset()
    require("msal.authority").clear_cache()
  end)

  local REDIRECT = "http://localhost:8400/callback"
  local function new_app()
    return msal.PublicClientApplication.new({ auth = { client_id = "lua-msal-app",
      authority = entra.base() .. "/" .. entra.TENANT, redirect_uri = REDIRECT } })
  end
  local function browse(app, url)
    local res = assert(require("msal.network").transport(app):send({ method = "GET", url = url }):await())
    return res.headers.location
  end

  it("login_redirect: LOGIN_START, then LOGIN_SUCCESS and ACCOUNT_ADDED once the redirect is handled", function()
    local app = new_app()
    local seen = events_of(app)
    local r = assert(app:login_redirect({ scopes = { "User.Read" } }):await())
    local result = assert(app:handle_redirect_promise(browse(app, r.url)):await())
    assert.same({ msal.EventType.LOGIN_START, msal.EventType.HANDLE_REDIRECT_START, msal.EventType.LOGIN_SUCCESS,
      msal.EventType.ACCOUNT_ADDED, msal.EventType.HANDLE_REDIRECT_END }, types(seen))
    assert.equal("redirect", seen[3].interaction_type)
    assert.equal(result.account.home_account_id, seen[3].payload.account.home_account_id)
    assert.is_nil(seen[3].payload.access_token) -- no token without PII logging
    assert.equal(result.account.home_account_id, seen[4].payload.home_account_id)
    assert.equal("Test User", seen[4].payload.id_token_claims.name)
    -- a second sign-in of the same user adds no account
    seen = events_of(app)
    r = assert(app:acquire_token_redirect({ scopes = { "User.Read" } }):await())
    assert(app:handle_redirect_promise(browse(app, r.url)):await())
    for _, t in ipairs(types(seen)) do assert.are_not.equal(msal.EventType.ACCOUNT_ADDED, t) end
  end)

  it("login_redirect that comes back with an error: LOGIN_FAILURE", function()
    local app = new_app()
    local seen = events_of(app)
    entra.next({ endpoint = "authorize", redirect_params = { error = "access_denied",
      error_description = "AADSTS65004: User declined to consent." } })
    local r = assert(app:login_redirect({ scopes = { "User.Read" } }):await())
    local _, err = app:handle_redirect_promise(browse(app, r.url)):await()
    assert.is_table(err)
    assert.same({ msal.EventType.LOGIN_START, msal.EventType.HANDLE_REDIRECT_START, msal.EventType.LOGIN_FAILURE,
      msal.EventType.HANDLE_REDIRECT_END }, types(seen))
    assert.equal(err, seen[3].error)
  end)
end)

-- The store's account_tenants query and the accounts built on it: tenant
-- profiles as other programs wrote them, malformed ones included, and a
-- user's several Account entries (msal-python writes one per tenant).
local msal = require("msal")
local core = require("msal.core")
local cjson = require("cjson")
local F = require("fixtures")

local GUEST = "00000000-0000-0000-bbbb-000000000003"

local function store_of(accounts)
  local s = core.store.new()
  s:set_aliases(require("msal.authority").CLOUDS)
  local doc = { Account = {} }
  for k, a in pairs(accounts) do doc.Account[k] = a end
  assert(s:load(cjson.encode(doc)))
  return s
end

describe("store:account_tenants", function()
  it("reads each tenantProfiles string's members, skipping what is not one JSON object", function()
    local profiles = {
      '{"tenantId":"' .. F.TENANT .. '","localAccountId":"' .. F.UID .. '","name":"Zo\\u00eb \\"Z\\"","isHomeTenant":true}',
      "not json", "[1,2]", '{"tenantId":"x"} trailing', '{"tenantId":', "", '{"a":{"b":[1,{"c":"d"}]},"tenantId":"t2"}',
    }
    local a = F.account()
    a.tenantProfiles = profiles
    local s = core.store.new()
    -- a non-string element too, as a hand-edited file may hold
    local json = cjson.encode({ Account = { k = a } }):gsub('"tenantProfiles":%[', '"tenantProfiles":[42,null,')
    assert(s:load(json))
    local t = s:account_tenants(F.HID, F.ENV)
    assert.equal(1, #t)
    assert.equal(F.TENANT, t[1].tenant_id)
    assert.equal(F.UID, t[1].local_account_id)
    assert.equal(2, #t[1].profiles)
    assert.same({ tenantId = F.TENANT, localAccountId = F.UID, name = 'Zoë "Z"' }, t[1].profiles[1])
    assert.equal("t2", t[1].profiles[2].tenantId)
  end)

  it("gives every Account entry of the user in the cloud, aliases included, and none of others", function()
    local s = store_of({
      a = F.account(),
      b = F.account({ environment = "login.microsoftonline.com", realm = GUEST, local_account_id = "guest-oid" }),
      c = F.account({ environment = "login.partner.microsoftonline.cn" }),
      d = F.account({ home_account_id = "someone.else" }),
    })
    local t = s:account_tenants(F.HID, "login.microsoft.com")
    assert.equal(2, #t)
    local realms = { t[1].tenant_id, t[2].tenant_id }
    table.sort(realms)
    assert.same({ F.TENANT, GUEST }, realms)
    assert.is_nil(t[1].profiles)
    assert.same({}, s:account_tenants("nobody", F.ENV))
    assert.has_error(function() s:account_tenants(nil, F.ENV) end)
  end)
end)

describe("accounts from msal-python's per-tenant entries", function()
  local function app_of(doc)
    local app = msal.PublicClientApplication.new({ auth = { client_id = F.CLIENT,
      authority = "https://login.microsoftonline.com/common" } })
    app:get_token_cache():deserialize(cjson.encode(doc))
    return app
  end

  it("are one account, the home tenant's entry on top, with a profile per entry", function()
    local guest = F.account({ environment = "login.microsoftonline.com", realm = GUEST, local_account_id = "guest-oid" })
    local home = F.account({ environment = "login.microsoftonline.com" })
    guest.name, home.name = nil, nil
    local app = app_of({ Account = { ["k-guest"] = guest, ["k-home"] = home } })
    local all = app:get_all_accounts()
    assert.equal(1, #all)
    assert.equal(F.TENANT, all[1].tenant_id)
    assert.same({ tenant_id = GUEST, local_account_id = "guest-oid", username = "", is_home_tenant = false },
      all[1].tenant_profiles[GUEST])
    assert.is_true(all[1].tenant_profiles[F.TENANT].is_home_tenant)
    local g = app:get_account({ tenant_id = GUEST })
    assert.equal("guest-oid", g.local_account_id)
    assert.equal(F.HID, g.home_account_id)
    assert.equal(GUEST, app:get_account({ is_home_tenant = false }).tenant_id)
    assert.equal(F.TENANT, app:get_account({ is_home_tenant = true }).tenant_id)
    assert.equal(GUEST, app:get_account({ local_account_id = "guest-oid" }).tenant_id)
  end)

  it("in two clouds are two accounts", function()
    local app = app_of({ Account = { a = F.account(), b = F.account({ environment = "login.microsoftonline.us" }) } })
    assert.equal(2, #app:get_all_accounts())
  end)
end)

describe("store:section / store:set_section", function()
  it("keep a top-level section of the document's own, set, replaced and removed", function()
    local s = core.store.new()
    assert(s:load('{"Account":{},"Other":{"kept":[1,2]},"ActiveAccount":{"a":1}}'))
    assert.equal('{"a":1}', s:section("ActiveAccount"))
    assert.equal('{"kept":[1,2]}', s:section("Other"))
    assert.is_nil(s:section("Missing"))
    local gen = s:generation()
    s:set_section("ActiveAccount", ' { "b" : [ true , null ] } ')
    assert.are_not.equal(gen, s:generation())
    assert.equal('{"b":[true,null]}', s:section("ActiveAccount"))
    s:set_section("Other", nil)
    s:set_section("Missing", nil)
    s:set_section("New", '"text"')
    local doc = cjson.decode(s:serialize())
    assert.same({ b = { true, cjson.null } }, doc.ActiveAccount)
    assert.is_nil(doc.Other)
    assert.equal("text", doc.New)
    -- the document reads back the same
    local again = core.store.new()
    assert(again:load(s:serialize()))
    assert.equal(s:serialize(), again:serialize())
  end)

  it("refuse the entry sections, odd names and what is not one JSON value", function()
    local s = core.store.new()
    for _, name in ipairs({ "Account", "AccessToken", "AppMetadata" }) do
      assert.has_error(function() s:set_section(name, "{}") end)
    end
    for _, name in ipairs({ "", 'a"b', "a\\b", "a\nb", "caf\195\169" }) do
      assert.has_error(function() s:set_section(name, "{}") end)
    end
    for _, json in ipairs({ "", "{", "{} {}", "[1,]", "nope" }) do
      assert.has_error(function() s:set_section("X", json) end)
    end
    assert.is_nil(s:section("X"))
  end)
end)

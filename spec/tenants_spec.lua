-- Entra tenants as MSAL sees them, against the Entra-like authority: a
-- tenant named by its domain or by common/organizations/consumers finds the
-- tokens cached under the id token's tenant id.
local msal = require("msal")
local entra = require("entra")

local GUEST = "00000000-0000-0000-bbbb-000000000003"

local GUEST_OID = "00000000-0000-0000-aaaa-000000000077"

-- The default user, also a guest of GUEST (named fabrikam.example too).
local function with_guest()
  entra.config({
    users = { { upn = "test.user@example.com", name = "Test User", oid = entra.UID, tid = entra.TENANT,
      guests = { [GUEST] = { oid = GUEST_OID, name = "Test User (Fabrikam)" } } } },
    tenant_domains = { ["example.com"] = entra.TENANT, ["fabrikam.example"] = GUEST },
  })
end

local function new_app(authority, client_id)
  return msal.PublicClientApplication.new({
    auth = { client_id = client_id or "lua-msal-app", authority = authority },
    system = { transport = require("msal.transport.curl").new() },
  })
end

local function silent(app, req)
  req.scopes = req.scopes or { "User.Read" }
  return app:acquire_token_silent(req):await()
end

describe("tenants", function()
  before_each(function()
    entra.reset()
    require("msal.authority").clear_cache()
  end)

  describe("a tenant not named by its id", function()
    for _, tenant in ipairs({ "example.com", "organizations", "common", "consumers" }) do
      it("(" .. tenant .. ") finds the tokens cached under the id token's tid, with no token request", function()
        local app = new_app(entra.base() .. "/" .. tenant)
        local signed = entra.sign_in(app)
        assert.equal(entra.TENANT, signed.tenant_id)
        local account = app:get_all_accounts()[1]
        -- a new process: the authority's metadata is not known yet
        require("msal.authority").clear_cache()
        for _ = 1, 3 do
          local r = assert(silent(app, { account = account }))
          assert.is_true(r.from_cache)
          assert.equal(signed.access_token, r.access_token)
          assert.equal(entra.TENANT, r.tenant_id)
        end
        assert.equal(0, entra.refresh_requests())
        -- a domain's id is read from its metadata (the new process's one
        -- discovery); a multi-tenant authority needs none before the cache
        assert.equal(tenant == "example.com" and 2 or 1, #entra.requests("discovery"))
      end)
    end

    it("on a request, finds the tokens of the tenant its domain names", function()
      local app = new_app(entra.base() .. "/common")
      local signed = entra.sign_in(app)
      local r = assert(silent(app, { account = app:get_all_accounts()[1], authority = entra.base() .. "/example.com" }))
      assert.is_true(r.from_cache)
      assert.equal(signed.access_token, r.access_token)
      assert.equal(0, entra.refresh_requests())
    end)
  end)

  it("looks tokens up by a tenant id authority's tenant, not the account's", function()
    with_guest()
    local app = new_app(entra.base() .. "/common")
    local home = entra.sign_in(app)
    local r = assert(silent(app, { account = app:get_all_accounts()[1], authority = entra.base() .. "/" .. GUEST }))
    assert.is_false(r.from_cache)
    assert.are_not.equal(home.access_token, r.access_token)
    assert.equal(GUEST, r.tenant_id)
    assert.equal(1, entra.refresh_requests())
    assert.equal(GUEST, entra.requests("token")[2].tenant)
  end)

  it("never serves the account's home tokens for a domain that names another tenant", function()
    with_guest()
    local app = new_app(entra.base() .. "/common")
    local home = entra.sign_in(app)
    local account = app:get_all_accounts()[1]
    local guest_authority = entra.base() .. "/fabrikam.example"
    local r = assert(silent(app, { account = account, authority = guest_authority }))
    assert.is_false(r.from_cache)
    assert.are_not.equal(home.access_token, r.access_token)
    assert.equal(GUEST, r.tenant_id)
    -- a new process: the domain's id is read again before the cache answers
    require("msal.authority").clear_cache()
    local again = assert(silent(app, { account = account, authority = guest_authority }))
    assert.is_true(again.from_cache)
    assert.equal(r.access_token, again.access_token)
    assert.equal(1, entra.refresh_requests())
  end)
end)

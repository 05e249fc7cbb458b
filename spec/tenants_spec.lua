-- Entra tenants as MSAL sees them, against the Entra-like authority: a
-- tenant named by its domain or by common/organizations/consumers finds the
-- tokens cached under the id token's tenant id.
local msal = require("msal")
local entra = require("entra")
local cjson = require("cjson")
local proc = require("proc")
local files = require("files")

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

  describe("a guest tenant", function()
    -- signed in at home, then a token from the guest tenant
    local function home_then_guest()
      with_guest()
      local app = new_app(entra.base() .. "/common")
      local home = entra.sign_in(app)
      local guest = assert(silent(app, { account = app:get_all_accounts()[1], authority = entra.base() .. "/" .. GUEST }))
      return app, home, guest
    end

    it("adds a tenant profile and leaves the home account as it was", function()
      local app, home, guest = home_then_guest()
      local all = app:get_all_accounts()
      assert.equal(1, #all)
      local a = all[1]
      assert.equal(entra.UID .. "." .. entra.TENANT, a.home_account_id)
      assert.equal(entra.TENANT, a.tenant_id)
      assert.equal(entra.UID, a.local_account_id)
      assert.equal("Test User", a.name)
      assert.equal(entra.TENANT, a.id_token_claims.tid)
      assert.same({ tenant_id = entra.TENANT, local_account_id = entra.UID, name = "Test User",
        username = "test.user@example.com", is_home_tenant = true }, a.tenant_profiles[entra.TENANT])
      assert.same({ tenant_id = GUEST, local_account_id = GUEST_OID, name = "Test User (Fabrikam)",
        username = "test.user@example.com", is_home_tenant = false }, a.tenant_profiles[GUEST])
      -- the guest answer's account is the guest tenant's view of it
      assert.equal(GUEST, guest.account.tenant_id)
      assert.equal(GUEST_OID, guest.account.local_account_id)
      assert.equal(a.home_account_id, guest.account.home_account_id)
      -- silent calls through common serve the home tenant's token
      local r = assert(silent(app, { account = a }))
      assert.is_true(r.from_cache)
      assert.equal(home.access_token, r.access_token)
      assert.equal(entra.TENANT, r.tenant_id)
      assert.equal(entra.TENANT, r.account.tenant_id)
      assert.equal(1, entra.refresh_requests())
    end)

    it("is found by get_account{tenant_id}, and its view's silent calls serve its tokens", function()
      local app, home, guest = home_then_guest()
      local g = app:get_account({ tenant_id = GUEST })
      assert.equal(entra.UID .. "." .. entra.TENANT, g.home_account_id)
      assert.equal(GUEST, g.tenant_id)
      assert.equal(GUEST_OID, g.local_account_id)
      assert.equal("Test User (Fabrikam)", g.name)
      assert.equal(GUEST, g.id_token_claims.tid)
      assert.equal(GUEST_OID, g.id_token_claims.oid)
      assert.is_true(g.tenant_profiles[entra.TENANT].is_home_tenant)
      local r = assert(silent(app, { account = g }))
      assert.is_true(r.from_cache)
      assert.equal(guest.access_token, r.access_token)
      assert.equal(GUEST, r.tenant_id)
      -- the authority's tenant wins over the account's
      r = assert(silent(app, { account = g, authority = entra.base() .. "/" .. entra.TENANT }))
      assert.equal(home.access_token, r.access_token)
      assert.equal(entra.TENANT, app:get_account({ tenant_id = entra.TENANT }).tenant_id)
      assert.is_nil(app:get_account({ tenant_id = "00000000-0000-0000-bbbb-000000000404" }))
      assert.equal(1, entra.refresh_requests())
    end)

    it("keeps one Account entry, as msal-node 7 writes it", function()
      local app = home_then_guest()
      local doc = cjson.decode(app:get_token_cache():serialize())
      local hid = entra.UID .. "." .. entra.TENANT
      local env = require("msal.authority").parse(entra.base() .. "/common").cache_env
      local key, n = next(doc.Account), 0
      for _ in pairs(doc.Account) do n = n + 1 end
      assert.equal(1, n)
      assert.equal((hid .. "-" .. env .. "-" .. entra.TENANT):lower(), key)
      local e = doc.Account[key]
      assert.equal(entra.TENANT, e.realm)
      assert.equal(entra.UID, e.local_account_id)
      assert.same({
        '{"tenantId":"' .. entra.TENANT .. '","localAccountId":"' .. entra.UID .. '","name":"Test User",'
          .. '"username":"test.user@example.com","isHomeTenant":true}',
        '{"tenantId":"' .. GUEST .. '","localAccountId":"' .. GUEST_OID .. '","name":"Test User (Fabrikam)",'
          .. '"username":"test.user@example.com","isHomeTenant":false}',
      }, e.tenantProfiles)
      -- each tenant keeps its own id token
      local realms = {}
      for _, t in pairs(doc.IdToken) do realms[#realms + 1] = t.realm end
      table.sort(realms)
      assert.same({ entra.TENANT, GUEST }, realms)
    end)

    it("signed in to first makes a home account with the guest tenant's profile only", function()
      with_guest()
      local app = new_app(entra.base() .. "/" .. GUEST)
      local r = entra.sign_in(app)
      assert.equal(GUEST, r.tenant_id)
      assert.equal(GUEST, r.account.tenant_id)
      local a = app:get_all_accounts()[1]
      assert.equal(1, #app:get_all_accounts())
      assert.equal(entra.TENANT, a.tenant_id) -- client_info's home tenant
      assert.equal(entra.UID, a.local_account_id)
      assert.is_nil(a.tenant_profiles[entra.TENANT])
      assert.is_false(a.tenant_profiles[GUEST].is_home_tenant)
      -- the home tenant later adds its profile, and the home fields stay
      local home = assert(silent(app, { account = a, authority = entra.base() .. "/" .. entra.TENANT }))
      assert.equal(entra.TENANT, home.account.tenant_id)
      a = app:get_all_accounts()[1]
      assert.is_true(a.tenant_profiles[entra.TENANT].is_home_tenant)
      assert.equal("Test User", a.tenant_profiles[entra.TENANT].name)
    end)

    it("is read by msal-node: one account per tenant profile, each serving its tenant's token", function()
      local app, home, guest = home_then_guest()
      local dir, remove_dir = proc.tempdir()
      local file = dir .. "/tenants.json"
      files.write(file, app:get_token_cache():serialize())
      local PEER = (os.getenv("MSAL_TEST_ROOT") or ".") .. "/spec/support/node/peer.js"
      local function peer(...)
        local args = {}
        for i, v in ipairs({ ... }) do args[i] = proc.quote(v) end
        local out, code, err = proc.run("node " .. proc.quote(PEER) .. " " .. table.concat(args, " "), { plain = true })
        assert(code == 0, "msal-node peer failed: " .. tostring(err))
        return cjson.decode(out)
      end
      local hid = entra.UID .. "." .. entra.TENANT
      local authority = entra.base() .. "/common"
      local listed = peer("tenants", file, "lua-msal-app", authority)
      assert.equal(2, #listed)
      local by_tenant = {}
      for _, a in ipairs(listed) do by_tenant[a.tenantId] = a end
      assert.equal(GUEST_OID, by_tenant[GUEST].localAccountId)
      assert.equal("Test User (Fabrikam)", by_tenant[GUEST].name)
      assert.equal(GUEST, by_tenant[GUEST].idTokenTid)
      assert.equal(entra.UID, by_tenant[entra.TENANT].localAccountId)
      assert.equal(2, #by_tenant[GUEST].tenantProfiles)
      -- msal-node's silent calls refuse http authorities; offline, https
      -- names the same environment (host and port)
      local https = authority:gsub("^http:", "https:")
      local r = peer("tenant_silent", file, "lua-msal-app", https, hid, GUEST, "User.Read")
      assert.equal(guest.access_token, r.accessToken)
      r = peer("tenant_silent", file, "lua-msal-app", https, hid, entra.TENANT, "User.Read")
      assert.equal(home.access_token, r.accessToken)
      -- and what msal-node writes back is the same account here
      peer("roundtrip", file, dir .. "/back.json", "lua-msal-app", authority)
      local back = new_app(authority)
      back:get_token_cache():deserialize(assert(files.read(dir .. "/back.json")))
      assert.equal(1, #back:get_all_accounts())
      assert.equal(GUEST_OID, back:get_account({ tenant_id = GUEST }).local_account_id)
      remove_dir()
    end)

    it("lists msal-python's per-tenant Account entries as one account with both profiles", function()
      local app, home = home_then_guest()
      local doc = cjson.decode(app:get_token_cache():serialize())
      local _, e = next(doc.Account)
      -- msal-python's shape: one entry per tenant, keyed by realm, no tenantProfiles
      local hid = e.home_account_id
      local py_home = { home_account_id = hid, environment = e.environment, realm = entra.TENANT,
        local_account_id = entra.UID, username = e.username, authority_type = "MSSTS" }
      local py_guest = { home_account_id = hid, environment = e.environment, realm = GUEST,
        local_account_id = GUEST_OID, username = e.username, authority_type = "MSSTS" }
      doc.Account = { [hid .. "-" .. e.environment .. "-" .. GUEST] = py_guest,
        [hid .. "-" .. e.environment .. "-" .. entra.TENANT] = py_home }
      local py = new_app(entra.base() .. "/common")
      py:get_token_cache():deserialize(cjson.encode(doc))
      local all = py:get_all_accounts()
      assert.equal(1, #all)
      assert.equal(entra.TENANT, all[1].tenant_id)
      assert.equal(GUEST_OID, all[1].tenant_profiles[GUEST].local_account_id)
      assert.equal(GUEST, py:get_account({ tenant_id = GUEST }).tenant_id)
      assert.equal(home.access_token, assert(silent(py, { account = all[1] })).access_token)
    end)
  end)

  describe("read by msal-python (Debian's python3-msal)", function()
    local F = require("fixtures")
    local PUBLIC = "https://login.microsoftonline.com"

    -- A user signed in at home, then a token from GUEST, through the
    -- library's own save path, with Entra's answers played by a fake transport.
    local function guest_cache()
      local ci = F.b64url(cjson.encode({ uid = F.UID, utid = F.TENANT }))
      local function answer(tid, oid)
        return { status = 200, json = { token_type = "Bearer", scope = "User.Read", expires_in = 3600,
          access_token = "at-" .. tid, refresh_token = "rt-" .. tid, client_info = ci,
          id_token = F.jwt({ aud = F.CLIENT, iss = PUBLIC .. "/" .. tid .. "/v2.0", tid = tid, oid = oid, sub = "s",
            name = "N", preferred_username = "test.user@example.com", exp = os.time() + 3600, iat = os.time() }) } }
      end
      local transport = require("fake_transport").new(function(req)
        local base = req.url:match("^(.-)/v2%.0/%.well%-known")
        if base then
          return { status = 200, json = { issuer = base .. "/v2.0", token_endpoint = base .. "/oauth2/v2.0/token",
            authorization_endpoint = base .. "/oauth2/v2.0/authorize" } }
        end
        local tenant = req.url:match("^" .. PUBLIC:gsub("%p", "%%%0") .. "/([^/]+)/")
        return tenant == GUEST and answer(GUEST, GUEST_OID) or answer(F.TENANT, F.UID)
      end)
      local app = msal.PublicClientApplication.new({ auth = { client_id = F.CLIENT, authority = PUBLIC .. "/" .. F.TENANT },
        system = { transport = transport } })
      app:get_token_cache():deserialize(cjson.encode(F.doc({ RefreshToken = { F.refresh_token() },
        Account = { F.account() } })))
      local a = app:get_all_accounts()[1]
      assert(app:acquire_token_silent({ scopes = { "User.Read" }, account = a, force_refresh = true }):await())
      assert(app:acquire_token_silent({ scopes = { "User.Read" }, account = a, authority = PUBLIC .. "/" .. GUEST }):await())
      assert.equal(1, #app:get_all_accounts())
      return app:get_token_cache():serialize()
    end

    -- msal-python with an http_client that answers instance discovery and
    -- the OpenID configuration here, and refuses token requests.
    local PY = [[
import json, sys, msal
cache = msal.SerializableTokenCache()
cache.deserialize(open(sys.argv[1]).read())
class R:
    def __init__(self, body): self.status_code, self.text, self.headers = 200, json.dumps(body), {}
    def raise_for_status(self): pass
class Local:
    def post(self, *a, **k): raise RuntimeError("msal-python tried a token request")
    def get(self, url, *a, **k):
        if "discovery/instance" in url:
            return R({"tenant_discovery_endpoint": "https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration",
                "api-version": "1.1", "metadata": [{"preferred_network": "login.microsoftonline.com",
                "preferred_cache": "login.windows.net", "aliases": ["login.microsoftonline.com", "login.windows.net",
                "login.microsoft.com", "sts.windows.net"]}]})
        b = "https://login.microsoftonline.com/" + url.split("/")[3]
        return R({"authorization_endpoint": b + "/oauth2/v2.0/authorize", "token_endpoint": b + "/oauth2/v2.0/token",
            "issuer": b + "/v2.0", "device_authorization_endpoint": b + "/oauth2/v2.0/devicecode"})
    def close(self): pass
out = []
for tenant in sys.argv[3:]:
    app = msal.PublicClientApplication(sys.argv[2], authority="https://login.microsoftonline.com/" + tenant,
        token_cache=cache, http_client=Local())
    accounts = app.get_accounts()
    r = app.acquire_token_silent(["User.Read"], accounts[0])
    out.append({"accounts": len(accounts), "realm": accounts[0]["realm"], "access_token": r and r.get("access_token")})
print(json.dumps(out))
]]

    it("lists one account and serves each tenant's token by its authority", function()
      local dir, remove_dir = proc.tempdir()
      files.write(dir .. "/cache.json", guest_cache())
      files.write(dir .. "/peer.py", PY)
      -- Debian's interpreter, where python3-msal is installed
      local out, code, err = proc.run("/usr/bin/python3 " .. proc.quote(dir .. "/peer.py") .. " "
        .. proc.quote(dir .. "/cache.json") .. " " .. F.CLIENT .. " " .. F.TENANT .. " " .. GUEST, { plain = true })
      remove_dir()
      assert(code == 0, "msal-python failed: " .. tostring(err))
      assert.same({
        { accounts = 1, realm = F.TENANT, access_token = "at-" .. F.TENANT },
        { accounts = 1, realm = F.TENANT, access_token = "at-" .. GUEST },
      }, cjson.decode(out))
    end)
  end)
end)

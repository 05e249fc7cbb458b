-- Cache interop with the real msal-node (npm, spec/support/node): a cache
-- written here is read and served by msal-node with no network, and what
-- msal-node writes back is read and served here.
local msal = require("msal")
local F = require("fixtures")
local cjson = require("cjson")
local proc = require("proc")
local files = require("files")

local ROOT = os.getenv("MSAL_TEST_ROOT") or "."
local PEER = ROOT .. "/spec/support/node/peer.js"
local AUTHORITY = "https://login.microsoftonline.com/" .. F.TENANT
local NOW = os.time()

-- Runs the msal-node peer; returns its decoded JSON or fails with its stderr.
local function peer(...)
  local args = {}
  for i, a in ipairs({ ... }) do args[i] = proc.quote(a) end
  local out, code, err = proc.run("node " .. proc.quote(PEER) .. " " .. table.concat(args, " "))
  assert(code == 0, "msal-node peer failed: " .. err)
  return cjson.decode(out)
end

local write = files.write

local function read(path)
  return assert(files.read(path), "cannot read " .. path)
end

local function new_app()
  return msal.PublicClientApplication.new({ auth = { client_id = F.CLIENT, authority = AUTHORITY } })
end

-- Two users with tokens for two resources, put into the store through its
-- own API (keys computed here, not written by hand).
local function populate(app)
  local store = app:get_token_cache().store
  local users = {
    { uid = F.UID, name = "Test User", upn = "test.user@example.com" },
    { uid = "00000000-0000-0000-aaaa-000000000099", name = "Other User", upn = "other@example.com" },
  }
  local exp = tostring(NOW + 3600)
  for i, u in ipairs(users) do
    local hid = u.uid .. "." .. F.TENANT
    local common = { home_account_id = hid, environment = F.ENV }
    assert(store:put("Account", F.account({ home_account_id = hid, local_account_id = u.uid, name = u.name,
      username = u.upn, client_info = F.b64url(cjson.encode({ uid = u.uid, utid = F.TENANT })) })))
    assert(store:put("IdToken", F.id_token({ home_account_id = hid, secret = F.jwt({ aud = F.CLIENT, tid = F.TENANT,
      oid = u.uid, sub = "sub" .. i, name = u.name, preferred_username = u.upn,
      iss = "https://login.microsoftonline.com/" .. F.TENANT .. "/v2.0", exp = NOW + 3600, iat = NOW }) })))
    assert(store:put("AccessToken", F.access_token({ home_account_id = hid, secret = "graph-" .. i,
      target = "User.Read Mail.Read openid profile", cached_at = tostring(NOW - 10), expires_on = exp,
      extended_expires_on = exp })))
    assert(store:put("AccessToken", F.access_token({ home_account_id = hid, secret = "api-" .. i,
      target = "api://my-api/Data.Read", cached_at = tostring(NOW - 10), expires_on = exp, extended_expires_on = exp })))
    assert(store:put("RefreshToken", F.refresh_token(common)))
  end
  assert(store:put("AppMetadata", { client_id = F.CLIENT, environment = F.ENV }))
  return users
end

describe("cache interop with msal-node", function()
  local dir, remove_dir
  before_each(function()
    dir, remove_dir = proc.tempdir()
  end)
  after_each(function() remove_dir() end)

  it("msal-node reads a cache written here and serves the same tokens without network", function()
    local app = new_app()
    local users = populate(app)
    local file = dir .. "/from-lua.json"
    write(file, app:get_token_cache():serialize())

    local accounts = peer("accounts", file, F.CLIENT, AUTHORITY)
    local mine = app:get_all_accounts()
    assert.equal(#mine, #accounts)
    for i, a in ipairs(accounts) do
      assert.equal(mine[i].home_account_id, a.homeAccountId)
      assert.equal(mine[i].username, a.username)
      assert.equal(mine[i].tenant_id, a.tenantId)
    end
    for i, u in ipairs(users) do
      local hid = u.uid .. "." .. F.TENANT
      for _, scopes in ipairs({ { "Mail.Read" }, { "api://my-api/Data.Read" } }) do
        local node = peer("silent", file, F.CLIENT, AUTHORITY, hid, table.unpack and table.unpack(scopes) or unpack(scopes))
        local ours = assert(app:acquire_token_silent({ scopes = scopes,
          account = app:get_account({ home_account_id = hid }) }):await())
        assert.is_true(node.fromCache)
        assert.equal(ours.access_token, node.accessToken)
        assert.equal(scopes[1] == "Mail.Read" and "graph-" .. i or "api-" .. i, node.accessToken)
        assert.equal(ours.expires_on, node.expiresOn)
        assert.equal(u.name, node.idTokenClaims.name)
      end
    end
  end)

  it("reads back what msal-node serializes and serves it", function()
    local app = new_app()
    populate(app)
    local src, out = dir .. "/from-lua.json", dir .. "/from-node.json"
    write(src, app:get_token_cache():serialize())
    assert.is_true(peer("roundtrip", src, out, F.CLIENT, AUTHORITY).ok)
    local node_text = read(out)

    local back = new_app()
    back:get_token_cache():deserialize(node_text)
    local accounts = back:get_all_accounts()
    assert.equal(2, #accounts)
    for i, a in ipairs(accounts) do
      local r = assert(back:acquire_token_silent({ scopes = { "user.read" }, account = a }):await())
      assert.equal("graph-" .. i, r.access_token)
      assert.is_true(r.from_cache)
    end
    -- and it is the same cache: every entry survived the trip both ways
    local a, b = cjson.decode(app:get_token_cache():serialize()), cjson.decode(back:get_token_cache():serialize())
    for _, section in ipairs({ "Account", "IdToken", "AccessToken", "RefreshToken", "AppMetadata" }) do
      for key in pairs(a[section]) do assert.is_table(b[section][key], section .. " " .. key) end
    end
  end)

  it("keeps other libraries' fields through msal-node and back", function()
    local app = new_app()
    populate(app)
    local store = app:get_token_cache().store
    local key = store:find("RefreshToken", { home_account_id = F.HID })[1]
    assert(store:put("RefreshToken", { last_modification_time = "1767225600", python_only = "yes" }, key))
    local src, out = dir .. "/a.json", dir .. "/b.json"
    local doc = cjson.decode(app:get_token_cache():serialize())
    doc.PythonSection = { x = "y" }
    write(src, cjson.encode(doc))
    peer("roundtrip", src, out, F.CLIENT, AUTHORITY)
    local back = new_app()
    back:get_token_cache():deserialize(read(out))
    local rt = back:get_token_cache().store:get("RefreshToken", key)
    assert.equal("yes", rt.python_only)
    assert.equal("1767225600", rt.last_modification_time)
    assert.same({ x = "y" }, cjson.decode(back:get_token_cache():serialize()).PythonSection)
  end)
end)

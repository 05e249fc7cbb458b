-- msal.cache.shared_dict with a stand-in for ngx.shared.DICT (the same
-- plugin inside real nginx workers is in spec/hosts/openresty_spec.lua):
-- partitions per account, versions, merge-safe writes between "workers",
-- and one refresh for many through lock_refresh.
local msal = require("msal")
local loop = require("msal.loop")
local Promise = require("msal.promise")
local cjson = require("cjson")
local F = require("fixtures")
local fake_transport = require("fake_transport")
local shared_dict = require("msal.cache.shared_dict")

local NOW = 1800000000
local AUTHORITY = "https://login.microsoftonline.com/common"

-- ngx.shared.DICT's methods, on a table; expiry on the loop's clock.
local function fake_dict()
  local data, expires = {}, {}
  local d = { data = data, gets = {} }
  local function live(k)
    if expires[k] and loop.now_ms() >= expires[k] then data[k], expires[k] = nil, nil end
    return data[k]
  end
  function d:get(k)
    self.gets[k] = (self.gets[k] or 0) + 1
    return live(k)
  end
  function d:set(k, v, exptime)
    data[k], expires[k] = v, exptime and exptime > 0 and loop.now_ms() + exptime * 1000 or nil
    return true
  end
  function d:add(k, v, exptime)
    if live(k) ~= nil then return false, "exists" end
    return self:set(k, v, exptime)
  end
  function d:incr(k, by, init)
    local v = (live(k) or init) + by
    data[k] = v
    return v
  end
  function d:delete(k) data[k], expires[k] = nil, nil end
  return d
end

local function app_on(dict, transport, opts)
  return msal.PublicClientApplication.new({
    auth = { client_id = F.CLIENT, authority = AUTHORITY, authority_metadata = cjson.encode({
      issuer = "https://login.microsoftonline.com/{tenantid}/v2.0",
      token_endpoint = AUTHORITY .. "/oauth2/v2.0/token",
      authorization_endpoint = AUTHORITY .. "/oauth2/v2.0/authorize" }) },
    cache = shared_dict.new(dict, opts),
    system = { clock = function() return NOW end, transport = transport or fake_transport.new() } })
end

local function key_of(hid) return "msal:" .. F.CLIENT .. ":" .. hid end

-- The usual signed-in user stored in the dictionary, its access token
-- expired unless `fresh`.
local function seed(dict, fresh)
  local doc = F.signed_in(not fresh and { expires_on = tostring(NOW + 100) } or nil)
  dict:set(key_of(F.HID), cjson.encode(doc))
  dict:incr(key_of(F.HID) .. "#v", 1, 0)
end

local function answer(token)
  return { status = 200, json = { token_type = "Bearer", scope = "User.Read", expires_in = 3600,
    access_token = token, refresh_token = "rt-" .. token } }
end

local function request_for(app)
  return { scopes = { "User.Read" }, account = assert(app:get_account({ home_account_id = F.HID })) }
end

describe("shared dictionary cache", function()
  before_each(function() loop.reset() end)
  after_each(function() loop.reset() end)

  it("serves what one worker stored to another, from the account's own partition", function()
    local dict = fake_dict()
    seed(dict)
    local t = fake_transport.new({ answer("from-a") })
    local a, b = app_on(dict, t), app_on(dict)
    assert.equal("from-a", assert(a:acquire_token_silent(request_for(a)):await()).access_token)
    local r = assert(b:acquire_token_silent(request_for(b)):await())
    assert.equal("from-a", r.access_token)
    assert.is_true(r.from_cache)
    assert.equal(1, t.n)
    -- nothing was written outside the account's partition
    for k in pairs(dict.data) do
      assert.truthy(k:find(F.HID, 1, true) or k:find(":refresh:", 1, true), k)
    end
  end)

  it("rereads a partition only when its version moved", function()
    local dict = fake_dict()
    seed(dict, true)
    local app = app_on(dict)
    local req = request_for(app)
    for _ = 1, 5 do assert(app:acquire_token_silent(req):await()) end
    local text_reads = dict.gets[key_of(F.HID)]
    assert.is_true(text_reads <= 1, "read the partition " .. text_reads .. " times")
    dict:incr(key_of(F.HID) .. "#v", 1, 0)
    assert(app:acquire_token_silent(req):await())
    assert.equal(text_reads + 1, dict.gets[key_of(F.HID)])
  end)

  it("keeps the partitions it parsed: alternating users cost no parse, up to local_max_partitions", function()
    local function seed_user(dict, uid, secret)
      local hid = uid .. "." .. F.TENANT
      local o = { home_account_id = hid }
      local doc = F.doc({ Account = { F.account({ home_account_id = hid, local_account_id = uid }) },
        IdToken = { F.id_token(o) }, AccessToken = { F.access_token({ home_account_id = hid, secret = secret }) },
        RefreshToken = { F.refresh_token(o) } })
      dict:set(key_of(hid), cjson.encode(doc))
      dict:incr(key_of(hid) .. "#v", 1, 0)
      return hid
    end
    for _, case in ipairs({ { max = nil, reads = 1 }, { max = 1, reads = 5 }, { max = 2, reads = 1 } }) do
      local dict = fake_dict()
      local hids = { seed_user(dict, "00000000-0000-0000-aaaa-00000000000a", "token-a"),
        seed_user(dict, "00000000-0000-0000-aaaa-00000000000b", "token-b") }
      local app = app_on(dict, nil, { local_max_partitions = case.max })
      local accounts = {}
      for i, hid in ipairs(hids) do accounts[i] = assert(app:get_account({ home_account_id = hid })) end
      for round = 1, 4 do
        for i, secret in ipairs({ "token-a", "token-b" }) do
          local r = assert(app:acquire_token_silent({ scopes = { "User.Read" }, account = accounts[i] }):await())
          assert.equal(secret, r.access_token, "round " .. round)
        end
      end
      for _, hid in ipairs(hids) do
        assert.equal(case.reads, dict.gets[key_of(hid)], "max " .. tostring(case.max))
      end
    end
  end)

  it("merges a write onto another worker's newer version instead of overwriting it", function()
    local dict = fake_dict()
    seed(dict, true)
    local plugin_a = shared_dict.new(dict)
    local a = msal.PublicClientApplication.new({ auth = { client_id = F.CLIENT, authority = AUTHORITY },
      cache = plugin_a })
    local b = app_on(dict)
    assert(a:get_account({ home_account_id = F.HID }))
    assert(b:get_account({ home_account_id = F.HID }))
    local tca, tcb = a:get_token_cache(), b:get_token_cache()
    -- worker a loaded version 1 and is about to store a token when worker b
    -- (another process, running at the same time) stores another
    tca:for_partition({ home_account_id = F.HID }):access(true, function()
      tcb:for_partition({ home_account_id = F.HID }):access(true, function()
        tcb.store:put("AccessToken", F.access_token({ target = "Mail.Read", secret = "mail-token" }))
      end)
      tca.store:put("AccessToken", F.access_token({ target = "Files.Read", secret = "files-token" }))
    end)
    assert.equal(1, plugin_a.merges)
    local doc = cjson.decode(dict.data[key_of(F.HID)])
    local secrets = {}
    for _, e in pairs(doc.AccessToken) do secrets[e.secret] = true end
    assert.is_true(secrets["mail-token"])
    assert.is_true(secrets["files-token"])
    assert.is_true(secrets["fake-access-token"])
  end)

  it("deletes a partition whose last entry went", function()
    local dict = fake_dict()
    seed(dict, true)
    local app = app_on(dict)
    local _, err = app:remove_account(assert(app:get_account({ home_account_id = F.HID }))):await()
    assert.is_nil(err)
    assert.is_nil(dict.data[key_of(F.HID)])
    assert.is_nil(app:get_account({ home_account_id = F.HID }))
  end)

  it("names the key of a partition that is not a cache", function()
    local dict = fake_dict()
    dict:set(key_of(F.HID), "{not json")
    local app = app_on(dict)
    local ok, err = pcall(app.get_account, app, { home_account_id = F.HID })
    assert.is_false(ok)
    assert.equal("ClientAuthError", err.name)
    assert.truthy(err.error_message:find(key_of(F.HID), 1, true))
  end)

  it("makes one token request when two workers need the same refresh", function()
    local dict = fake_dict()
    seed(dict)
    local requests = 0
    -- the token endpoint answers after 200 ms (on the loop's timers)
    local function slow(name)
      local t = fake_transport.new({ answer(name) })
      local request = t.request
      function t:request(req, done)
        requests = requests + 1
        return request(self, req, function(err, res)
          loop.set_timeout(200, function() done(err, res) end)
        end)
      end
      return t
    end
    local a, b = app_on(dict, slow("a")), app_on(dict, slow("b"))
    local pa = a:acquire_token_silent(request_for(a))
    local pb = b:acquire_token_silent(request_for(b))
    local all = assert(Promise.all({ pa, pb }):await())
    assert.equal(1, requests)
    assert.equal(all[1].access_token, all[2].access_token)
    -- the lock was released
    for k in pairs(dict.data) do assert.falsy(k:find(":refresh:", 1, true), k) end
  end)

  it("refreshes on its own when the lock holder died and lock_timeout passed", function()
    local dict = fake_dict()
    seed(dict)
    local t = fake_transport.new({ answer("mine") })
    local app = app_on(dict, t, { lock_timeout = 0.1, lock_ttl = 60 })
    -- a dead worker's lock: every refresh lock key is taken
    local plugin = app:get_token_cache().plugin
    local real_add = dict.add
    local refused = 0
    function dict.add(d, k, v, e)
      if k:find(":refresh:", 1, true) then refused = refused + 1 return false, "exists" end
      return real_add(d, k, v, e)
    end
    local started = loop.now_ms()
    local r = assert(app:acquire_token_silent(request_for(app)):await())
    assert.equal("mine", r.access_token)
    assert.is_true(refused > 1)
    assert.is_true(loop.now_ms() - started >= 100)
    assert.is_table(plugin)
  end)

  it("refuses bad options with ClientConfigurationError", function()
    for _, opts in ipairs({ { bogus = 1 }, { partition = "user" }, { lock_timeout = -1 }, { lock_ttl = "x" },
        { local_max_partitions = 0 } }) do
      local ok, err = pcall(shared_dict.new, fake_dict(), opts)
      assert.is_false(ok)
      assert.equal("ClientConfigurationError", err.name)
    end
    local _, perr = pcall(shared_dict.new, fake_dict(), { local_max_partitions = 0 })
    assert.equal("local_max_partitions must be a positive number", perr.error_message)
    local ok, err = pcall(shared_dict.new, "no_such_dict")
    assert.is_false(ok)
    assert.truthy(err.error_message:find("no_such_dict", 1, true))
  end)
end)

describe("shared state store", function()
  it("keeps a sign-in's context for another worker and gives it out once", function()
    local dict = fake_dict()
    local store_a = require("msal.state_store").shared(dict)
    local store_b = require("msal.state_store").shared(dict)
    store_a:put("st-1", { verifier = "v", scopes = { "User.Read" } }, 600)
    local ctx = store_b:take("st-1")
    assert.same({ verifier = "v", scopes = { "User.Read" } }, ctx)
    assert.is_nil(store_a:take("st-1"))
    assert.is_nil(store_b:take("unknown"))
  end)

  it("forgets a context past its time", function()
    local t = 0
    loop.set_clock(function() return t end)
    local store = require("msal.state_store").shared(fake_dict())
    store:put("st-2", { verifier = "v" }, 1)
    t = 1500
    assert.is_nil(store:take("st-2"))
    loop.reset()
  end)
end)

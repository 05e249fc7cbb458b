-- The Redis token cache (msal.cache.redis) against a real redis-server
-- started here on a free loopback port: sharing between processes, one key
-- per partition load, merge-safe concurrent writes, TTLs from token expiry,
-- the in-process copy's staleness bound, and Redis going away.
local core = require("msal.core")
local cjson = require("cjson")
local F = require("fixtures")
local redis_server = require("redis_server")
local proc = require("proc")

local CID = F.CLIENT

local partitioned = F.partitioned

local function user(i)
  local uid = ("00000000-0000-0000-aaaa-%012d"):format(i)
  local hid = uid .. "." .. F.TENANT
  return hid, F.doc({
    Account = { F.account({ home_account_id = hid, local_account_id = uid, username = "user" .. i .. "@example.com" }) },
    IdToken = { F.id_token({ home_account_id = hid }) },
    AccessToken = { F.access_token({ home_account_id = hid, secret = "at-" .. i }) },
    RefreshToken = { F.refresh_token({ home_account_id = hid, secret = "rt-" .. i }) },
  })
end

local secrets = F.secrets

local function store_doc(tc, doc)
  tc:access(true, function() assert(tc.store:load(cjson.encode(doc))) end)
end

-- A second interpreter of the same kind, with this one's module paths.
local function child(body, ...)
  local path = proc.lua_script(os.tmpname(), body)
  local args = {}
  for i, a in ipairs({ ... }) do args[i] = proc.quote(a) end
  local h = proc.start(proc.LUA .. " " .. path .. " " .. table.concat(args, " "))
  return { wait = function()
    local out = h:wait()
    os.remove(path)
    return out
  end }
end

local CHILD_PRELUDE = [[
local F = require("fixtures")
local url, pk = arg[1], arg[2]
local plugin = require("msal.cache.redis").new({ url = url })
local w = {
  before_cache_access = function(_, ctx) ctx.partition_key = pk; return plugin:before_cache_access(ctx) end,
  after_cache_access = function(_, ctx) return plugin:after_cache_access(ctx) end,
}
local tc = require("msal.cache").new(F.CLIENT, w)
]]

describe("Redis token cache", function()
  local server, side, redis

  setup(function()
    assert(core.redis, "msal.core was built without csrc/redis.c: run make")
    redis = require("msal.cache.redis")
    server = redis_server.start()
    side = assert(core.redis.connect({ port = server.port, timeout_ms = 2000 }))
  end)

  teardown(function()
    if side then side:close() end
    if server then server:stop() end
  end)

  before_each(function()
    if not server:alive() then server:restart() end -- a failed test may have left it stopped
    -- the side connection dies with a restarted server: replace it then
    local ok = side:is_open() and side:command("PING") == "PONG"
    if not ok then side = assert(core.redis.connect({ port = server.port, timeout_ms = 2000 })) end
    assert.equal("OK", side:command("FLUSHALL"))
  end)

  local function new_cache(opts)
    opts = opts or {}
    opts.url = opts.url or server:url()
    local plugin = redis.new(opts)
    local w = partitioned(plugin)
    return require("msal.cache").new(CID, w), w, plugin
  end

  describe("msal.core.redis", function()
    local function conn(o)
      o = o or {}
      o.port = o.port or server.port
      return core.redis.connect(o)
    end
    it("turns replies into Lua values", function()
      local c = assert(conn())
      assert.equal("OK", c:command("SET", "k", 42))
      assert.equal("42", c:command("GET", "k"))
      assert.equal(43, c:command("INCR", "k"))
      assert.is_nil(c:command("GET", "absent"))
      assert.same({ "43", false }, c:command("MGET", "k", "absent"))
      local r, msg, code = c:command("INCR", "k", "extra")
      assert.is_nil(r)
      assert.matches("wrong number of arguments", msg)
      assert.equal("SERVER", code)
      assert.equal("PONG", c:command("PING")) -- an error reply leaves the connection usable
      local rs = c:pipeline({ { "MULTI" }, { "SET", "a", "1" }, { "HGET", "k", "f" }, { "EXEC" } })
      assert.equal("OK", rs[1])
      assert.equal("QUEUED", rs[2])
      assert.equal("OK", rs[4][1])
      assert.matches("WRONGTYPE", rs[4][2].err)
      assert.has_error(function() c:command() end)
      assert.has_error(function() c:command("SET", "k", {}) end)
      assert.has_error(function() c:pipeline({ { "PING" }, { "SET", "k", {} } }) end)
      assert.equal("PONG", c:command("PING")) -- a refused pipeline sent nothing
      c:close()
      c:close()
      assert.is_false(c:is_open())
      r, msg, code = c:command("PING")
      assert.is_nil(r)
      assert.equal("the Redis connection is closed", msg)
      assert.equal("ENOTCONN", code)
      assert.same({ nil, "the Redis connection is closed", "ENOTCONN" }, { c:pipeline({ { "PING" } }) })
      assert.same({ nil, "the Redis connection is closed", "ENOTCONN" }, { c:read() })
    end)
    it("selects a database and reports refused connections and bad passwords", function()
      local c3 = assert(conn({ db = 3 }))
      c3:command("SET", "in3", "x")
      assert.is_nil(side:command("GET", "in3"))
      c3:close()
      local c, msg, code = conn({ port = 1, timeout_ms = 200 })
      assert.is_nil(c)
      assert.equal("cannot connect to 127.0.0.1:1: Connection refused", msg)
      assert.equal("ECONNREFUSED", code)
      c, msg, code = conn({ password = "wrong" })
      assert.is_nil(c)
      assert.matches("^Redis AUTH failed: ", msg)
      assert.equal("AUTH", code)
      assert.has_error(function() conn({ port = "x" }) end)
      assert.has_error(function() conn({ timeout_ms = 0 }) end)
    end)
    it("times out a command on a server that stopped answering", function()
      local c = assert(conn({ timeout_ms = 200 }))
      os.execute("kill -STOP " .. server.pid)
      local t0 = core.now_ms()
      local r, msg, code = c:command("PING")
      local took = core.now_ms() - t0
      os.execute("kill -CONT " .. server.pid)
      assert.is_nil(r)
      assert.equal("Redis command failed: timed out after 200 ms", msg)
      assert.equal("ETIMEDOUT", code)
      assert.is_true(took >= 150 and took < 2000, "took " .. took .. " ms")
      assert.is_false(c:is_open())
    end)
    it("survives writing to a server that went away (no SIGPIPE death)", function()
      local c = assert(conn())
      server:stop()
      local big = string.rep("x", 8 * 1024 * 1024)
      local r, msg, code = c:command("SET", "k", big)
      assert.is_nil(r)
      assert.is_true(code == "EPIPE" or code == "ECONNRESET" or code == "EOF", tostring(code) .. ": " .. tostring(msg))
      server:restart()
    end)
  end)

  describe("configuration", function()
    it("parses redis URLs", function()
      local c = redis.parse_url("redis://:s%40cret@10.0.0.1:6380/2")
      assert.same({ host = "10.0.0.1", port = 6380, db = 2, password = "s@cret" }, c)
      c = redis.parse_url("redis://app:pw@[::1]")
      assert.same({ host = "::1", port = 6379, db = 0, username = "app", password = "pw" }, c)
      assert.is_nil(redis.parse_url("http://x"))
      assert.is_nil(redis.parse_url("redis://h/x"))
    end)
    it("refuses bad options with a ClientConfigurationError", function()
      for _, o in ipairs({ { partition = "user" }, { url = "nope" }, { local_ttl_ms = -1 }, { colour = 1 },
        { ttl_slack_s = "5" } }) do
        local ok, err = pcall(redis.new, o)
        assert.is_false(ok)
        assert.equal("ClientConfigurationError", err.name)
      end
    end)
    it("names partitions by account or by tenant", function()
      local acct, app = redis.new({ partition = "account" }), redis.new({ partition = "app" })
      local info = { home_account_id = "u.t", tenant_id = "t" }
      assert.equal("u.t", acct:partition_key_for(info))
      assert.equal("t", app:partition_key_for(info))
      assert.is_nil(acct:partition_key_for({}))
      assert.equal("msal:{" .. CID .. ":u.t}", acct:key_for(CID, "u.t"))
      assert.equal("msal:{" .. CID .. ":default}", acct:key_for(CID))
      assert.equal("k:{c:p}", redis.new({ key_prefix = "k" }):key_for("c", "p"))
      -- the refresh lock shares the partition's hash tag, so its cluster slot
      assert.equal("k:{c:p}:lock", redis.new({ key_prefix = "k" }):lock_key_for("c", "p"))
      assert.equal(core.redis.key_slot(acct:key_for(CID, "u.t")), core.redis.key_slot(acct:lock_key_for(CID, "u.t")))
      assert.equal("msal:{" .. CID .. "}:partitions", acct:index_key_for(CID))
    end)
  end)

  it("stores one blob per partition, under <prefix>:{<client_id>:<partition_key>}, and names it in the index", function()
    local tc, w = new_cache()
    local hid1, doc1 = user(1)
    local hid2, doc2 = user(2)
    w.pk = hid1
    store_doc(tc, doc1)
    w.pk = hid2
    store_doc(tc, doc2)
    local keys = side:command("KEYS", "*")
    table.sort(keys)
    assert.same({ "msal:{" .. CID .. ":" .. hid1 .. "}", "msal:{" .. CID .. ":" .. hid2 .. "}",
      "msal:{" .. CID .. "}:partitions" }, keys)
    local members = side:command("SMEMBERS", "msal:{" .. CID .. "}:partitions")
    table.sort(members)
    assert.same({ hid1, hid2 }, members)
    local blob = cjson.decode(side:command("GET", "msal:{" .. CID .. ":" .. hid1 .. "}"))
    assert.equal(1, #tc.store:find("AccessToken", {})) -- the cache holds one partition at a time
    local n = 0
    for _, e in pairs(blob.AccessToken) do
      n = n + 1
      assert.equal("at-1", e.secret)
    end
    assert.equal(1, n)
    w.pk = hid1
    assert.same({ "at-1" }, secrets(tc))
    w.pk = hid2
    assert.same({ "at-2" }, secrets(tc))
  end)

  it("lists the accounts of every partition, and removes them all", function()
    local app = require("msal").PublicClientApplication.new({ auth = { client_id = CID },
      cache = { location = "redis", url = server:url(), key_prefix = "msal[*]" } })
    local tc = app:get_token_cache()
    local hids = {}
    for i = 1, 3 do
      local hid, doc = user(i)
      hids[i] = hid
      tc:for_partition({ home_account_id = hid }):access(true, function() assert(tc.store:load(cjson.encode(doc))) end)
    end
    -- a key that only looks like one of ours: the glob must not match it
    side:command("SET", "msalX*]:" .. CID .. ":stranger", "{}")
    local got = {}
    for _, a in ipairs(app:get_all_accounts()) do
      got[#got + 1] = a.home_account_id
      assert.equal(F.TENANT, a.id_token_claims.tid)
    end
    table.sort(got)
    assert.same(hids, got)
    assert.equal(hids[2], app:get_account({ home_account_id = hids[2] }).home_account_id)
    assert.is_true(tc:remove_all_accounts() >= 12)
    assert.same({}, app:get_all_accounts())
  end)

  it("shares tokens between two processes, both ways", function()
    local tc, w = new_cache()
    w.pk = "user-a"
    local out = child(CHILD_PRELUDE .. [[
tc:access(true, function() tc.store:put("AccessToken", F.access_token({ secret = "from-child" })) end)
print("wrote")
]], server:url(), "user-a").wait()
    assert.equal("wrote\n", out)
    assert.same({ "from-child" }, secrets(tc))

    w.pk = "user-b"
    store_doc(tc, F.doc({ AccessToken = { F.access_token({ secret = "from-parent" }) } }))
    out = child(CHILD_PRELUDE .. [[
tc:access(false, function()
  for _, k in ipairs(tc.store:find("AccessToken", {})) do print(tc.store:get("AccessToken", k).secret) end
end)
]], server:url(), "user-b").wait()
    assert.equal("from-parent\n", out)
  end)

  it("loses nothing when two processes write one partition at once (2 x 50 writes)", function()
    local body = CHILD_PRELUDE .. [[
local tag, n = arg[3], tonumber(arg[4])
for i = 1, n do
  tc:access(true, function()
    tc.store:put("AccessToken", F.access_token({ secret = tag .. i, target = "api://busy/" .. tag .. i }))
  end)
end
print("done " .. plugin.conflicts)
]]
    local a = child(body, server:url(), "busy", "a", 50)
    local b = child(body, server:url(), "busy", "b", 50)
    local oa, ob = a.wait(), b.wait()
    assert.matches("^done %d+\n$", oa)
    assert.matches("^done %d+\n$", ob)
    local tc, w = new_cache()
    w.pk = "busy"
    local got = secrets(tc)
    assert.equal(100, #got)
    local want = {}
    for i = 1, 50 do want[#want + 1] = "a" .. i; want[#want + 1] = "b" .. i end
    table.sort(want)
    assert.same(want, got)
  end)

  it("merges a write with what another process stored meanwhile", function()
    local tc, w, plugin = new_cache()
    w.pk = "p"
    store_doc(tc, F.doc({ AccessToken = { F.access_token({ secret = "first", target = "s1" }) } }))
    local key = plugin:key_for(CID, "p")
    tc:access(true, function()
      -- another writer commits between this access's read and its write
      local other = F.doc({ AccessToken = {
        F.access_token({ secret = "first", target = "s1" }), F.access_token({ secret = "theirs", target = "s2" }) } })
      assert.equal("OK", side:command("SET", key, cjson.encode(other)))
      tc.store:put("AccessToken", F.access_token({ secret = "mine", target = "s3" }))
    end)
    assert.same({ "first", "mine", "theirs" }, secrets(tc))
    local fresh, fw = new_cache()
    fw.pk = "p"
    assert.same({ "first", "mine", "theirs" }, secrets(fresh))
    -- and a removal is applied as a removal
    tc:access(true, function()
      for _, k in ipairs(tc.store:find("AccessToken", { target = "s2" })) do tc.store:remove("AccessToken", k) end
    end)
    local again, aw = new_cache()
    aw.pk = "p"
    assert.same({ "first", "mine" }, secrets(again))
  end)

  describe("a partition load", function()
    it("touches exactly one key: one GET of that partition, seen by MONITOR", function()
      local writer, ww = new_cache()
      local hids = {}
      for i = 1, 20 do
        local hid, doc = user(i)
        hids[i] = hid
        ww.pk = hid
        store_doc(writer, doc)
      end
      local tc, w, plugin = new_cache()
      assert.equal("PONG", plugin:run(false, "command", "PING")) -- connected before watching
      local mon = assert(core.redis.connect({ port = server.port, timeout_ms = 2000 }))
      assert.equal("OK", mon:command("MONITOR"))
      local function observed(fn)
        fn()
        side:command("ECHO", "end-of-observation")
        local lines = {}
        while true do
          local line = assert(mon:read())
          if line:find("end-of-observation", 1, true) then break end
          lines[#lines + 1] = line
        end
        return lines
      end
      w.pk = hids[7]
      local cold = observed(function() assert.same({ "at-7" }, secrets(tc)) end)
      assert.equal(1, #cold)
      assert.matches('"GET" "msal:{' .. CID:gsub("%-", "%%-") .. ":" .. hids[7]:gsub("%-", "%%-") .. '}"$', cold[1])
      -- a warm read within the bound asks Redis nothing
      local warm = observed(function() assert.same({ "at-7" }, secrets(tc)) end)
      assert.same({}, warm)
      -- a write touches that key only (WATCH/GET/MULTI/SET/EXEC)
      local write = observed(function()
        tc:access(true, function() tc.store:put("AccessToken", F.access_token({ home_account_id = hids[7],
          secret = "at-7b", target = "other" })) end)
      end)
      -- (and the index naming it)
      local key = "msal:{" .. CID .. ":" .. hids[7] .. "}"
      local index = "msal:{" .. CID .. "}:partitions"
      for _, line in ipairs(write) do
        for k in line:gmatch('"(msal:[^"]*)"') do assert.is_true(k == key or k == index, k) end
      end
      assert.is_true(#write >= 5)
      mon:close()
    end)
  end)

  describe("listing accounts", function()
    -- the partitions of users 1..n, written through the plugin itself
    local function seed(n, opts)
      local plugin = redis.new(opts or { url = server:url() })
      local tc = require("msal.cache").new(CID, plugin)
      local hids = {}
      for i = 1, n do
        local hid, doc = user(i)
        hids[i] = hid
        tc:for_partition({ home_account_id = hid })
        store_doc(tc, doc)
      end
      return hids, plugin
    end
    local function usernames(list)
      local out = {}
      for i, a in ipairs(list) do out[i] = a.username end
      table.sort(out)
      return out
    end

    it("sees every partition in get_all_accounts, get_account and remove_account", function()
      local hids = seed(3)
      local msal = require("msal")
      local app = msal.PublicClientApplication.new({
        auth = { client_id = CID, authority = "https://login.microsoftonline.com/common" },
        cache = { location = "redis", url = server:url(), local_ttl_ms = 0 },
      })
      assert.same({ "user1@example.com", "user2@example.com", "user3@example.com" }, usernames(app:get_all_accounts()))
      assert.equal(hids[2], app:get_account({ username = "USER2@example.com" }).home_account_id)
      assert.equal(hids[3], app:get_account({ home_account_id = hids[3] }).home_account_id)
      assert.equal(F.ENV, app:get_account({ local_account_id = "00000000-0000-0000-aaaa-000000000001" }).environment)
      -- removing one account empties and deletes its partition, and the index forgets it
      local tc = app:get_token_cache()
      tc:remove_account(app:get_account({ home_account_id = hids[2] }))
      assert.same({ "user1@example.com", "user3@example.com" }, usernames(app:get_all_accounts()))
      assert.equal(0, side:command("EXISTS", "msal:{" .. CID .. ":" .. hids[2] .. "}"))
      local members = side:command("SMEMBERS", "msal:{" .. CID .. "}:partitions")
      table.sort(members)
      assert.same({ hids[1], hids[3] }, members)
      -- and the silent flow still reads one account's own partition
      tc:for_partition({ home_account_id = hids[3] })
      assert.same({ "at-3" }, secrets(tc))
    end)

    it("leaves out partitions that expired and prunes them from the index", function()
      local hids = seed(3)
      side:command("DEL", "msal:{" .. CID .. ":" .. hids[1] .. "}") -- as an expiry would
      local tc = require("msal.cache").new(CID, redis.new({ url = server:url() }))
      assert.same({ "user2@example.com", "user3@example.com" }, usernames(tc:get_all_accounts()))
      local members = side:command("SMEMBERS", "msal:{" .. CID .. "}:partitions")
      table.sort(members)
      assert.same({ hids[2], hids[3] }, members)
    end)

    it("keeps the listing in the process for local_ttl_ms, like a partition, and writes nothing", function()
      seed(2)
      local plugin = redis.new({ url = server:url(), local_ttl_ms = 60000 })
      local tc = require("msal.cache").new(CID, plugin)
      assert.equal(2, #tc:get_all_accounts())
      local _, doc = user(9)
      side:command("SADD", "msal:{" .. CID .. "}:partitions", "late")
      side:command("SET", "msal:{" .. CID .. ":late}", cjson.encode(doc))
      assert.equal(2, #tc:get_all_accounts()) -- within the bound: the copy
      local fresh = require("msal.cache").new(CID, redis.new({ url = server:url() }))
      assert.equal(3, #fresh:get_all_accounts())
      -- a listing changed in the store is not written back
      tc:access(false, function() tc.store:load("") end)
      assert.equal(3, #fresh:get_all_accounts())
    end)

    it("is empty for a client with no partitions", function()
      local tc = require("msal.cache").new(CID, redis.new({ url = server:url() }))
      assert.same({}, tc:get_all_accounts())
    end)
  end)

  describe("TTL", function()
    it("is the latest token expiry plus the slack, and a long one for refresh tokens", function()
      local tc, w, plugin = new_cache({ ttl_slack_s = 60, partition = "app" })
      w.pk = F.TENANT
      local now = math.floor(core.time())
      -- app tokens (client credentials): access tokens only
      store_doc(tc, F.doc({ AccessToken = {
        F.access_token({ home_account_id = "", target = "a", expires_on = tostring(now + 3600), extended_expires_on = tostring(now + 3600) }),
        F.access_token({ home_account_id = "", target = "b", expires_on = tostring(now + 600), extended_expires_on = tostring(now + 600) }),
      } }))
      local key = plugin:key_for(CID, F.TENANT)
      local pttl = side:command("PTTL", key)
      assert.is_true(pttl <= (3600 + 60) * 1000 and pttl > (3600 + 60 - 10) * 1000, "PTTL " .. pttl)
      -- a refresh token has no expiry in the cache: 90 days by default
      tc:access(true, function() tc.store:put("RefreshToken", F.refresh_token()) end)
      pttl = side:command("PTTL", key)
      assert.is_true(pttl > (90 * 86400 + 60 - 10) * 1000 and pttl <= (90 * 86400 + 60) * 1000, "PTTL " .. pttl)
      -- a partition emptied of every entry is deleted
      tc:access(true, function() tc.store:load("") end)
      assert.equal(0, side:command("EXISTS", key))
      assert.same({}, secrets(tc))
    end)
  end)

  describe("the in-process copy", function()
    it("serves reads for local_ttl_ms, then re-reads Redis", function()
      local tc, w, plugin = new_cache({ local_ttl_ms = 500 })
      w.pk = "bound"
      local key = plugin:key_for(CID, "bound")
      side:command("SET", key, cjson.encode(F.doc({ AccessToken = { F.access_token({ secret = "old" }) } })))
      local t0 = core.now_ms()
      assert.same({ "old" }, secrets(tc))
      side:command("SET", key, cjson.encode(F.doc({ AccessToken = { F.access_token({ secret = "new" }) } })))
      assert.same({ "old" }, secrets(tc))
      assert.is_true(core.now_ms() - t0 < 500, "the test itself was too slow to check the bound")
      core.sleep_ms(520)
      assert.same({ "new" }, secrets(tc))
    end)
  end)

  describe("the in-process copies", function()
    it("are bounded by local_max_partitions", function()
      local writer, ww = new_cache()
      for i = 1, 12 do
        ww.pk = "u" .. i
        store_doc(writer, F.doc({ AccessToken = { F.access_token({ secret = "s" .. i }) } }))
      end
      local tc, w, plugin = new_cache({ local_max_partitions = 5, local_ttl_ms = 60000 })
      for round = 1, 2 do
        for i = 1, 12 do
          w.pk = "u" .. i
          assert.same({ "s" .. i }, secrets(tc), "round " .. round)
          assert.is_true(plugin.ncopies <= 5 and plugin.nkeys <= 5)
        end
      end
      local n = 0
      for _ in pairs(plugin.copies) do n = n + 1 end
      assert.equal(plugin.ncopies, n)
    end)
  end)

  describe("with Redis down", function()
    it("raises cache_unavailable on a cold read and a write, serves a warm read within the bound", function()
      local tc, w = new_cache({ local_ttl_ms = 1000, timeout_ms = 500 })
      w.pk = "warm"
      store_doc(tc, F.doc({ AccessToken = { F.access_token({ secret = "warm-token" }) } }))
      assert.same({ "warm-token" }, secrets(tc)) -- the write refreshed the copy
      local t0 = core.now_ms()
      server:stop()
      assert.same({ "warm-token" }, secrets(tc))
      assert.is_true(core.now_ms() - t0 < 1000, "the test itself was too slow to check the bound")

      w.pk = "cold"
      local ok, err = pcall(secrets, tc)
      assert.is_false(ok)
      assert.equal("ClientAuthError", err.name)
      assert.equal("cache_unavailable", err.error_code)
      assert.matches("127.0.0.1:" .. server.port, err.error_message, 1, true)
      assert.matches("refused", err.error_message)

      w.pk = "warm"
      ok, err = pcall(tc.access, tc, true, function() tc.store:put("AccessToken", F.access_token({ target = "x" })) end)
      assert.is_false(ok)
      assert.equal("cache_unavailable", err.error_code)

      core.sleep_ms(1020)
      ok, err = pcall(secrets, tc)
      assert.is_false(ok)
      assert.equal("cache_unavailable", err.error_code)

      -- Redis back (empty: nothing was persisted): the same plugin reconnects
      server:restart()
      store_doc(tc, F.doc({ AccessToken = { F.access_token({ secret = "after" }) } }))
      assert.same({ "after" }, secrets(tc))
    end)

    it("lets a PublicClientApplication answer silently from the copy, then fail clearly", function()
      local msal = require("msal")
      local authority = "https://login.microsoftonline.com/common"
      local plugin = redis.new({ url = server:url(), local_ttl_ms = 1000 })
      local seed = require("msal.cache").new(CID, plugin)
      -- the app reads the account's partition: seed that one
      seed:for_partition({ home_account_id = F.HID, tenant_id = F.TENANT })
      store_doc(seed, F.signed_in())
      local app = msal.PublicClientApplication.new({
        auth = { client_id = CID, authority = authority,
          authority_metadata = cjson.encode({ issuer = authority .. "/v2.0", token_endpoint = authority .. "/oauth2/v2.0/token",
            authorization_endpoint = authority .. "/oauth2/v2.0/authorize" }) },
        cache = redis.new({ url = server:url(), local_ttl_ms = 1000 }),
        system = { clock = function() return 1800000000 end,
          transport = require("fake_transport").new(function() return { status = 500, json = {} } end) },
      })
      -- a web app knows its user from the session; listing accounts spans
      -- partitions, which a partitioned cache does not do
      local req = { scopes = { "User.Read" }, account = { home_account_id = F.HID, environment = F.ENV, tenant_id = F.TENANT } }
      local r = assert(app:acquire_token_silent(req):await())
      assert.is_true(r.from_cache)
      assert.equal("fake-access-token", r.access_token)
      local t0 = core.now_ms()
      server:stop()
      r = assert(app:acquire_token_silent(req):await())
      assert.equal("fake-access-token", r.access_token)
      assert.is_true(core.now_ms() - t0 < 1000, "the test itself was too slow to check the bound")
      core.sleep_ms(1020)
      local res, err = app:acquire_token_silent(req):await()
      assert.is_nil(res)
      assert.equal("ClientAuthError", err.name)
      assert.matches("cache_unavailable", tostring(err), 1, true)
      assert.matches("127.0.0.1:" .. server.port, tostring(err), 1, true)
      server:restart()
    end)
  end)
end)

-- The Redis token cache on a Redis Cluster: three masters of Debian's
-- redis-server on loopback, started here. Partitions spread over the nodes,
-- each call reaches its key's node, a partition's key and its lock share a
-- slot, listing spans the nodes, and a partition's slot moving to another
-- node (MIGRATING/IMPORTING, MIGRATE, SETSLOT NODE: what a reshard does)
-- while readers and a writing process keep going loses nothing.
local core = require("msal.core")
local cjson = require("cjson")
local F = require("fixtures")
local proc = require("proc")
local redis_cluster = require("redis_cluster")

local CID = F.CLIENT

local secrets = F.secrets

describe("Redis token cache on a cluster", function()
  local dir, remove_dir, cluster, redis

  setup(function()
    redis = require("msal.cache.redis")
    dir, remove_dir = proc.tempdir()
    cluster = redis_cluster.start(dir)
  end)

  teardown(function()
    if cluster then cluster:stop() end
    if remove_dir then remove_dir() end
  end)

  before_each(function()
    for i = 1, 3 do cluster:command(i, "FLUSHALL") end
  end)

  -- A cache whose accesses concern partition pk (tc:for_partition would
  -- need an account; the partition key is what matters here).
  local function new_cache(opts)
    local plugin = redis.new(opts)
    local w = F.partitioned(plugin, "p")
    return require("msal.cache").new(CID, w), w, plugin
  end

  local function put(tc, secret, target)
    tc:access(true, function()
      tc.store:put("AccessToken", F.access_token({ secret = secret, target = target or secret }))
    end)
  end

  it("spreads partitions over the nodes and reaches each from any node", function()
    local tc, w, plugin = new_cache({ url = cluster:url(1), local_ttl_ms = 0 })
    local on = {}
    for i = 1, 30 do
      w.pk = "user-" .. i
      put(tc, "s" .. i)
      local slot = core.redis.key_slot(plugin:key_for(CID, w.pk))
      on[cluster:owner(slot).port] = true
      -- the key and its refresh lock share the slot
      assert.equal(slot, core.redis.key_slot(plugin:lock_key_for(CID, w.pk)))
    end
    local n = 0
    for _ in pairs(on) do n = n + 1 end
    assert.equal(3, n) -- every node holds some
    assert.is_true(plugin.router:is_cluster())
    for seed = 1, 3 do
      local other, ow = new_cache({ url = cluster:url(seed), local_ttl_ms = 0 })
      for i = 1, 30, 7 do
        ow.pk = "user-" .. i
        assert.same({ "s" .. i }, secrets(other))
      end
    end
  end)

  it("lists the accounts of every partition, across the nodes", function()
    local seed = redis.new({ url = cluster:url(2) })
    local tc = require("msal.cache").new(CID, seed)
    local names = {}
    for i = 1, 12 do
      local uid = ("00000000-0000-0000-aaaa-%012d"):format(i)
      local hid = uid .. "." .. F.TENANT
      tc:for_partition({ home_account_id = hid })
      tc:access(true, function() assert(tc.store:load(cjson.encode(F.doc({
        Account = { F.account({ home_account_id = hid, local_account_id = uid, username = "u" .. i .. "@example.com" }) },
      })))) end)
      names[#names + 1] = "u" .. i .. "@example.com"
    end
    table.sort(names)
    local reader = require("msal.cache").new(CID, redis.new({ url = cluster:url(3) }))
    local got = {}
    for _, a in ipairs(reader:get_all_accounts()) do got[#got + 1] = a.username end
    table.sort(got)
    assert.same(names, got)
  end)

  it("follows MOVED after a slot moved, and ASK while it moves, with a writer running throughout", function()
    local tc, w, plugin = new_cache({ url = cluster:url(1), local_ttl_ms = 0 })
    w.pk = "moving"
    put(tc, "before")
    local key = plugin:key_for(CID, "moving")
    local slot = core.redis.key_slot(key)
    local source = cluster:owner(slot)
    local target
    for _, n in ipairs(cluster.nodes) do if n ~= source then target = n break end end

    -- another process writes tokens into the partition until told to stop
    local stop = dir .. "/stop"
    local path = proc.lua_script(os.tmpname(), [[
local F = require("fixtures")
local plugin = require("msal.cache.redis").new({ url = arg[1], local_ttl_ms = 0 })
local tc = require("msal.cache").new(F.CLIENT, {
  before_cache_access = function(_, ctx) ctx.partition_key = "moving"; return plugin:before_cache_access(ctx) end,
  after_cache_access = function(_, ctx) return plugin:after_cache_access(ctx) end,
})
local core = require("msal.core")
local n = 0
while not io.open(arg[2]) do
  n = n + 1
  tc:access(true, function() tc.store:put("AccessToken", F.access_token({ secret = "w" .. n, target = "w" .. n })) end)
  core.sleep_ms(10) -- steady, not a flood: this is about redirections, not contention
end
print("done " .. n .. " " .. plugin.router.redirects)
]])
    local job = proc.background(proc.LUA .. " " .. path .. " " .. cluster:url(3) .. " " .. stop, dir .. "/writer")
    for _ = 1, 1000 do -- until the writer is under way
      local text = cluster:command(source, "GET", key)
      if text and text:find('"w1"', 1, true) then break end
      core.sleep_ms(10)
    end

    -- reads and writes here between the steps of the move
    local function works(tag)
      put(tc, tag)
      local got = secrets(tc)
      local seen = false
      for _, s in ipairs(got) do if s == tag then seen = true end end
      assert.is_true(seen, tag .. " not read back")
      assert.is_true(#got >= 2)
    end
    works("before-move")
    cluster:begin_move(slot, target)
    works("migrating")                         -- the key is still on the source
    core.sleep_ms(50)
    assert.is_true(cluster:move_keys(slot, source, target) >= 1)
    local asks = plugin.router.redirects
    works("moved-keys")                        -- the source answers ASK: the target serves it
    assert.is_true(plugin.router.redirects > asks, "no ASK was followed")
    core.sleep_ms(50)
    cluster:move_keys(slot, source, target)     -- keys the writer made on the source meanwhile
    cluster:end_move(slot, target)
    local moved = plugin.router.redirects
    core.sleep_ms(1100)                         -- past the ASK target's hold
    works("after-move")                        -- the map said source: MOVED, then the target
    assert.is_true(plugin.router.redirects > moved, "no MOVED was followed")
    assert.equal(target.port, cluster:owner(slot).port)
    assert.equal(1, cluster:command(target, "EXISTS", key))
    assert.equal(0, cluster:command(source, "CLUSTER", "COUNTKEYSINSLOT", slot))

    works("after-move, writer still going")
    assert(io.open(stop, "w")):close()
    assert.equal(0, job:wait(60000), job:output())
    os.remove(path)
    local n, redirects = job:output():match("^done (%d+) (%d+)\n$")
    assert.is_string(n, job:output())
    -- nothing the writer or this process stored was lost
    local got = secrets(tc)
    local want = { "after-move", "after-move, writer still going", "before", "before-move", "migrating", "moved-keys" }
    for i = 1, tonumber(n) do want[#want + 1] = "w" .. i end
    table.sort(want)
    assert.same(want, got)
    -- the writer ran through the move, following redirections too
    assert.is_true(tonumber(n) >= 10, n)
    assert.is_true(tonumber(redirects) >= 1, redirects)
  end)

  it("a MULTI/EXEC whose slot moved is not followed blindly: the write starts over from its WATCH", function()
    local tc, w, plugin = new_cache({ url = cluster:url(1), local_ttl_ms = 0 })
    w.pk = "again"
    put(tc, "one")
    local slot = core.redis.key_slot(plugin:key_for(CID, "again"))
    local source = cluster:owner(slot)
    local target
    for _, n in ipairs(cluster.nodes) do if n ~= source then target = n break end end
    -- once (MULTI/EXEC) calls return the redirection instead of following it
    local r, msg, code
    cluster:begin_move(slot, target)
    cluster:move_keys(slot, source, target)
    cluster:end_move(slot, target)
    r, msg, code = plugin.router:call(true, "pipeline", { { "MULTI" }, { "GET", plugin:key_for(CID, "again") },
      { "EXEC" } })
    assert.is_nil(r)
    assert.equal("MOVED", code)
    assert.matches("moved to 127.0.0.1:" .. target.port, msg, 1, true)
    put(tc, "two") -- the cache's write goes round again and lands
    assert.same({ "one", "two" }, secrets(tc))
  end)
end)

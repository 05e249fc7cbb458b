-- The Redis token cache inside real nginx workers (Debian's nginx +
-- lua-nginx-module): `cache = {location = "redis", url = …}` talks to
-- Debian's redis-server over cosockets in request phases, with the blocking
-- C client fenced off (it raises and counts if a request reaches it).
-- Silent hits, one token request for 40 concurrent requests on two
-- workers that need one refresh (the Redis refresh lock across workers),
-- reuse through nginx's keepalive pool, and TLS with an ACL user verified
-- against lua_ssl_trusted_certificate (a wrong CA is a typed error).
local cjson = require("cjson")
local core = require("msal.core")
local entra = require("entra")
local nginx = require("nginx")
local proc = require("proc")
local redis_server = require("redis_server")

local CLIENT = "lua-msal-openresty-redis"
local HID = entra.UID .. "." .. entra.TENANT

-- The workers' in-process copies of a partition live this long: each test
-- waits it out, so that none serves what an earlier test left.
local LOCAL_TTL_MS = 300

local function authority() return entra.base() .. "/" .. entra.TENANT end

local function signed_in_cache(expired)
  return (entra.signed_in_app(CLIENT, authority(), expired)):get_token_cache():serialize()
end

local refresh_requests = entra.refresh_requests


local function seed(srv, json)
  local res = assert(srv:send("/seed?hid=" .. HID, { method = "POST", body = json }):await())
  assert.equal(200, res.status, res.body)
end

-- n silent calls, each served from the cache with no token request; the
-- workers' counters afterwards (the C client must never have connected).
local function serves_hits(srv, n)
  local before = refresh_requests()
  for _ = 1, n do
    local status, doc = srv:get_json("/token?hid=" .. HID)
    assert.equal(200, status, cjson.encode(doc))
    assert.is_true(doc.from_cache)
  end
  assert.equal(before, refresh_requests())
  local _, stats = srv:get_json("/stats")
  assert.equal(0, stats.c_connects)
  return stats
end

-- nginx with two workers whose app uses the Redis cache `cache` (Lua
-- source of a table), plus `http` text (e.g. lua_ssl_trusted_certificate).
local function start_nginx(cache, http_extra)
  return nginx.start_app({
    app = "redis_host_app",
    -- cache is Lua source: the cache options table
    init = ("%q, %q, %s"):format(authority(), CLIENT, cache),
    http = "lua_shared_dict tokens 1m;\n" .. (http_extra or ""),
    server = [[
      location = /token { content_by_lua_block { require("msal_host_app").token() } }
      location = /seed { content_by_lua_block { require("msal_host_app").seed() } }
      location = /stats { content_by_lua_block { require("redis_host_app").stats() } }
      location = /probe { content_by_lua_block { require("redis_host_app").probe() } }
    ]],
  })
end

local function stop_nginx(srv)
  if not srv then return end
  local log = srv:error_log()
  if os.getenv("MSAL_NGINX_LOG") then io.stderr:write(log) end
  srv:stop()
  -- a Lua error in a worker is a failure even when the answer looked right
  assert.falsy(log:find("lua entry thread aborted", 1, true), log)
  assert.falsy(log:find("msal.core.redis.connect called inside nginx", 1, true), log)
end

describe("the Redis cache in nginx over cosockets #host", function()
  local srv, redis

  setup(function()
    redis = redis_server.start()
    srv = start_nginx(('{ location = "redis", url = %q, local_ttl_ms = %d }'):format(redis:url(), LOCAL_TTL_MS))
  end)

  teardown(function()
    stop_nginx(srv)
    if redis then redis:stop() end
  end)

  before_each(function()
    entra.reset()
    local c = assert(core.redis.connect(redis:conn_opts()))
    c:command("FLUSHALL")
    c:close()
    core.sleep_ms(LOCAL_TTL_MS + 100)
  end)

  it("stores the partition in Redis and serves silent hits, never through the C client", function()
    seed(srv, signed_in_cache(false))
    local c = assert(core.redis.connect(redis:conn_opts()))
    local key = "msal:{" .. CLIENT .. ":" .. HID .. "}"
    local stored = c:command("GET", key)
    c:close()
    assert.is_string(stored, "the partition is not in Redis under " .. key)
    assert.truthy(cjson.decode(stored).AccessToken)
    local stats = serves_hits(srv, 10)
    assert.is_true(stats.fresh >= 1, cjson.encode(stats))
    -- the connections went back to nginx's keepalive pool and were taken again
    assert.is_true(stats.reused >= 1, cjson.encode(stats))
  end)

  it("makes one token request for 40 concurrent requests on both workers that need one refresh", function()
    seed(srv, signed_in_cache(true))
    local before = refresh_requests()
    entra.next({ endpoint = "token", delay_ms = 500, when = { grant_type = "refresh_token" } })
    local docs, nworkers = srv:concurrent("/token?hid=" .. HID, 40)
    assert.equal(1, refresh_requests() - before)
    for _, d in ipairs(docs) do assert.equal(docs[1].access_token, d.access_token) end
    assert.equal(2, nworkers)
    local _, stats = srv:get_json("/stats")
    assert.equal(0, stats.c_connects)
  end)

  it("names the server when Redis is down, and recovers when it is back", function()
    seed(srv, signed_in_cache(false))
    redis:stop()
    -- past local_ttl_ms the in-process copy no longer serves
    core.sleep_ms(LOCAL_TTL_MS + 100)
    local status, doc = srv:get_json("/token?hid=" .. HID)
    assert.equal(401, status)
    assert.equal("cache_unavailable", doc.error)
    assert.matches("127.0.0.1:" .. redis.port, doc.message, 1, true)
    redis:restart()
    seed(srv, signed_in_cache(false))
    -- the pool's sockets died with the old server: a dead one is replaced
    for _ = 1, 4 do
      status, doc = srv:get_json("/token?hid=" .. HID)
      assert.equal(200, status, cjson.encode(doc))
    end
  end)
end)

describe("the Redis cache in nginx over TLS with an ACL user #host", function()
  local dir, remove_dir, certs, redis, srv

  setup(function()
    dir, remove_dir = proc.tempdir()
    certs = redis_server.make_certs(dir)
    -- nginx's workers (nobody, when started as root) read the CA files
    proc.run("chmod 755 " .. proc.quote(dir) .. " && chmod 644 " .. proc.quote(certs.ca) .. " "
      .. proc.quote(certs.other_ca), { plain = true })
    redis = redis_server.start({ tls = certs, users = { "app on '>secret' '~*' '+@all'" }, auth = { "app", "secret" } })
  end)

  teardown(function()
    stop_nginx(srv)
    if redis then redis:stop() end
    if remove_dir then remove_dir() end
  end)

  before_each(function() entra.reset() end)

  -- nginx checks a certificate for a host name only: the URL's IP address
  -- needs tls.server_name (the certificate is for 127.0.0.1 and localhost)
  local function tls_cache(userinfo, extra)
    return ('{ location = "redis", url = %q, tls = { server_name = "localhost" }%s }'):format(redis:url(userinfo),
      extra or "")
  end

  it("verifies the server against lua_ssl_trusted_certificate, AUTHs as the user and serves hits", function()
    srv = start_nginx(tls_cache("app:secret"),
      ("lua_ssl_trusted_certificate %s; lua_ssl_verify_depth 2;"):format(certs.ca))
    local _, probe = srv:get_json("/probe")
    assert.equal("PONG", probe.pong, cjson.encode(probe))
    seed(srv, signed_in_cache(false))
    local stats = serves_hits(srv, 6)
    assert.is_true(stats.reused >= 1, cjson.encode(stats))
    stop_nginx(srv)
    srv = nil
  end)

  it("refuses another CA's server, an IP address without server_name and a wrong password, typed", function()
    srv = start_nginx(tls_cache("app:secret"),
      ("lua_ssl_trusted_certificate %s; lua_ssl_verify_depth 2;"):format(certs.other_ca))
    local _, probe = srv:get_json("/probe")
    assert.equal("CERT", probe.code, cjson.encode(probe))
    assert.matches("certificate check failed", probe.message, 1, true)
    local status, doc = srv:get_json("/token?hid=" .. HID)
    assert.equal(401, status, cjson.encode(doc))
    assert.equal("cache_unavailable", doc.error)
    assert.matches("certificate check failed", doc.message, 1, true)
    stop_nginx(srv)
    srv = start_nginx(('{ location = "redis", url = %q }'):format(redis:url("app:secret")),
      ("lua_ssl_trusted_certificate %s;"):format(certs.ca))
    _, probe = srv:get_json("/probe")
    assert.equal("CERT", probe.code, cjson.encode(probe))
    assert.matches("give cache.tls.server_name", probe.message, 1, true)
    stop_nginx(srv)
    srv = start_nginx(tls_cache("app:wrong"), ("lua_ssl_trusted_certificate %s;"):format(certs.ca))
    _, probe = srv:get_json("/probe")
    assert.equal("AUTH", probe.code, cjson.encode(probe))
    assert.matches("WRONGPASS", probe.message, 1, true)
    status, doc = srv:get_json("/token?hid=" .. HID)
    assert.equal(401, status, cjson.encode(doc))
    assert.equal("cache_unavailable", doc.error)
    assert.matches("WRONGPASS", doc.message, 1, true)
    stop_nginx(srv)
    srv = nil
  end)
end)

describe("the Redis cache in nginx with a Redis Cluster #host", function()
  local redis_cluster = require("redis_cluster")
  local dir, remove_dir, cluster, srv, key, slot

  setup(function()
    dir, remove_dir = proc.tempdir()
    cluster = redis_cluster.start(dir)
    key = "msal:{" .. CLIENT .. ":" .. HID .. "}"
    slot = core.redis.key_slot(key)
    -- nginx's way in is a node that does not serve the partition: its
    -- first calls are redirected
    local seed_node = 1
    for i, n in ipairs(cluster.nodes) do
      if n ~= cluster:owner(slot) then seed_node = i break end
    end
    srv = start_nginx(('{ location = "redis", url = %q, local_ttl_ms = %d }'):format(cluster:url(seed_node), LOCAL_TTL_MS))
  end)

  teardown(function()
    stop_nginx(srv)
    if cluster then cluster:stop() end
    if remove_dir then remove_dir() end
  end)

  before_each(function()
    entra.reset()
    for i = 1, 3 do cluster:command(i, "FLUSHALL") end
    core.sleep_ms(LOCAL_TTL_MS + 100)
  end)

  it("makes one token request for 30 concurrent requests needing one refresh, on the slot's node", function()
    seed(srv, signed_in_cache(true))
    local before = refresh_requests()
    entra.next({ endpoint = "token", delay_ms = 300, when = { grant_type = "refresh_token" } })
    local docs = srv:concurrent("/token?hid=" .. HID, 30)
    assert.equal(1, refresh_requests() - before)
    for _, d in ipairs(docs) do assert.equal(docs[1].access_token, d.access_token) end
    local stored = cluster:command(cluster:owner(slot), "GET", key)
    assert.is_string(stored)
    assert.truthy(stored:find(docs[1].access_token, 1, true))
    local _, stats = srv:get_json("/stats")
    assert.equal(0, stats.c_connects)
  end)

  it("follows the partition's slot to another node after a reshard", function()
    seed(srv, signed_in_cache(false))
    assert.equal(200, (srv:get_json("/token?hid=" .. HID)))
    local source = cluster:owner(slot)
    local target
    for _, n in ipairs(cluster.nodes) do if n ~= source then target = n break end end
    cluster:begin_move(slot, target)
    cluster:move_keys(slot, source, target)
    cluster:end_move(slot, target)
    core.sleep_ms(LOCAL_TTL_MS + 100)
    serves_hits(srv, 6)
    assert.is_string(cluster:command(target, "GET", key))
  end)
end)

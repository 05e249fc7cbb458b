-- Redis token cache benchmark: a private redis-server on loopback, one
-- partition per account (as with `partition = "account"`), silent hits
-- through the public API (acquire_token_silent(req):await()).
--
--   lua5.4 bench/redis_bench.lua [accounts]      (default 100)
--   (from the repository root after `make`, with LUA_PATH/LUA_CPATH set as
--   scripts/bench sets them; needs Debian's redis-server)
--
-- Figures (medians):
--   memory cache hit        no plugin: the baseline
--   in-process copy hit     Redis plugin, partition's copy younger than
--                           local_ttl_ms (the usual case): no round trip
--   partition load, same    copy expired (local_ttl_ms = 0): one GET; the
--                           text is unchanged, so nothing is re-parsed
--   partition load, switch  copy expired and each request is another
--                           account's partition: one GET and a parse
--   ... over TLS            the same against a second redis-server on a
--                           TLS-only port (certificates made for the run)
--   GET round trip          msal.core.redis alone: conn:command("GET", key)
--                           of a partition, plain and TLS
package.path = "spec/support/?.lua;" .. package.path

local core = require("msal.core")
local cjson = require("cjson")
local msal = require("msal")
local redis = require("msal.cache.redis")
local redis_server = require("redis_server")
local proc = require("proc")

local N = tonumber(arg[1]) or 100
local CLIENT_ID = "11111111-2222-3333-4444-555555555555"
local TENANT_ID = "00000000-0000-0000-bbbb-000000000002"
local ENV = "login.microsoftonline.com"
local SCOPES = { "api://res1/Data.Read" }
local now_ms = core.now_ms

local median = dofile("bench/stats.lua").median

local b64url = core.crypto.b64url_encode

-- One user's partition: account, id token, access token, refresh token.
local function partition(i)
  local uid = ("00000000-0000-0000-aaaa-%012d"):format(i)
  local hid = uid .. "." .. TENANT_ID
  local store = core.store
  local claims = cjson.encode({ aud = CLIENT_ID, iss = "https://login.microsoftonline.com/" .. TENANT_ID .. "/v2.0",
    tid = TENANT_ID, oid = uid, preferred_username = "user" .. i .. "@example.com", name = "User " .. i })
  local entries = {
    Account = { home_account_id = hid, environment = ENV, realm = TENANT_ID, local_account_id = uid,
      username = "user" .. i .. "@example.com", authority_type = "MSSTS", name = "User " .. i },
    IdToken = { home_account_id = hid, environment = ENV, credential_type = "IdToken", client_id = CLIENT_ID,
      realm = TENANT_ID, secret = b64url('{"alg":"none"}') .. "." .. b64url(claims) .. ".c2ln" },
    AccessToken = { home_account_id = hid, environment = ENV, credential_type = "AccessToken", client_id = CLIENT_ID,
      realm = TENANT_ID, target = "api://res1/Data.Read", secret = ("at-%d-"):format(i) .. ("x"):rep(1500),
      cached_at = "1767225600", expires_on = "1893456000", extended_expires_on = "1893456000", token_type = "Bearer" },
    RefreshToken = { home_account_id = hid, environment = ENV, credential_type = "RefreshToken",
      client_id = CLIENT_ID, secret = ("rt-%d-"):format(i) .. ("y"):rep(800) },
  }
  local doc = { Account = {}, IdToken = {}, AccessToken = {}, RefreshToken = {}, AppMetadata = {} }
  for section, e in pairs(entries) do doc[section][store.key(section, e)] = e end
  return hid, cjson.encode(doc)
end

-- What the lead's TokenCache:access will pass as ctx.partition_key; here
-- the benchmark names the request's account before each call.
local function partitioned(plugin)
  local w = { pk = nil }
  function w.before_cache_access(_, ctx)
    ctx.partition_key = w.pk
    return plugin:before_cache_access(ctx)
  end
  function w.after_cache_access(_, ctx) return plugin:after_cache_access(ctx) end
  return w
end

local function new_app(cache)
  local authority = "https://login.microsoftonline.com/" .. TENANT_ID
  return msal.PublicClientApplication.new({ auth = { client_id = CLIENT_ID, authority = authority,
    authority_metadata = cjson.encode({ issuer = authority .. "/v2.0", token_endpoint = authority .. "/oauth2/v2.0/token",
      authorization_endpoint = authority .. "/oauth2/v2.0/authorize" }) }, cache = cache })
end

local server = redis_server.start()
local certs_dir, remove_certs = proc.tempdir()
local tls_server = redis_server.start({ tls = redis_server.make_certs(certs_dir) })
local ok, err = pcall(function()
  local hids, docs = {}, {}
  local tls_opts = { ca_file = tls_server.tls.ca }
  for _, s in ipairs({ server, tls_server }) do
    local seed = redis.new({ url = s:url(), tls = s.tls and tls_opts or nil })
    local seed_w = partitioned(seed)
    local seed_tc = require("msal.cache").new(CLIENT_ID, seed_w)
    for i = 1, N do
      hids[i], docs[i] = partition(i)
      seed_w.pk = hids[i]
      seed_tc:access(true, function() assert(seed_tc.store:load(docs[i])) end)
    end
  end
  local seed_w = partitioned(redis.new({ url = server:url() }))
  local seed_tc = require("msal.cache").new(CLIENT_ID, seed_w)
  local accounts = {}
  for i = 1, N do
    seed_w.pk = hids[i]
    accounts[i] = seed_tc:get_all_accounts()[1]
  end

  local function silent(app, acct)
    local r = app:acquire_token_silent({ scopes = SCOPES, account = acct }):await()
    if not (r and r.from_cache) then error("not a cache hit") end
  end

  -- batches, so the clock's own cost does not count: the median batch mean
  local function batched(app, w, total, batch, pick)
    local means, i = {}, 0
    for _ = 1, total / batch do
      local t = now_ms()
      for _ = 1, batch do
        i = i + 1
        local k = pick(i)
        if w then w.pk = hids[k] end
        silent(app, accounts[k])
      end
      means[#means + 1] = (now_ms() - t) * 1000 / batch
    end
    return median(means)
  end

  local mem = new_app()
  mem:get_token_cache():deserialize(docs[1])
  local acct1 = mem:get_all_accounts()[1]
  accounts[0] = acct1
  local base = batched(mem, nil, 20000, 200, function() return 0 end)

  local hot_w = partitioned(redis.new({ url = server:url(), local_ttl_ms = 1000 }))
  local hot = new_app(hot_w)
  local warm = batched(hot, hot_w, 20000, 200, function() return 1 end)

  local cold_w = partitioned(redis.new({ url = server:url(), local_ttl_ms = 0 }))
  local cold = new_app(cold_w)
  local same = batched(cold, cold_w, 4000, 100, function() return 1 end)
  local switch = batched(cold, cold_w, 4000, 100, function(i) return i % N + 1 end)

  local tls_w = partitioned(redis.new({ url = tls_server:url(), tls = tls_opts, local_ttl_ms = 0 }))
  local tls_app = new_app(tls_w)
  local tls_same = batched(tls_app, tls_w, 4000, 100, function() return 1 end)
  local tls_switch = batched(tls_app, tls_w, 4000, 100, function(i) return i % N + 1 end)

  -- the client alone: one GET of a partition's key
  local function round_trip(s)
    local conn = assert(core.redis.connect(s:conn_opts()))
    local key = redis.new({}):key_for(CLIENT_ID, hids[1])
    local means = {}
    for _ = 1, 40 do
      local t = now_ms()
      for _ = 1, 100 do assert(conn:command("GET", key)) end
      means[#means + 1] = (now_ms() - t) * 1000 / 100
    end
    conn:close()
    return median(means)
  end
  local rt_plain, rt_tls = round_trip(server), round_trip(tls_server)

  local bytes = #docs[1]
  print(("redis_bench: %d partitions of %d bytes, redis-server %s on 127.0.0.1:%d, %s"):format(
    N, bytes, (io.popen("redis-server --version"):read("*l") or ""):match("v=(%S+)") or "?", server.port,
    jit and jit.version or _VERSION))
  print(("%-44s %10s"):format("silent hit (acquire_token_silent():await())", "median us"))
  print(("%-44s %10.2f"):format("memory cache (no plugin)", base))
  print(("%-44s %10.2f"):format("Redis, in-process copy (local_ttl_ms 1000)", warm))
  print(("%-44s %10.2f"):format("Redis, partition load: GET, unchanged", same))
  print(("%-44s %10.2f"):format("Redis, partition load: GET + parse (switch)", switch))
  print(("%-44s %10.2f"):format("Redis TLS, partition load: GET, unchanged", tls_same))
  print(("%-44s %10.2f"):format("Redis TLS, partition load: GET + parse", tls_switch))
  print(("%-44s %10.2f"):format("msal.core.redis GET round trip, plain", rt_plain))
  print(("%-44s %10.2f"):format("msal.core.redis GET round trip, TLS", rt_tls))
end)
server:stop()
tls_server:stop()
remove_certs()
if not ok then error(err, 0) end

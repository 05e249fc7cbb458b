--- The Redis token cache, partitioned the way MSAL recommends for web apps
-- and services (Microsoft.Identity.Web's distributed cache): one cache blob
-- per partition key, so a request loads only its own partition. With
-- `partition = "account"` the key is the user's home_account_id (user
-- tokens); with `partition = "app"` it is the tenant (app tokens from the
-- client-credential flow).
--
-- Per partition one Redis string, `<key_prefix>:{<client_id>:<partition_key>}`,
-- holds that partition's MSAL unified-cache JSON, with a TTL of the
-- partition's latest token expiry plus `ttl_slack_s` (refresh tokens carry
-- no expiry in the cache: they count as living `refresh_token_ttl_s`, Entra's
-- 90-day inactivity limit, as MSAL.NET's SuggestedCacheExpiry leaves user
-- caches with refresh tokens unbounded). A partition whose last entry is
-- removed is deleted. The braces are a Redis Cluster hash tag: the
-- partition's refresh lock, `<that key>:lock` (`plugin:lock_key_for`), lives
-- in the same slot, so one node serves both.
--
-- **Every partition, for listing.** A set per client,
-- `<key_prefix>:{<client_id>}:partitions`, names the client's partitions
-- (written with each partition, in its MULTI on a single server, right
-- after it in a cluster, where the set lives in another slot). An access
-- that names no partition and does not write (get_all_accounts, the
-- lookups by username or local account id) reads every partition it names,
-- as one document, kept in the process like a partition for local_ttl_ms.
--
-- **One server or a cluster.** msal.cache.redis_router sends each command
-- to the node serving its key (a cluster is recognised on the first call;
-- MOVED and ASK are followed).
--
-- **In-process copy and its staleness bound.** Each partition read from
-- Redis is kept in the process for `local_ttl_ms` (default 1000 ms); reads
-- within that window use it without asking Redis, so a silent hit costs no
-- round trip. A token another process wrote (or removed) is therefore seen
-- here at most `local_ttl_ms` late. Writes always re-read Redis and update
-- the copy. When Redis is down, a read within the window is still served;
-- past it, and on every write, the access raises
-- `ClientAuthError("cache_unavailable", …)` naming the server and the
-- reason, and the caller decides (e.g. an interactive or network flow).
--
-- **Writes are merge-safe.** A write re-reads the partition under `WATCH`,
-- re-applies this access's changes entry by entry onto what is there now
-- (so a token another process stored meanwhile is kept) and commits with
-- `MULTI`/`SET PX`/`EXEC`; a commit that lost the race is retried.
--
-- **The client is msal.core.redis** (csrc/redis.c, resp.c, stream.c): RESP2
-- over TCP or TLS (`rediss://`, `tls = {ca_file, ca_path, server_name,
-- cert_file, key_file}`: certificate and host-name checks, SNI), ACL users,
-- connect and command deadlines, and caps on every reply, so a hostile
-- server gets a typed error, never an allocation of its choosing. Not
-- hiredis: 0.14 (Debian 12) has no TLS and allocated whatever a reply
-- announced; not Debian's lua-redis: a 2014 snapshot that would add
-- luasocket.
--
-- **Inside OpenResty** (nginx with lua-nginx-module), in a phase where
-- cosockets work (rewrite, access, content, timers, …), the cache talks to
-- Redis over cosockets (msal.cache.redis_cosocket) instead, so no nginx
-- worker ever blocks on Redis; in other phases (init_worker, filters, log)
-- and outside nginx it uses the C client. A cosocket belongs to its request:
-- each cache access (a before/after hook, one try of the refresh lock, its
-- release) opens its own connections through a router session and gives
-- them back to nginx's keepalive pool when it ends, so a WATCH … EXEC stays
-- on one connection and nothing is shared between requests; the
-- deployment's layout (cluster or not, slot map) is still learnt once per
-- worker. Over TLS the certificate is verified against nginx's
-- `lua_ssl_trusted_certificate` (lua-nginx-module 0.10.23 takes no CA per
-- socket, so `tls.ca_file`/`ca_path` do not apply there).
--
-- **What the caller passes.** `TokenCache:access` gives the plugin
-- `ctx = {token_cache, will_write, cache_has_changed}` and, optionally,
-- `ctx.partition_key`: the string naming the partition this access concerns
-- (`plugin:partition_key_for{home_account_id = …, tenant_id = …}` computes
-- it for the plugin's mode). Without it the access uses the partition
-- `"default"`. Tokens are never logged; error messages carry only the server
-- address and Redis's reason.
-- @module msal.cache.redis
local core = require("msal.core")
local errors = require("msal.errors")
local merge = require("msal.cache.merge")
local partition = require("msal.cache.partition")
local redis_router = require("msal.cache.redis_router")
local refresh_lock = require("msal.cache.refresh_lock")

local crypto = core.crypto
local now_ms, wall, core_sleep_ms = core.now_ms, core.time, core.sleep_ms
local unpack = table.unpack or unpack

local redis = {}

local Plugin = {}
Plugin.__index = Plugin

local WRITE_ATTEMPTS = 25

-- nginx phases where cosockets (and ngx.sleep) work: lua-nginx-module's
-- ngx.socket.tcp context list, as msal.transport.openresty's.
local COSOCKET_PHASES = {
  rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true, preread = true,
}

--- Whether the code runs inside nginx in a phase where cosockets work (and
-- the Redis cache uses them rather than the blocking C client).
-- @treturn boolean
function redis.cosockets_here()
  local ngx = rawget(_G, "ngx")
  return type(ngx) == "table" and type(ngx.get_phase) == "function" and type(ngx.socket) == "table"
    and COSOCKET_PHASES[ngx.get_phase()] == true
end

-- Waits ms without blocking an nginx worker.
local function sleep_ms(ms)
  if redis.cosockets_here() then return ngx.sleep(math.max(0.001, ms / 1000)) end
  core_sleep_ms(ms)
end

local OPTIONS = {
  location = "string", url = "string", partition = "string", ttl_slack_s = "number",
  local_ttl_ms = "number", key_prefix = "string", timeout_ms = "number", refresh_token_ttl_s = "number",
  local_max_partitions = "number", refresh_lock_wait_ms = "number", tls = "table",
}
local TLS_OPTIONS = { ca_file = true, ca_path = true, server_name = true, cert_file = true, key_file = true }

local function config_error(msg)
  error(errors.ClientConfigurationError("invalid_configuration", msg), 3)
end

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

--- Parses `redis://[[username]:password@]host[:port][/db]`, or `rediss://…`
-- for TLS (host may be `[ipv6]`; user and password are percent-decoded; the
-- port is 6379 unless given, for both: Redis has no separate TLS port, and
-- managed services name theirs, e.g. Azure's 6380).
-- @tparam string url
-- @treturn table `{host, port, db, username, password, tls}` (tls: true
--   for rediss://)
-- @return or nil, message
function redis.parse_url(url)
  local scheme, rest = (type(url) == "string" and url or ""):match("^(rediss?)://(.*)$")
  if not rest then return nil, "cache.url must look like redis://host:port/db or rediss://host:port/db" end
  local userinfo, hostpart = rest:match("^(.*)@([^@]*)$")
  if not userinfo then hostpart = rest end
  local authority, path = hostpart:match("^([^/]*)(.*)$")
  local host, port = authority:match("^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:]*):?(%d*)$") end
  if not host or host == "" then return nil, "cache.url names no host: " .. url end
  local db = path:match("^/(%d*)$")
  if path ~= "" and not db then return nil, "cache.url's path must be a database number: " .. url end
  local c = { host = host, port = tonumber(port) or 6379, db = tonumber(db) or 0, tls = scheme == "rediss" or nil }
  if c.port < 1 or c.port > 65535 then return nil, "cache.url's port is out of range: " .. url end
  if userinfo then
    local user, pass = userinfo:match("^([^:]*):(.*)$")
    if not user then user, pass = "", userinfo end
    c.username = user ~= "" and unescape(user) or nil
    c.password = unescape(pass)
  end
  return c
end

--- Makes a Redis cache plugin; it connects on first use, so an application
-- can be made while Redis is down.
-- @tparam table opts `{url = "redis://127.0.0.1:6379/0", partition =
--   "account" | "app", local_ttl_ms = 1000, ttl_slack_s = 300, key_prefix =
--   "msal", timeout_ms = 1000, refresh_token_ttl_s = 7776000,
--   local_max_partitions = 1000, refresh_lock_wait_ms = 10000}` and
--   `tls = {ca_file, ca_path, server_name, cert_file, key_file}` with a
--   rediss:// url: local_max_partitions is the in-process copies kept at
--   most (a web app sees many users; older copies are dropped first);
--   refresh_lock_wait_ms bounds the wait for another process's refresh of
--   the same token (0: no single flight across processes). Inside nginx
--   (cosockets) the TLS trust is nginx's lua_ssl_trusted_certificate, not
--   tls.ca_file/ca_path, and the name checked must be a host name (give
--   tls.server_name when the url has an IP address)
-- @treturn table the plugin (`before_cache_access`, `after_cache_access`,
--   `partition_key_for`, `key_for`, `lock_key_for`, `index_key_for`,
--   `close`)
function redis.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then config_error("the Redis cache options must be a table") end
  for k, v in pairs(opts) do
    if not OPTIONS[k] then config_error("unknown configuration key 'cache." .. tostring(k) .. "'") end
    if type(v) ~= OPTIONS[k] then config_error("cache." .. k .. " must be a " .. OPTIONS[k]) end
  end
  local conn_opts, err = redis.parse_url(opts.url or "redis://127.0.0.1:6379/0")
  if not conn_opts then config_error(err) end
  if opts.tls then
    if not conn_opts.tls then config_error("cache.tls needs a rediss:// url (TLS)") end
    for k, v in pairs(opts.tls) do
      if not TLS_OPTIONS[k] then config_error("unknown configuration key 'cache.tls." .. tostring(k) .. "'") end
      if type(v) ~= "string" then config_error("cache.tls." .. k .. " must be a string") end
    end
    if opts.tls.key_file and not opts.tls.cert_file then config_error("cache.tls.key_file needs cache.tls.cert_file") end
    conn_opts.tls = opts.tls
  end
  local partition = opts.partition or "account"
  if partition ~= "account" and partition ~= "app" then
    config_error("cache.partition must be \"account\" or \"app\"")
  end
  local function nonneg(name, default)
    local v = opts[name] or default
    if v < 0 or v ~= v then config_error("cache." .. name .. " must not be negative") end
    return v
  end
  conn_opts.timeout_ms = math.floor(nonneg("timeout_ms", 1000))
  if conn_opts.timeout_ms < 1 then config_error("cache.timeout_ms must be at least 1") end
  return setmetatable({
    conn_opts = conn_opts,
    router = redis_router.new(conn_opts),
    where = (conn_opts.host:find(":", 1, true) and "[" .. conn_opts.host .. "]" or conn_opts.host)
      .. ":" .. conn_opts.port,
    partition = partition,
    prefix = opts.key_prefix or "msal",
    local_ttl_ms = nonneg("local_ttl_ms", 1000),
    ttl_slack_s = nonneg("ttl_slack_s", 300),
    rt_ttl_s = nonneg("refresh_token_ttl_s", 90 * 86400),
    max_copies = math.max(1, nonneg("local_max_partitions", 1000)),
    max_keys = math.max(1, nonneg("local_max_partitions", 1000)), -- the key memo, bounded like the copies
    keys = {},      -- client_id -> partition key -> Redis key (no string building per access)
    nkeys = 0,
    copies = {},    -- Redis key -> {json, at}: the in-process copies
    ncopies = 0,
    -- token cache -> {key, json, gen}: the partition it holds, as loaded
    -- (json is also the base a write's changes are measured against)
    installed = setmetatable({}, { __mode = "k" }),
    conflicts = 0,  -- commits that lost a race and were retried (for tests and tuning)
    refresh_lock_wait_ms = nonneg("refresh_lock_wait_ms", 10000),
  }, Plugin)
end

local function unavailable(self, why)
  error(errors.ClientAuthError("cache_unavailable",
    ("the Redis token cache at %s is unavailable: %s"):format(self.where, tostring(why))), 0)
end

--- The partition key of a request in this plugin's mode (see
-- msal.cache.partition).
-- @function Plugin:partition_key_for
Plugin.partition_key_for = partition.partition_key_for

--- The storage key of a client's partition:
-- `<key_prefix>:{<client_id>:<partition_key>}` (memoised as
-- msal.cache.partition does), braces and all: a Redis Cluster hash tag.
-- @function Plugin:key_for
Plugin.key_for = partition.key_for

-- The key's text, for msal.cache.partition's memo.
function Plugin:make_key(client_id, partition_key)
  return self.prefix .. ":{" .. tostring(client_id) .. ":" .. partition_key .. "}"
end

--- The key of a partition's refresh lock: the partition's key and
-- ":lock", in the same cluster slot as the partition (its hash tag).
-- @tparam string client_id
-- @tparam[opt] string partition_key ("default" when nil)
-- @treturn string
function Plugin:lock_key_for(client_id, partition_key)
  return self:key_for(client_id, partition_key) .. ":lock"
end

--- The key of the set naming a client's partitions:
-- `<key_prefix>:{<client_id>}:partitions`.
-- @tparam string client_id
-- @treturn string
function Plugin:index_key_for(client_id)
  return self.prefix .. ":{" .. tostring(client_id) .. "}:partitions"
end

-- Keeps a new in-process copy, first dropping expired ones (and, if that
-- is not enough, all) once there are local_max_partitions of them.
function Plugin:keep(key, copy, t)
  if self.ncopies >= self.max_copies then
    local n = 0
    for k, c in pairs(self.copies) do
      if t - c.at >= self.local_ttl_ms then self.copies[k] = nil else n = n + 1 end
    end
    if n >= self.max_copies then self.copies, n = {}, 0 end
    self.ncopies = n
  end
  if self.copies[key] == nil then self.ncopies = self.ncopies + 1 end
  self.copies[key] = copy
end

--- Closes the connections (the next access opens what it needs).
function Plugin:close()
  self.router:close()
end

-- Runs fn(p, ...) where p is the plugin, or, inside nginx where cosockets
-- work, a view of it whose router is a session over cosockets: every other
-- field is read from and written to the plugin. The session's connections
-- go back to nginx's keepalive pool when fn ends, however it ends.
function Plugin:with_access(fn, ...)
  if not redis.cosockets_here() then return fn(self, ...) end
  local session = self.router:session(require("msal.cache.redis_cosocket").connect)
  local view = setmetatable({ router = session }, { __index = self, __newindex = self })
  local ok, a, b = pcall(fn, view, ...)
  session:close()
  if not ok then error(a, 0) end
  return a, b
end

--- Runs conn[method](conn, ...) on the connection to the node serving the
-- call's key (msal.cache.redis_router: the key is the command's first),
-- connecting first if needed. A connection that breaks is replaced once
-- and the call repeated, because a restarted server leaves every old
-- connection dead; `once` forbids the repeat, and following a cluster's
-- redirection (a MULTI/EXEC on another connection would have lost its
-- WATCH). Raises ClientAuthError "cache_unavailable" on any failure,
-- including an error reply.
-- @tparam boolean once
-- @tparam string method "command" or "pipeline"
-- @return the reply (a nil reply is nil)
function Plugin:run(once, method, ...)
  -- msal.core's codes: SERVER is an error reply on a good connection;
  -- any other code is a connection that broke (and is closed now), or a
  -- redirection `once` did not follow
  local r, err, code = self.router:call(once, method, ...)
  if code == nil then return r end
  if code == "SERVER" then unavailable(self, "Redis answered: " .. err) end
  unavailable(self, err)
end

-- The partition's JSON as Redis has it ("" when there is none).
function Plugin:fetch(key)
  return self:run(false, "command", "GET", key) or ""
end

-- Makes the token cache hold this partition's content; a no-op when it
-- already does (same key, same text, untouched since).
function Plugin:install(tc, key, text)
  local store = tc.store
  local st = self.installed[tc]
  if st and st.key == key and st.json == text and st.gen == store:generation() then return end
  local ok, err = store:load(text)
  if not ok then
    local e = require("msal.cache").error_from_store(err)
    e.error_message = e.error_message .. " (Redis key " .. key .. ")"
    error(e, 0)
  end
  if st then
    st.key, st.json, st.gen, st.all = key, text, store:generation(), nil
  else
    self.installed[tc] = { key = key, json = text, gen = store:generation() }
  end
end

-- Removes from the index the partitions that are gone (expired), when no
-- other process wrote them again meanwhile: a script, so the check and the
-- removal are one step. A cluster keeps them (the partitions live in other
-- slots than the index; a dead name costs a GET when listing).
local PRUNE = [[
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then redis.call('SREM', KEYS[1], ARGV[i - 1]) end
end
return 0
]]

-- Every partition of the client as one document.
function Plugin:fetch_all(client_id, index)
  local names, cursor = {}, "0"
  repeat
    local r = self:run(false, "command", "SSCAN", index, cursor, "COUNT", 1000)
    cursor = r[1]
    for _, name in ipairs(r[2]) do names[#names + 1] = name end
  until cursor == "0"
  table.sort(names) -- a stable order: the same partitions give the same text
  local keys = {}
  for i, name in ipairs(names) do keys[i] = self:key_for(client_id, name) end
  local texts, err, code = self.router:get_many(keys)
  if not texts then
    unavailable(self, code == "SERVER" and "Redis answered: " .. err or err)
  end
  local present, gone, gone_keys = {}, {}, { index }
  for i, text in ipairs(texts) do
    if text then
      present[#present + 1] = text
    else
      gone[#gone + 1] = names[i]
      gone_keys[#gone_keys + 1] = keys[i]
    end
  end
  if #gone > 0 and not self.router:is_cluster() then
    local args = { "EVAL", PRUNE, #gone_keys }
    for _, k in ipairs(gone_keys) do args[#args + 1] = k end
    for _, n in ipairs(gone) do args[#args + 1] = n end
    self:run(false, "command", unpack(args))
  end
  return merge.union(present)
end

-- Loads every partition (an access that names none and only reads: the
-- account listings), from the in-process copy while it is younger than
-- local_ttl_ms.
function Plugin:install_all(tc)
  local index = self:index_key_for(tc.client_id)
  local t = now_ms()
  local copy = self.copies[index]
  if not copy or t - copy.at >= self.local_ttl_ms then
    local text = self:fetch_all(tc.client_id, index)
    if copy and copy.json == text then
      copy.at = t
    else
      copy = { json = text, at = t }
      self:keep(index, copy, t)
    end
  end
  self:install(tc, index, copy.json)
  self.installed[tc].all = true
end

--- Before the cache is used: loads the access's partition into the token
-- cache, from the in-process copy while it is younger than local_ttl_ms,
-- else from Redis. A write always reads Redis (its base for merging). An
-- access that names no partition and does not write sees every partition.
-- Raises ClientAuthError "cache_unavailable" when Redis is needed and down.
-- @tparam table ctx `{token_cache, will_write, partition_key?}`
function Plugin:before_cache_access(ctx)
  return self:with_access(self.read_partition, ctx)
end

-- before_cache_access's work, on the plugin or its cosocket view.
function Plugin:read_partition(ctx)
  local tc = ctx.token_cache
  if ctx.partition_key == nil and not ctx.will_write then return self:install_all(tc) end
  local key = self:key_for(tc.client_id, ctx.partition_key)
  local t = now_ms()
  local copy = self.copies[key]
  if ctx.will_write or not copy or t - copy.at >= self.local_ttl_ms then
    local text = self:fetch(key)
    if copy and copy.json == text then
      copy.at = t
    else
      copy = { json = text, at = t }
      self:keep(key, copy, t)
    end
  end
  self:install(tc, key, copy.json)
end

-- Another process's version with this access's changes applied on top.
local function merged(key, current, delta)
  local text = merge.apply(current, delta)
  if not text then
    error(errors.ClientAuthError("invalid_cache", "the token cache in Redis key " .. key .. " is not a JSON object"), 0)
  end
  return text
end

-- Milliseconds the partition should live: its latest token expiry plus
-- the slack; nil when it holds no entries at all.
local function ttl_ms(self, store)
  if store:count() == 0 then return nil end
  local now = wall()
  local last = now
  for _, k in ipairs(store:find("AccessToken", {})) do
    local e = store:get("AccessToken", k)
    local t = math.max(tonumber(e.expires_on) or 0, tonumber(e.extended_expires_on) or 0)
    if t > last then last = t end
  end
  for _, k in ipairs(store:find("RefreshToken", {})) do
    local e = store:get("RefreshToken", k)
    local t = tonumber(e.expires_on) or now + self.rt_ttl_s
    if t > last then last = t end
  end
  return math.max(1000, math.floor((last - now + self.ttl_slack_s) * 1000))
end

--- After the cache was used: if the access changed it, writes the
-- partition back merge-safely (WATCH, re-read, re-apply, MULTI/SET/EXEC,
-- retried when another writer won), and refreshes the in-process copy.
-- Raises ClientAuthError "cache_unavailable" when Redis is down, and
-- "cache_write_conflict" if every attempt lost the race.
-- @tparam table ctx `{token_cache, cache_has_changed, partition_key?}`
function Plugin:after_cache_access(ctx)
  if not ctx.cache_has_changed then return end
  return self:with_access(self.write_partition, ctx)
end

-- after_cache_access's work, on the plugin or its cosocket view: the WATCH
-- and the MULTI/EXEC it guards run on one session, so on one connection.
function Plugin:write_partition(ctx)
  local tc = ctx.token_cache
  local st = self.installed[tc]
  if not st then return end -- before_cache_access failed: nothing was loaded
  if st.all then return end -- every partition, for reading: nothing to write back
  local key, base, store = st.key, st.json, tc.store
  local index, name = self:index_key_for(tc.client_id), ctx.partition_key or "default"
  local mine = store:serialize()
  local delta
  for attempt = 1, WRITE_ATTEMPTS do
    local t = now_ms()
    local rs = self:run(false, "pipeline", { { "WATCH", key }, { "GET", key } })
    local current = rs[2] or ""
    local text = mine
    if current ~= base then
      delta = delta or merge.changes(base, mine)
      text = merged(key, current, delta)
      self:install(tc, key, text)
    end
    local ms = ttl_ms(self, store)
    local cmd = ms and { "SET", key, text, "PX", ms } or { "DEL", key }
    -- the index outlives every partition it names (a partition's TTL is
    -- at most its refresh token's, unless an access token lives longer)
    local listed = ms and { { "SADD", index, name },
      { "PEXPIRE", index, math.max(ms, math.floor((self.rt_ttl_s + self.ttl_slack_s) * 1000)) } }
      or { { "SREM", index, name } }
    local cmds = { { "MULTI" }, cmd }
    local apart = self.router:is_cluster() -- the index is in another slot
    if not apart then
      for _, c in ipairs(listed) do cmds[#cmds + 1] = c end
    end
    cmds[#cmds + 1] = { "EXEC" }
    local ok, res = pcall(self.run, self, true, "pipeline", cmds)
    if ok and res[#cmds] then
      -- in a cluster, after the partition: a failure here leaves the
      -- partition out of listings until its next write, not lost
      if apart then pcall(self.run, self, false, "pipeline", listed) end
      local stored = ms and text or ""
      self:keep(key, { json = stored, at = t }, t)
      -- this process's listings see its own writes at once
      if self.copies[index] then self.copies[index], self.ncopies = nil, self.ncopies - 1 end
      if stored ~= text then self:install(tc, key, stored) end
      st = self.installed[tc]
      st.key, st.json, st.gen = key, stored, store:generation()
      return
    end
    -- an error here may be a connection lost mid-commit: go round again on
    -- a fresh one (re-applying the changes is harmless if it had committed);
    -- a Redis that is down fails the WATCH above and ends the loop
    self.conflicts = self.conflicts + 1
    -- jittered and growing: two writers that keep colliding drift apart
    sleep_ms(math.random() * math.min(2 ^ attempt, 32))
  end
  error(errors.ClientAuthError("cache_write_conflict",
    ("the Redis token cache at %s: partition %s kept changing; gave up after %d attempts")
      :format(self.where, key, WRITE_ATTEMPTS)), 0)
end

-- Deletes the lock only while it is still ours: a holder that outlived
-- the lock's TTL must not delete the next holder's.
local RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
local REFRESH_LOCK_TTL_MS = 30000

--- Takes the lock of one refresh, for every process that shares this Redis
-- (silent.refresh calls it before a token request): `SET <lock key of the
-- partition>:<hash> <random> NX PX 30000` (in the partition's cluster
-- slot), polled by
-- msal.cache.refresh_lock while another holds it, released by its owner
-- only. The lock expires by itself if its holder dies.
-- @tparam string thumbprint the refresh's identity
-- @tparam table info `{client_id, home_account_id, tenant_id}`: whose
--   partition the refresh writes
-- @treturn promise of the unlock function, or of nil when the lock was not
--   had within refresh_lock_wait_ms (or Redis did not answer): then the
--   caller refreshes by itself
function Plugin:lock_refresh(thumbprint, info)
  local key = self:lock_key_for(info.client_id, self:partition_key_for(info)) .. ":" .. crypto.sha256_hex(thumbprint)
  local token = crypto.random_string(32)
  local function call(p, ...) return p:run(false, "command", ...) end
  return refresh_lock.poll(function()
    local ok, r = pcall(self.with_access, self, call, "SET", key, token, "NX", "PX", tostring(REFRESH_LOCK_TTL_MS))
    if not ok then return nil end
    if r == nil then return false end
    -- the next read must see what the previous holder wrote, not an
    -- in-process copy from before its refresh
    self.copies, self.ncopies = {}, 0
    return function() pcall(self.with_access, self, call, "EVAL", RELEASE, "1", key, token) end
  end, self.refresh_lock_wait_ms)
end

return redis

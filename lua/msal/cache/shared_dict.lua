--- The token cache in an nginx shared dictionary (`lua_shared_dict`), shared
-- by every worker of an OpenResty server, partitioned like the Redis cache:
-- one entry per home account (`partition = "account"`, user tokens) or per
-- tenant (`"app"`), so a request reads only its own account's tokens — a
-- 10,000-account cache is 10,000 small values, not one big one.
--
-- Per partition the dictionary holds the partition's MSAL unified-cache
-- JSON under `<key_prefix>:<client_id>:<partition_key>` and a version
-- number under the same key with `#v` appended. Each worker keeps the
-- partitions it used last parsed, one store each (at most
-- `local_max_partitions`, the oldest one's store reused past that), and
-- parses one again only when its version moved: a hit of a recent user reads
-- one number from the dictionary.
--
-- **Writes are merge-safe across workers.** A write holds the partition's
-- write lock (a dictionary `add`, held for microseconds); when the version
-- moved since this worker loaded the partition, its changes are applied
-- entry by entry onto what is there now (`msal.cache.merge`), so a token
-- another worker stored meanwhile is kept.
--
-- **One refresh across workers.** `lock_refresh` (used by the silent flow)
-- takes a per-token-request lock in `lock_dict`: the worker that gets it
-- refreshes, the others wait (bounded by `lock_timeout`) and then find the
-- new token in the cache. A lock whose holder died expires after
-- `lock_ttl` seconds. Waiting goes through the loop's timers (nginx timers
-- under `msal.openresty`): it never blocks a worker.
--
-- Outside nginx any object with the dictionary methods used here (`get`,
-- `set`, `add`, `incr`, `delete`) stands in for a shared dictionary.
-- @module msal.cache.shared_dict
local core = require("msal.core")
local errors = require("msal.errors")
local loop = require("msal.loop")
local merge = require("msal.cache.merge")
local partition = require("msal.cache.partition")
local Promise = require("msal.promise")

local shared_dict = {}

local Plugin = {}
Plugin.__index = Plugin

local WRITE_LOCK_TTL_S = 2
local WRITE_LOCK_TRIES = 2000
local LOCK_POLL_MIN_MS, LOCK_POLL_MAX_MS = 5, 50

local OPTIONS = {
  partition = "string", key_prefix = "string", lock_dict = "any", lock_timeout = "number", lock_ttl = "number",
  local_max_partitions = "number",
}

local function config_error(msg)
  error(errors.ClientConfigurationError("invalid_configuration", msg), 3)
end

-- A dictionary by name (ngx.shared[name]) or the object itself.
local function dict_of(d, what)
  if type(d) == "string" then
    local shared = ngx and ngx.shared -- luacheck: globals ngx
    local found = shared and shared[d]
    if not found then
      config_error(("%s: there is no lua_shared_dict named '%s' in nginx.conf"):format(what, d))
    end
    return found
  end
  if type(d) ~= "table" and type(d) ~= "userdata" then
    config_error(what .. " must be a lua_shared_dict name or a dictionary object")
  end
  return d
end

--- Makes a shared-dictionary cache plugin.
-- @param dict the dictionary: a `lua_shared_dict` name, or an object with
--   `get`, `set`, `add`, `incr` and `delete`
-- @tparam[opt] table opts `{partition = "account" | "app", key_prefix =
--   "msal", lock_dict = dict (default: the same), lock_timeout = 10 (s a
--   waiter waits for another worker's refresh), lock_ttl = 30 (s before a
--   dead holder's lock expires), local_max_partitions = 1000 (parsed
--   partitions a worker keeps, ~9 KB each with Entra-size tokens)}`
-- @treturn table the plugin (`before_cache_access`, `after_cache_access`,
--   `partition_key_for`, `key_for`, `lock_refresh`)
function shared_dict.new(dict, opts)
  opts = opts or {}
  if type(opts) ~= "table" then config_error("the shared dictionary cache options must be a table") end
  for k, v in pairs(opts) do
    local want = OPTIONS[k]
    if not want then config_error("unknown shared dictionary cache option '" .. tostring(k) .. "'") end
    if want ~= "any" and type(v) ~= want then config_error(k .. " must be a " .. want) end
  end
  local partition = opts.partition or "account"
  if partition ~= "account" and partition ~= "app" then
    config_error("partition must be \"account\" or \"app\"")
  end
  for name, what in pairs({ lock_timeout = "number of seconds", lock_ttl = "number of seconds",
      local_max_partitions = "number" }) do
    local v = opts[name]
    if v ~= nil and not (v > 0) then config_error(name .. " must be a positive " .. what) end
  end
  local d = dict_of(dict, "the shared dictionary cache")
  return setmetatable({
    dict = d,
    lock_dict = opts.lock_dict ~= nil and dict_of(opts.lock_dict, "lock_dict") or d,
    partition = partition,
    prefix = opts.key_prefix or "msal",
    lock_timeout_ms = (opts.lock_timeout or 10) * 1000,
    lock_ttl = opts.lock_ttl or 30,
    max_parsed = opts.local_max_partitions or 1000,
    keys = {},      -- client_id -> partition key -> dictionary key
    nkeys = 0,
    max_keys = 10000,
    -- token cache -> {current = partition, parts = {key -> partition},
    -- ring = {partition, …} in the order they were made, hand = the last
    -- one reused};
    -- a partition is {key, store, version, json (as loaded: a write's merge
    -- base), gen (the store's generation then)}
    installed = setmetatable({}, { __mode = "k" }),
    merges = 0,     -- writes that found another worker's version (for tests)
  }, Plugin)
end

--- The partition key of a request in this plugin's mode (see
-- msal.cache.partition).
-- @function Plugin:partition_key_for
Plugin.partition_key_for = partition.partition_key_for

--- The storage key of a client's partition:
-- `<key_prefix>:<client_id>:<partition_key>` (see msal.cache.partition).
-- @function Plugin:key_for
Plugin.key_for = partition.key_for

local function unavailable(key, why)
  error(errors.ClientAuthError("cache_unavailable",
    ("the shared dictionary token cache (key %s): %s"):format(key, tostring(why))), 0)
end

-- The token cache's partitions of this plugin.
local function state_of(self, tc)
  local st = self.installed[tc]
  if not st then
    st = { parts = {}, ring = {}, hand = 0 }
    self.installed[tc] = st
  end
  return st
end

-- A partition entry for key: a new one while there are fewer than
-- local_max_partitions, else the oldest one's, store and all (a store is
-- reused, not made again: with more users than that every request would
-- otherwise make one and the collector free one).
local function slot_for(self, tc, st, key)
  local ring = st.ring
  local n = #ring
  if n < self.max_parsed then
    local part = { key = key, store = tc:new_store() }
    ring[n + 1] = part
    return part
  end
  local hand = st.hand % n + 1
  st.hand = hand
  local part = ring[hand]
  st.parts[part.key] = nil
  part.key = key
  return part
end

-- Makes the token cache hold this partition's content (text, at version),
-- in the partition's own store.
local function install(self, tc, key, version, text)
  local st = state_of(self, tc)
  local part = st.parts[key]
  if not part then
    part = slot_for(self, tc, st, key)
    st.parts[key] = part
  end
  local ok, err = part.store:load(text)
  if not ok then
    local e = require("msal.cache").error_from_store(err)
    e.error_message = e.error_message .. " (shared dictionary key " .. key .. ")"
    error(e, 0)
  end
  part.version, part.json, part.gen = version, text, part.store:generation()
  tc.store, st.current = part.store, part
end

--- Before the cache is used: makes the token cache hold the access's
-- partition, parsing it again only when its version moved (or an access
-- that failed left its store changed).
-- @tparam table ctx `{token_cache, partition_key?}`
function Plugin:before_cache_access(ctx)
  local tc = ctx.token_cache
  local key = self:key_for(tc.client_id, ctx.partition_key)
  local dict = self.dict
  local version = dict:get(key .. "#v") or 0
  local st = self.installed[tc]
  local part = st and st.parts[key]
  if part and part.version == version and part.gen == part.store:generation() then
    tc.store, st.current = part.store, part
    return
  end
  install(self, tc, key, version, dict:get(key) or "")
end

-- Takes the partition's write lock: writes hold it for the few
-- microseconds of a get, a merge and a set, so a busy wait is the right
-- wait (a write may run where nothing can yield).
local function write_lock(dict, key)
  local lock = key .. "#w"
  for _ = 1, WRITE_LOCK_TRIES do
    local ok, err = dict:add(lock, true, WRITE_LOCK_TTL_S)
    if ok then return lock end
    if err ~= "exists" then unavailable(key, err) end
  end
  -- a holder that died mid-write: its lock expires by itself
  unavailable(key, "its write lock stayed taken")
end

--- After the cache was used: if the access changed it, stores the
-- partition (merged onto another worker's newer version when there is one)
-- and moves its version.
-- @tparam table ctx `{token_cache, cache_has_changed}`
function Plugin:after_cache_access(ctx)
  if not ctx.cache_has_changed then return end
  local tc = ctx.token_cache
  local st = self.installed[tc]
  local part = st and st.current
  if not part or part.store ~= tc.store then return end -- before_cache_access failed: nothing was loaded
  local dict, key = self.dict, part.key
  local mine = tc.store:count() > 0 and tc.store:serialize() or ""
  local lock = write_lock(dict, key)
  local ok, err = pcall(function()
    local text = mine
    local now = dict:get(key .. "#v") or 0
    if now ~= part.version then
      self.merges = self.merges + 1
      text = merge.apply(dict:get(key) or "", merge.changes(part.json, mine))
      if not text then
        error(errors.ClientAuthError("invalid_cache",
          "the token cache in shared dictionary key " .. key .. " is not a JSON object"), 0)
      end
    end
    if text == "" then
      dict:delete(key) -- the partition's last entry went
    else
      local stored, serr = dict:set(key, text)
      if not stored then unavailable(key, serr) end
    end
    local version, verr = dict:incr(key .. "#v", 1, 0)
    if not version then unavailable(key, verr) end
    if text ~= mine then
      install(self, tc, key, version, text)
    else
      part.version, part.json, part.gen = version, text, tc.store:generation()
    end
  end)
  dict:delete(lock)
  if not ok then error(err, 0) end
end

-- A string that names this lock holder alone (worker and request).
local function holder_token()
  return core.crypto.uuid4()
end

--- Takes the cross-worker lock of one token request. Resolves an unlock
-- function once this worker holds it, or nil when `lock_timeout` passed
-- first (the caller then refreshes on its own rather than hang).
-- @tparam string thumbprint what identifies the token request
-- @treturn promise of `unlock` or nil
function Plugin:lock_refresh(thumbprint)
  local d = self.lock_dict
  local key = self.prefix .. ":refresh:" .. core.crypto.sha256_hex(thumbprint)
  local token = holder_token()
  local ttl, deadline = self.lock_ttl, loop.now_ms() + self.lock_timeout_ms
  local function unlock()
    -- only the holder unlocks: past lock_ttl another worker may hold it
    if d:get(key) == token then d:delete(key) end
  end
  return Promise.new(function(resolve)
    local wait = LOCK_POLL_MIN_MS
    local function try()
      local ok, err = d:add(key, token, ttl)
      if ok then return resolve(unlock) end
      if err ~= "exists" or loop.now_ms() >= deadline then return resolve(nil) end
      loop.set_timeout(wait, try)
      wait = math.min(wait * 2, LOCK_POLL_MAX_MS)
    end
    try()
  end)
end

return shared_dict

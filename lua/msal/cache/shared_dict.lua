--- The token cache in an nginx shared dictionary (`lua_shared_dict`), shared
-- by every worker of an OpenResty server, partitioned like the Redis cache:
-- one entry per home account (`partition = "account"`, user tokens) or per
-- tenant (`"app"`), so a request reads only its own account's tokens — a
-- 10,000-account cache is 10,000 small values, not one big one.
--
-- Per partition the dictionary holds the partition's MSAL unified-cache
-- JSON under `<key_prefix>:<client_id>:<partition_key>` and a version
-- number under the same key with `#v` appended. A worker reloads a
-- partition only when its version moved, so a repeated hit reads one number.
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
local Promise = require("msal.promise")

local shared_dict = {}

local Plugin = {}
Plugin.__index = Plugin

local DEFAULT_PARTITION = "default"
local WRITE_LOCK_TTL_S = 2
local WRITE_LOCK_TRIES = 2000
local LOCK_POLL_MIN_MS, LOCK_POLL_MAX_MS = 5, 50
local MAX_KEYS = 10000

local OPTIONS = {
  partition = "string", key_prefix = "string", lock_dict = "any", lock_timeout = "number", lock_ttl = "number",
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
--   dead holder's lock expires)}`
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
  for _, name in ipairs({ "lock_timeout", "lock_ttl" }) do
    local v = opts[name]
    if v ~= nil and not (v > 0) then config_error(name .. " must be a positive number of seconds") end
  end
  local d = dict_of(dict, "the shared dictionary cache")
  return setmetatable({
    dict = d,
    lock_dict = opts.lock_dict ~= nil and dict_of(opts.lock_dict, "lock_dict") or d,
    partition = partition,
    prefix = opts.key_prefix or "msal",
    lock_timeout_ms = (opts.lock_timeout or 10) * 1000,
    lock_ttl = opts.lock_ttl or 30,
    keys = {},      -- client_id -> partition key -> dictionary key
    nkeys = 0,
    -- token cache -> {key, version, gen, json}: the partition it holds
    installed = setmetatable({}, { __mode = "k" }),
    merges = 0,     -- writes that found another worker's version (for tests)
  }, Plugin)
end

--- The partition key of a request in this plugin's mode: the account's
-- home_account_id ("account") or the tenant id ("app"); nil when the
-- request lacks it (the access then uses the "default" partition).
-- @tparam table info `{home_account_id = …, tenant_id = …}`
-- @treturn string|nil
function Plugin:partition_key_for(info)
  if type(info) ~= "table" then return nil end
  local k = self.partition == "app" and info.tenant_id or info.home_account_id
  return type(k) == "string" and k ~= "" and k or nil
end

--- The dictionary key of a client's partition.
-- @tparam string client_id
-- @tparam[opt] string partition_key ("default" when nil)
-- @treturn string `<key_prefix>:<client_id>:<partition_key>`
function Plugin:key_for(client_id, partition_key)
  partition_key = partition_key or DEFAULT_PARTITION
  local by_client = self.keys[client_id]
  if not by_client then
    by_client = {}
    self.keys[client_id] = by_client
  end
  local key = by_client[partition_key]
  if not key then
    -- a web app sees many users: the memo of their keys is bounded
    if self.nkeys >= MAX_KEYS then
      by_client = {}
      self.keys, self.nkeys = { [client_id] = by_client }, 0
    end
    key = self.prefix .. ":" .. tostring(client_id) .. ":" .. partition_key
    by_client[partition_key] = key
    self.nkeys = self.nkeys + 1
  end
  return key
end

local function unavailable(key, why)
  error(errors.ClientAuthError("cache_unavailable",
    ("the shared dictionary token cache (key %s): %s"):format(key, tostring(why))), 0)
end

-- Makes the token cache hold this partition's content.
local function install(self, tc, key, version, text)
  local ok, err = tc.store:load(text)
  if not ok then
    local e = require("msal.cache").error_from_store(err)
    e.error_message = e.error_message .. " (shared dictionary key " .. key .. ")"
    error(e, 0)
  end
  local st = self.installed[tc]
  if not st then
    st = {}
    self.installed[tc] = st
  end
  st.key, st.version, st.json, st.gen = key, version, text, tc.store:generation()
end

--- Before the cache is used: loads the access's partition into the token
-- cache unless it holds that version already.
-- @tparam table ctx `{token_cache, partition_key?}`
function Plugin:before_cache_access(ctx)
  local tc = ctx.token_cache
  local key = self:key_for(tc.client_id, ctx.partition_key)
  local dict = self.dict
  local version = dict:get(key .. "#v") or 0
  local st = self.installed[tc]
  if st and st.key == key and st.version == version and st.gen == tc.store:generation() then return end
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
  if not st then return end -- before_cache_access failed: nothing was loaded
  local dict, key = self.dict, st.key
  local mine = tc.store:count() > 0 and tc.store:serialize() or ""
  local lock = write_lock(dict, key)
  local ok, err = pcall(function()
    local text = mine
    local now = dict:get(key .. "#v") or 0
    if now ~= st.version then
      self.merges = self.merges + 1
      text = merge.apply(dict:get(key) or "", merge.changes(st.json, mine))
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
      st.version, st.json, st.gen = version, text, tc.store:generation()
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

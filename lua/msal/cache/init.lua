--- The token cache: MSAL's unified cache (the format msal-node, msal-python
-- and the Azure CLI share) held by the C store, behind MSAL's plugin shape
-- (`before_cache_access(ctx)` / `after_cache_access(ctx)`) so that files,
-- Redis or anything else can persist it.
-- @module msal.cache
local core = require("msal.core")
local authority = require("msal.authority")
local errors = require("msal.errors")
local accounts = require("msal.cache.accounts")
local account_filter = require("msal.cache.account_filter")
local active_account = require("msal.cache.active_account")

local cache = {}

local TokenCache = {}
TokenCache.__index = TokenCache

--- Makes a token cache.
-- @tparam string client_id the application's: accounts' id_token_claims
--   come from its id tokens
-- @tparam[opt] table plugin an object with `before_cache_access` and
--   `after_cache_access` hooks, written either as methods, as MSAL's
--   ICachePlugin (`function plugin:before_cache_access(ctx)`: called with
--   the plugin, then ctx), or as plain functions of ctx alone
--   (`before_cache_access = function(ctx) … end`): a hook declaring exactly
--   one parameter and no `...` is called `hook(ctx)`, any other
--   `hook(plugin, ctx)`. ctx is `{token_cache, cache_has_changed,
--   will_write, partition_key}`
function cache.new(client_id, plugin)
  local store = core.store.new()
  store:set_aliases(authority.CLOUDS)
  local tc = setmetatable({ store = store, client_id = client_id, plugin = plugin, aliases = authority.CLOUDS,
    hit_states = setmetatable({}, { __mode = "k" }) }, TokenCache)
  tc.hit_state, tc.hit_store = { hits = {} }, store
  tc.hit_states[store] = tc.hit_state
  tc.account_mt = accounts.metatable(tc)
  tc.cloud_of = cache.cloud_index(authority.CLOUDS)
  -- whether two environments are one cloud (aliases)
  tc.same_cloud = function(a, b)
    a, b = a:lower(), b:lower()
    local cloud_of = tc.cloud_of
    return a == b or (cloud_of[a] ~= nil and cloud_of[a] == cloud_of[b])
  end
  return tc
end

--- Host -> its alias group (a number), for telling two environments of
-- one cloud apart from two clouds.
function cache.cloud_index(groups)
  local index = {}
  for i, g in ipairs(groups) do
    for _, h in ipairs(g) do index[h:lower()] = index[h:lower()] or i end
  end
  return index
end

--- Sets the environment aliases (cloud groups) of the cache's store, and
-- of every store `new_store` makes.
-- @tparam table groups as `store:set_aliases`
function TokenCache:set_aliases(groups)
  self.aliases = groups
  self.cloud_of = cache.cloud_index(groups)
  self.store:set_aliases(groups)
end

--- A new, empty store with this cache's aliases: a plugin that keeps one
-- store per partition (msal.cache.shared_dict) swaps them in as `tc.store`.
-- The cache's derived state (hit records, account snapshots) follows
-- whichever store is `tc.store`.
-- @treturn userdata the store (msal.core.store)
function TokenCache:new_store()
  local store = core.store.new()
  store:set_aliases(self.aliases)
  return store
end

--- Turns a store error table into the ClientAuthError users see: it names
-- the entry and the field, or the byte where the JSON broke.
local function cache_error(e)
  local msg
  if e.section and e.field then
    msg = ("%s entry %q: field %q %s"):format(e.section, e.key or "?", e.field, e.message)
  elseif e.section then
    msg = ("%s %s%s"):format(e.section, e.key and ("entry " .. ("%q"):format(e.key) .. " ") or "", e.message)
  else
    msg = ("invalid cache JSON at byte %d: %s"):format(e.offset or 0, e.message)
  end
  return errors.ClientAuthError("invalid_cache", "the token cache cannot be read: " .. msg)
end
cache.error_from_store = cache_error

--- Names the partition (account or tenant) the next access concerns, for
-- partitioned plugins (Redis): `{home_account_id, tenant_id}`.
-- @tparam table info `{home_account_id, tenant_id}`
-- @treturn table self
function TokenCache:for_partition(info)
  self.partition = info
  return self
end

-- Whether a hook is a plain function of ctx rather than a method: it
-- declares one parameter and no `...`. A method (`plugin:hook(ctx)`)
-- declares two; C functions, callable tables and varargs get the plugin too,
-- which is what they got before plain functions were accepted.
local function takes_ctx_only(hook)
  if type(hook) ~= "function" then return false end
  local info = debug.getinfo(hook, "u")
  return info.nparams == 1 and not info.isvararg
end

-- The plugin's hooks and how to call each, worked out again only when the
-- plugin or one of its hooks is replaced: every silent call goes through
-- access, debug.getinfo need not.
local function hooks_of(self, plugin)
  local h = self.hooks
  local before, after = plugin.before_cache_access, plugin.after_cache_access
  if not h or h.plugin ~= plugin or h.before ~= before or h.after ~= after then
    h = { plugin = plugin, before = before, after = after,
      before_plain = takes_ctx_only(before), after_plain = takes_ctx_only(after) }
    self.hooks = h
  end
  return h
end

--- Runs fn between the plugin's two hooks. The plugin may load the cache in
-- before_cache_access (deserialize) and persist it in after_cache_access.
-- ctx.partition_key is set when the access concerns one partition.
-- @tparam boolean will_write whether fn may change the cache
-- @tparam function fn
-- @tparam any ... fn's arguments
-- @treturn any what fn returns
function TokenCache:access(will_write, fn, ...)
  local plugin = self.plugin
  local info = self.partition
  self.partition = nil
  if not plugin then return fn(...) end
  local ctx = { token_cache = self, cache_has_changed = false, will_write = will_write }
  if info and info.partition_key then
    ctx.partition_key = info.partition_key
  elseif info and plugin.partition_key_for then
    ctx.partition_key = plugin:partition_key_for(info)
  end
  local h = hooks_of(self, plugin)
  if h.before_plain then h.before(ctx) else h.before(plugin, ctx) end
  local gen = self.store:generation()
  local ok, a, b = pcall(fn, ...)
  ctx.cache_has_changed = self.store:generation() ~= gen
  if h.after_plain then h.after(ctx) else h.after(plugin, ctx) end
  if not ok then error(a, 0) end
  return a, b
end

--- The cache as MSAL's unified JSON.
-- @treturn string
function TokenCache:serialize()
  return self.store:serialize()
end

--- Writes the serialized cache to a file atomically (temporary file, fsync,
-- rename), without making it a Lua string first.
-- @tparam string path
-- @tparam[opt=0600] integer mode
-- @treturn[1] boolean true
-- @treturn[2] nil
-- @treturn[2] string what failed
function TokenCache:write_file(path, mode)
  return self.store:write_file(path, mode)
end

--- Replaces the cache's content with a unified-cache JSON document. Fields
-- and sections this library does not know are kept for the next serialize.
-- A malformed document raises a ClientAuthError naming the entry and field,
-- and leaves the cache as it was.
-- @tparam string json
function TokenCache:deserialize(json)
  if type(json) ~= "string" then
    error(errors.ClientAuthError("invalid_cache", "the token cache must be a JSON string"), 2)
  end
  local ok, err = self.store:load(json)
  if not ok then error(cache_error(err), 2) end
end

--- Accounts are read-only snapshots; id_token_claims and tenant_profiles
-- are looked up when first read (msal.cache.accounts), so listing 10,000
-- accounts does not decode 10,000 id tokens. One metatable per cache
-- carries the way back to it.
-- @tparam table acct an account table
-- @treturn table acct
function TokenCache:own(acct)
  return setmetatable(acct, self.account_mt)
end

--- Whether acct is one of this cache's account snapshots.
-- @tparam table acct
-- @treturn boolean
function TokenCache:owns(acct)
  return getmetatable(acct) == self.account_mt
end

-- One account per user and cloud: a user's several Account entries (one
-- per tenant, as msal-python writes them) are one account, the home
-- tenant's entry standing for it, in the place of the user's first entry.
local function one_per_user(self, list)
  local first, out, cloud_of = {}, {}, self.cloud_of
  for i = 1, #list do
    local a = list[i]
    local hid = a.home_account_id
    local seen = first[hid]
    if seen then
      -- rare: compare clouds only for a repeated user
      local cloud = cloud_of[a.environment] or a.environment
      local at
      for _, j in ipairs(seen) do
        local b = out[j]
        if (cloud_of[b.environment] or b.environment) == cloud then at = j break end
      end
      if not at then
        out[#out + 1] = a
        seen[#seen + 1] = #out
      elseif a.tenant_id == accounts.home_tenant(hid) and out[at].tenant_id ~= a.tenant_id then
        out[at] = a
      end
    else
      out[#out + 1] = a
      first[hid] = { #out }
    end
  end
  return out
end

-- The account snapshots, built again only when Account entries change (20
-- ms at 10,000 accounts): a token written by a refresh does not count.
local function snapshots(self)
  local store = self.store
  local gen = store:generation("Account")
  if self.accounts_gen ~= gen or self.accounts_store ~= store then
    self.accounts_list, self.accounts_gen, self.accounts_store =
      one_per_user(self, store:accounts(self.account_mt)), gen, store
  end
  return self.accounts_list
end

-- Each call gets its own array of the same read-only snapshots.
local function all_accounts(self)
  local src, out = snapshots(self), {}
  for i = 1, #src do out[i] = src[i] end
  return out
end

--- Every account in the cache, one per user and cloud, in cache order (a
-- partitioned plugin that lists its partitions, Redis, loads them all for
-- an access that names none).
-- @treturn {table,...} AccountInfo tables: home_account_id, environment,
--   tenant_id, username, local_account_id, name, authority_type, and
--   id_token_claims and tenant_profiles on first read
function TokenCache:get_all_accounts()
  return self:access(false, all_accounts, self)
end

local function find_account(self, field, value)
  if type(value) ~= "string" then return nil end
  local list = snapshots(self)
  for i = 1, #list do
    local a = list[i]
    local v = a[field]
    if v and (v == value or (field == "username" and v:lower() == value:lower())) then
      return a
    end
  end
  return nil
end

--- The account with this home_account_id, or nil.
-- @tparam string id
-- @treturn table|nil the account
function TokenCache:get_account_by_home_id(id)
  if type(id) ~= "string" then return nil end
  -- a cache partitioned by account (Redis, a shared dictionary) finds it in
  -- the account's own partition
  return self:for_partition({ home_account_id = id }):access(false, function()
    local key = accounts.base_entry(self.store, self.store:find("Account", { home_account_id = id }), id)
    return key and self:own(self.store:account(key)) or nil
  end)
end

--- The accounts that pass an account filter (msal.cache.account_filter):
-- each the view of its first tenant that passes. A filter naming a
-- home_account_id reads that account's partition (Redis, a shared
-- dictionary). Raises ClientConfigurationError on a bad filter.
-- @tparam[opt] table filter
-- @tparam[opt] boolean first_only
-- @treturn table the accounts
function TokenCache:find_accounts(filter, first_only)
  local f, tenant_level = account_filter.check(filter == nil and {} or filter)
  if next(f) == nil then return self:get_all_accounts() end
  -- by home_account_id alone: the store's index, not a pass over accounts
  if first_only and f.home_account_id and next(f, next(f)) == nil then
    return { self:get_account_by_home_id(f.home_account_id) }
  end
  local same_cloud = self.same_cloud
  if f.home_account_id then self:for_partition({ home_account_id = f.home_account_id }) end
  return self:access(false, function()
    return account_filter.apply(snapshots(self), f, tenant_level, same_cloud, first_only)
  end)
end

--- The account with this local_account_id, or nil.
-- @tparam string id
-- @treturn table|nil the account
function TokenCache:get_account_by_local_id(id)
  return self:access(false, find_account, self, "local_account_id", id)
end

--- The account with this username (compared without case), or nil.
-- @tparam string name
-- @treturn table|nil the account
function TokenCache:get_account_by_username(name)
  return self:access(false, find_account, self, "username", name)
end

local function remove_account(self, acct)
  local store, n = self.store, 0
  local filter = { home_account_id = acct.home_account_id, environment = acct.environment }
  for _, section in ipairs({ "Account", "IdToken", "AccessToken", "RefreshToken" }) do
    for _, key in ipairs(store:find(section, filter)) do
      if store:remove(section, key) then n = n + 1 end
    end
  end
  -- an active account that is gone is no active account
  local was_active = active_account.forget(store, acct.home_account_id, self.client_id)
  return n, was_active
end

--- Removes an account and every token of it (in any alias environment),
-- and forgets it as any application's active account.
-- @tparam table acct the account
-- @treturn number how many entries were removed
-- @treturn boolean whether it was this application's active account
function TokenCache:remove_account(acct)
  if type(acct) ~= "table" or type(acct.home_account_id) ~= "string" or type(acct.environment) ~= "string" then
    error(errors.ClientConfigurationError("invalid_account", "remove_account needs an account from the cache"), 2)
  end
  return self:for_partition({ home_account_id = acct.home_account_id, tenant_id = acct.tenant_id })
    :access(true, remove_account, self, acct)
end

--- Removes every account and its tokens, in one cache access (one lock and
-- one write for a file cache, however many accounts); with a partitioned
-- plugin (Redis), one access per account's partition.
-- @treturn number how many entries were removed
function TokenCache:remove_all_accounts()
  if self.plugin and self.plugin.partition_key_for then
    local n = 0
    for _, acct in ipairs(self:get_all_accounts()) do n = n + self:remove_account(acct) end
    return n
  end
  return self:access(true, function()
    local n = 0
    for _, acct in ipairs(all_accounts(self)) do n = n + remove_account(self, acct) end
    return n
  end)
end

--- The application's active account (msal.cache.active_account), as the
-- tenant it was set in sees it; nil when none is set or it is not in the
-- cache any more.
-- @treturn table|nil the account
function TokenCache:get_active_account()
  return self:access(false, function()
    local f = active_account.filter(self.store, self.client_id)
    if not f then return nil end
    return account_filter.apply(snapshots(self), f, true, self.same_cloud, true)[1]
  end)
end

--- Sets (or, with nil, clears) the application's active account.
-- @tparam table|nil acct the account, nil to clear it
-- @treturn boolean whether that changed it
function TokenCache:set_active_account(acct)
  -- the store is read inside: a plugin may swap it in before_cache_access
  return self:access(true, function() return active_account.set(self.store, self.client_id, acct) end)
end

--- The silent flow's records of hits for one (normalised) scope list, by
-- home_account_id, and the store's generation now (records are kept per
-- store, see new_store). A load drops them all;
-- after a put or remove a record is checked against its home account's
-- generation (store:home_generation) before it is used again.
-- @tparam string scopes the normalised scope list
-- @treturn table the records
-- @treturn number the store's generation
function TokenCache:hits_for(scopes)
  local store = self.store
  local st = self.hit_state
  if self.hit_store ~= store then
    -- a plugin swapped in another partition's store: its own records (two
    -- stores' generations say nothing about each other). The states hold
    -- no reference to their store: LuaJIT's weak tables are no ephemerons.
    local states = self.hit_states
    st = states[store]
    if not st then
      st = { hits = {} }
      states[store] = st
    end
    self.hit_state, self.hit_store = st, store
  end
  local gen = store:generation()
  if gen ~= st.gen then
    local load = store:generation("load")
    if load ~= st.load then st.hits, st.load = {}, load end
    st.gen = gen
  end
  local hits = st.hits
  local h = hits[scopes]
  if not h then
    h = {}
    hits[scopes] = h
  end
  return h, gen
end

--- The account snapshot of (home account of acct, environment), as the
-- tenant realm sees it (msal.cache.accounts.view): acct itself when it is
-- this cache's snapshot of that, else one from the store (nil when the
-- store has no such account).
-- @tparam table acct an account
-- @tparam string env the environment
-- @tparam string realm the tenant
-- @treturn table|nil the account
function TokenCache:account_for(acct, env, realm)
  if self:owns(acct) and acct.tenant_id == realm and acct.environment == env then return acct end
  local store, hid = self.store, acct.home_account_id
  local key = accounts.base_entry(store, store:find("Account", { home_account_id = hid, environment = env }), hid)
  return key and self:account_at(key, realm) or nil
end

--- The account of an Account entry, as the tenant realm sees it.
-- @tparam string key
-- @tparam[opt] string realm
-- @treturn table|nil the account
function TokenCache:account_at(key, realm)
  local a = self.store:account(key)
  return a and accounts.view(self:own(a), realm) or nil
end

--- The raw id token of (home account, environment, client, realm), or nil.
-- @tparam string hid home_account_id
-- @tparam string env environment
-- @tparam string client_id
-- @tparam string realm tenant id
-- @treturn string|nil the id token
function TokenCache:id_token_for(hid, env, client_id, realm)
  return self.store:find_first("IdToken",
    { home_account_id = hid, environment = env, client_id = client_id, realm = realm }, "secret")
end

return cache

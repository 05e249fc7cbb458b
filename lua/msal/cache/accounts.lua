--- Accounts as msal-node 7 keeps them: one Account entry per user and
-- cloud (keyed by the home tenant), the home tenant's fields on top, and a
-- tenant profile (`tenantProfiles`, JSON strings) for every tenant the user
-- has signed in to — a guest tenant adds a profile and never replaces the
-- home account. What callers get are AccountInfo views: the home account,
-- or one tenant's view of it (that tenant's tenant_id, local_account_id,
-- name and id token claims), as msal-node's `updateAccountTenantProfileData`
-- builds them.
-- @module msal.cache.accounts
local cjson = require("msal.lazy").require("cjson")
local id_token = require("msal.id_token")

local accounts = {}

-- The order of a tenant_profiles map's tenants (maps have none).
local order_of = setmetatable({}, { __mode = "k" })

-- The home tenant a home_account_id names (`<uid>.<utid>`), or nil.
local function home_tenant(hid)
  return type(hid) == "string" and hid:match("^[^.]*%.([^.]*)") or nil
end
accounts.home_tenant = home_tenant

local function str(v)
  return type(v) == "string" and v or nil
end

local function lower(v)
  return type(v) == "string" and v:lower() or ""
end

-- The id token's tenant, as MSAL reads it (tid, else B2C's tfp or acr).
local function claims_tenant(claims)
  return str(claims.tid) or str(claims.tfp) or str(claims.acr)
end

--- The tenant profile of an id token, as msal-common's buildTenantProfile.
-- @treturn table `{tenant_id, local_account_id, name, username, login_hint,
--   upn, is_home_tenant}`
function accounts.profile_of_claims(hid, claims)
  local tid = claims_tenant(claims) or ""
  return {
    tenant_id = tid,
    local_account_id = str(claims.oid) or str(claims.sub) or "",
    name = str(claims.name),
    username = str(claims.preferred_username) or str(claims.upn) or "",
    login_hint = str(claims.login_hint),
    upn = str(claims.upn),
    is_home_tenant = tid ~= "" and tid == home_tenant(hid),
  }
end

-- A profile as msal-node serializes it: JSON.stringify's member order,
-- members it leaves undefined left out.
local function encode_profile(p)
  local out = { '{"tenantId":', cjson.encode(p.tenant_id), ',"localAccountId":', cjson.encode(p.local_account_id) }
  if p.name then out[#out + 1] = ',"name":' .. cjson.encode(p.name) end
  out[#out + 1] = ',"username":' .. cjson.encode(p.username or "")
  if p.login_hint then out[#out + 1] = ',"loginHint":' .. cjson.encode(p.login_hint) end
  out[#out + 1] = ',"isHomeTenant":' .. (p.is_home_tenant and "true" or "false")
  if p.upn then out[#out + 1] = ',"upn":' .. cjson.encode(p.upn) end
  out[#out + 1] = "}"
  return table.concat(out)
end
accounts.encode_profile = encode_profile

local function decode_profile(hid, s)
  local t = s
  if type(s) == "string" then
    local ok
    ok, t = pcall(cjson.decode, s)
    if not ok then return nil end
  end
  if type(t) ~= "table" or type(t.tenantId) ~= "string" then return nil end
  return {
    tenant_id = t.tenantId, local_account_id = str(t.localAccountId) or "", name = str(t.name),
    username = str(t.username) or "", login_hint = str(t.loginHint), upn = str(t.upn),
    -- msal-node's rule (store:account_tenants gives strings only)
    is_home_tenant = t.tenantId == home_tenant(hid),
  }
end

-- The profiles an Account entry lists (`profiles`: its tenantProfiles, as
-- strings or as store:account_tenants decodes them); an entry without any (msal-python writes none) stands for its
-- own tenant (`tenant_id`, its realm), as msal-node reads it.
local function entry_profiles(hid, profiles, realm, local_id)
  local list = {}
  if type(profiles) == "table" then
    for _, s in ipairs(profiles) do
      local p = decode_profile(hid, s)
      if p then list[#list + 1] = p end
    end
  end
  if #list == 0 and str(realm) and realm ~= "" and str(local_id) and local_id ~= "" then
    list[1] = { tenant_id = realm, local_account_id = local_id, username = "",
      is_home_tenant = realm == home_tenant(hid) }
  end
  return list
end

--- Of a user's Account entries (keys), the one that is the account: the
-- home tenant's (msal-python writes one per tenant), else the first.
-- @treturn string|nil key
function accounts.base_entry(store, keys, hid)
  if #keys == 1 then return keys[1] end
  local home = home_tenant(hid)
  for _, k in ipairs(keys) do
    local a = home and store:account(k)
    if a and a.tenant_id == home then return k end
  end
  return keys[1]
end

--- The tenant profiles of an account (all its Account entries in its
-- cloud), by tenant id, in the order they were first seen.
-- @treturn table `{[tenant_id] = profile}`
-- @treturn table the tenant ids in order
function accounts.profiles(store, hid, env)
  local map, order = {}, {}
  for _, e in ipairs(store:account_tenants(hid, env)) do
    for _, p in ipairs(entry_profiles(hid, e.profiles, e.tenant_id, e.local_account_id)) do
      if not map[p.tenant_id] then
        map[p.tenant_id] = p
        order[#order + 1] = p.tenant_id
      end
    end
  end
  return map, order
end

--- The metatable of a cache's account tables: `id_token_claims` (that
-- tenant's id token) and `tenant_profiles` are read from the store when
-- first asked for, so listing 10,000 accounts decodes nothing.
-- @tparam table tc the TokenCache
function accounts.metatable(tc)
  local claims = id_token.claims_on_read(function(acct)
    return tc:id_token_for(acct.home_account_id, acct.environment, tc.client_id, acct.tenant_id)
  end).__index
  return {
    __index = function(t, k)
      if k == "tenant_profiles" then
        local map, order = accounts.profiles(tc.store, rawget(t, "home_account_id"), rawget(t, "environment"))
        order_of[map] = order
        rawset(t, k, map)
        return map
      end
      return claims(t, k)
    end,
  }
end

--- An account's tenant profiles and the order they were added in.
-- @treturn table `{[tenant_id] = profile}`
-- @treturn table tenant ids
function accounts.profiles_order(acct)
  local map = acct.tenant_profiles
  local order = order_of[map]
  if not order then
    order = {}
    for t in pairs(map) do order[#order + 1] = t end
    table.sort(order)
  end
  return map, order
end

local VIEW_FIELDS = { "home_account_id", "environment", "tenant_id", "username", "local_account_id", "name",
  "authority_type" }
accounts.VIEW_FIELDS = VIEW_FIELDS -- docs_spec: LuaLS's msal.AccountInfo covers them

--- One tenant's view of an account: its tenant_id, local_account_id, name
-- and username from that tenant's profile (and, on reading, its id
-- token's claims). The account itself for its own tenant or a tenant it
-- has no profile of.
-- @tparam table base an account table of the cache (its metatable)
-- @tparam string tenant_id
function accounts.view(base, tenant_id)
  if tenant_id == nil or rawget(base, "tenant_id") == tenant_id then return base end
  local p = base.tenant_profiles[tenant_id]
  if not p then return base end
  local v = {}
  for _, f in ipairs(VIEW_FIELDS) do v[f] = rawget(base, f) end
  v.tenant_id, v.local_account_id = p.tenant_id, p.local_account_id
  if p.name then v.name = p.name end
  if p.username ~= "" then v.username = p.username end
  v.tenant_profiles = base.tenant_profiles
  return setmetatable(v, getmetatable(base))
end

--- Writes the account of a token response, as msal-node 7's
-- buildAccountToCache: a user's first response makes the Account entry
-- (realm: the home tenant client_info names, else the id token's); later
-- ones add their tenant's profile. A guest tenant's response changes
-- nothing else; the home tenant's also refreshes the account's fields.
-- @tparam table store
-- @tparam table keys the user's Account entries in this cloud (store:find)
-- @tparam table a `{home_account_id, environment, local_account_id,
--   username, authority_type, client_info}` from the response
-- @tparam table claims the id token's
-- @tparam[opt] table ci decoded client_info
-- @treturn string the Account entry's key
-- @treturn boolean whether the entry is new
function accounts.save(store, keys, a, claims, ci)
  local hid = a.home_account_id
  local profile = accounts.profile_of_claims(hid, claims)
  local key = accounts.base_entry(store, keys, hid)
  if not key then
    local realm = (ci and ci.utid) or claims_tenant(claims) or ""
    return store:put("Account", {
      home_account_id = hid, environment = a.environment, realm = realm, local_account_id = a.local_account_id,
      username = a.username, authority_type = a.authority_type, name = str(claims.name) or "",
      client_info = a.client_info, tenantProfiles = { encode_profile(profile) },
    }), true
  end
  local e = store:get("Account", key)
  -- other entries of the account's own tenant are copies of it (another
  -- library's key for the same account, as msal-python's differs from
  -- msal-node's): their profiles join the one kept and they go. The one
  -- kept is another library's when there is one (its environment is not
  -- ours): msal-python finds accounts under its own environment only.
  local copies, sources = {}, { e }
  for _, k in ipairs(keys) do
    local c = k ~= key and store:get("Account", k)
    if c and type(c.realm) == "string" and type(e.realm) == "string" and c.realm:lower() == e.realm:lower() then
      if lower(e.environment) == lower(a.environment) and lower(c.environment) ~= lower(a.environment) then
        copies[#copies + 1], sources[1] = key, c
        sources[#sources + 1] = e
        key, e = k, c
      else
        copies[#copies + 1] = k
        sources[#sources + 1] = c
      end
    end
  end
  -- the tenant this response is for: the id token's, else the account's
  local tenant = claims_tenant(claims) or e.realm
  local list, seen = {}, {}
  for _, src in ipairs(sources) do
    for _, p in ipairs(entry_profiles(hid, src.tenantProfiles, src.realm, src.local_account_id)) do
      if not seen[p.tenant_id] then
        seen[p.tenant_id] = true
        list[#list + 1] = encode_profile(p.tenant_id == tenant and profile or p)
      end
    end
  end
  if not seen[tenant] and tenant and tenant ~= "" then list[#list + 1] = encode_profile(profile) end
  local fields = { tenantProfiles = list }
  if tenant == e.realm then
    fields.local_account_id, fields.username = a.local_account_id, a.username
    fields.name, fields.client_info = str(claims.name) or "", a.client_info
  end
  for _, k in ipairs(copies) do store:remove("Account", k) end
  return store:put("Account", fields, key), false
end

return accounts

--- Account filters as msal-browser's AccountFilter, in snake_case: which
-- accounts get_account / get_all_accounts give. Keys about the user
-- (home_account_id, environment, authority_type) pick accounts; keys about
-- a tenant (tenant_id, local_account_id, username, name, login_hint, sid,
-- is_home_tenant) pick the tenant profile whose view is returned.
-- @module msal.cache.account_filter
local errors = require("msal.errors")
local accounts = require("msal.cache.accounts")

local account_filter = {}

-- Known keys and their Lua type; true: answered by the account's own
-- fields without reading tenant profiles or id tokens.
local KEYS = {
  home_account_id = "string", environment = "string", authority_type = "string",
  tenant_id = "string", local_account_id = "string", username = "string", name = "string",
  login_hint = "string", sid = "string", is_home_tenant = "boolean",
}
account_filter.KEYS = KEYS -- read by scripts/gen-types (LuaLS's msal.AccountFilter)
local ACCOUNT_LEVEL = { home_account_id = true, environment = true, authority_type = true }
-- Tenant-level keys an account's own fields can answer.
local OWN_FIELDS = { username = true, local_account_id = true, name = true }

local function bad(msg)
  error(errors.ClientConfigurationError("invalid_account_filter", msg), 0)
end

local function snake(name)
  return (name:gsub("(%l)(%u)", "%1_%2"):lower())
end

--- Checks a filter: a table of known keys with values of their type.
-- Raises ClientConfigurationError naming an unknown key (and, for MSAL.js's
-- camelCase spelling of a known one, its snake_case name).
-- @tparam table filter
-- @treturn table the filter, and whether it names a tenant-level key
function account_filter.check(filter)
  if type(filter) ~= "table" then bad("an account filter must be a table") end
  local tenant_level = false
  for k, v in pairs(filter) do
    if type(k) ~= "string" then bad("account filter keys must be strings") end
    local want = KEYS[k]
    if not want then
      local s = snake(k)
      if KEYS[s] then bad(("unknown account filter key '%s' (did you mean '%s'?)"):format(k, s)) end
      bad(("unknown account filter key '%s'"):format(k))
    end
    if type(v) ~= want then bad(("account filter '%s' must be a %s"):format(k, want)) end
    if not ACCOUNT_LEVEL[k] then tenant_level = true end
  end
  return filter, tenant_level
end

local EMPTY = {}

local function same_text(a, b)
  return type(a) == "string" and type(b) == "string" and a:lower() == b:lower()
end

local function has(list, v)
  if type(list) ~= "table" then return false end
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end

local function lower_is(a, vl)
  return type(a) == "string" and a:lower() == vl
end

-- Whether one tenant's view of an account passes the tenant-level keys:
-- the view's own fields first, then its tenant profile, then — only when
-- the profile is missing or bare (msal-python writes none), as profiles
-- are made from them — its id token's claims. sid is only in the id token.
-- lf holds the filter's username and login_hint lower-cased.
local function tenant_matches(f, lf, view)
  if f.tenant_id and view.tenant_id ~= f.tenant_id then return false end
  if f.is_home_tenant ~= nil and (view.tenant_id == accounts.home_tenant(view.home_account_id)) ~= f.is_home_tenant then
    return false
  end
  local p = view.tenant_profiles[view.tenant_id]
  local c = (f.sid or not p or p.username == "") and view.id_token_claims or EMPTY
  local v = f.local_account_id
  if v and view.local_account_id ~= v and c.oid ~= v and c.sub ~= v then return false end
  v = lf.username
  if v and not (lower_is(view.username, v) or (p and (lower_is(p.username, v) or lower_is(p.upn, v)))
      or lower_is(c.preferred_username, v) or lower_is(c.upn, v)) then
    return false
  end
  if f.name and view.name ~= f.name and c.name ~= f.name then return false end
  v = lf.login_hint
  if v and not (lower_is(view.username, v) or (p and (p.login_hint == f.login_hint or lower_is(p.username, v)
      or lower_is(p.upn, v))) or c.login_hint == f.login_hint or lower_is(c.preferred_username, v)
      or lower_is(c.upn, v) or has(c.emails, f.login_hint)) then
    return false
  end
  if f.sid and c.sid ~= f.sid then return false end
  return true
end

-- The first view of the account that passes: its own tenant's (the
-- account itself), then its other tenant profiles' in the order they were
-- added.
local function first_view(base, f, lf)
  local own = base.tenant_id
  if (f.tenant_id == nil or f.tenant_id == own) and tenant_matches(f, lf, base) then return base end
  if f.tenant_id == own then return nil end
  local map, order = accounts.profiles_order(base)
  for _, t in ipairs(order) do
    if t ~= own and (f.tenant_id == nil or f.tenant_id == t) and map[t] then
      local view = accounts.view(base, t)
      if tenant_matches(f, lf, view) then return view end
    end
  end
  return nil
end

local function account_passes(f, base, same_cloud)
  return (not f.home_account_id or base.home_account_id == f.home_account_id)
    and (not f.environment or same_cloud(base.environment, f.environment))
    and (not f.authority_type or same_text(base.authority_type, f.authority_type))
end

-- get_account's first pass: the first account whose own fields answer the
-- filter, with no tenant profile or id token read (a user looked up by
-- username among 10,000 costs one comparison each); nil when the filter
-- needs more or no account's own fields pass.
local function by_own_fields(list, f, same_cloud)
  for k in pairs(f) do
    if not (ACCOUNT_LEVEL[k] or OWN_FIELDS[k]) then return nil end
  end
  local u, ul = f.username, f.username and f.username:lower()
  for i = 1, #list do
    local a = list[i]
    if (not u or a.username == u or a.username:lower() == ul)
        and (not f.local_account_id or a.local_account_id == f.local_account_id)
        and (not f.name or a.name == f.name) and account_passes(f, a, same_cloud) then
      return a
    end
  end
  return nil
end

--- The views of accounts that pass the filter, in cache order (one per
-- account: the first of its tenants that passes); for the first only, an
-- account whose own (home) fields pass comes before one that passes only
-- in a guest tenant.
-- @tparam table list the cache's account snapshots
-- @tparam table f a checked filter
-- @tparam boolean tenant_level whether f names tenant-level keys
-- @tparam function same_cloud(env_a, env_b)
-- @tparam[opt] boolean first_only stop at the first
-- @treturn table the views
function account_filter.apply(list, f, tenant_level, same_cloud, first_only)
  local out = {}
  if first_only and tenant_level then
    local a = by_own_fields(list, f, same_cloud)
    if a then return { a } end
  end
  local lf = { username = f.username and f.username:lower(), login_hint = f.login_hint and f.login_hint:lower() }
  for i = 1, #list do
    local base = list[i]
    if account_passes(f, base, same_cloud) then
      local found = base
      if tenant_level then found = first_view(base, f, lf) end
      if found then
        out[#out + 1] = found
        if first_only then break end
      end
    end
  end
  return out
end

return account_filter

--- The active account, kept with the cache the way msal-browser keeps it:
-- the filters `{homeAccountId, localAccountId, tenantId}` of the account
-- under the name `msal.<client_id>.active-account-filters`. In the unified
-- cache document they are members of a top-level section of their own,
-- "ActiveAccount" (one member per application sharing the file):
--
--     "ActiveAccount": {"msal.<client_id>.active-account-filters":
--       {"homeAccountId": "…", "localAccountId": "…", "tenantId": "…"}}
--
-- msal-node and msal-python read only their five sections and keep others
-- when they write the file back, so they ignore it safely.
-- @module msal.cache.active_account
local cjson = require("msal.lazy").require("cjson.safe")

local active = {}

active.SECTION = "ActiveAccount"

local function name_of(client_id)
  return "msal." .. client_id .. ".active-account-filters"
end

-- The section as a table; an unreadable one (another writer's mistake)
-- counts as empty and is replaced at the next change.
local function read(store)
  local raw = store:section(active.SECTION)
  local doc = raw and cjson.decode(raw)
  return type(doc) == "table" and doc or {}
end

local FIELDS = { "homeAccountId", "localAccountId", "tenantId" }

-- msal-browser's member order for the filters; others' members as cjson
-- writes them; members sorted, so one state is one text.
local function write(store, doc)
  local names = {}
  for k in pairs(doc) do
    if type(k) == "string" then names[#names + 1] = k end
  end
  if #names == 0 then
    store:set_section(active.SECTION, nil)
    return
  end
  table.sort(names)
  local parts = {}
  for _, k in ipairs(names) do
    local v, text = doc[k], nil
    if type(v) == "table" and type(v.homeAccountId) == "string" then
      local members = {}
      for _, f in ipairs(FIELDS) do
        if type(v[f]) == "string" then members[#members + 1] = cjson.encode(f) .. ":" .. cjson.encode(v[f]) end
      end
      text = "{" .. table.concat(members, ",") .. "}"
    else
      text = cjson.encode(v) or "null"
    end
    parts[#parts + 1] = cjson.encode(k) .. ":" .. text
  end
  store:set_section(active.SECTION, "{" .. table.concat(parts, ",") .. "}")
end

--- The active account's filters for an application, as an account filter
-- (`{home_account_id, local_account_id, tenant_id}`), or nil.
function active.filter(store, client_id)
  local f = read(store)[name_of(client_id)]
  if type(f) ~= "table" or type(f.homeAccountId) ~= "string" then return nil end
  return {
    home_account_id = f.homeAccountId,
    local_account_id = type(f.localAccountId) == "string" and f.localAccountId or nil,
    tenant_id = type(f.tenantId) == "string" and f.tenantId or nil,
  }
end

--- Makes acct the application's active account (nil: none).
-- @treturn boolean whether that changed anything
function active.set(store, client_id, acct)
  local doc = read(store)
  local name = name_of(client_id)
  local old = doc[name]
  local new = acct and { homeAccountId = acct.home_account_id, localAccountId = acct.local_account_id,
    tenantId = acct.tenant_id } or nil
  if type(old) == "table" and new and old.homeAccountId == new.homeAccountId
      and old.localAccountId == new.localAccountId and old.tenantId == new.tenantId then
    return false
  end
  if old == nil and new == nil then return false end
  doc[name] = new
  write(store, doc)
  return true
end

--- Forgets the active account of every application whose active account
-- is this user (the account was removed from the cache).
-- @treturn boolean whether client_id's active account was that user
function active.forget(store, home_account_id, client_id)
  local raw = store:section(active.SECTION)
  if not raw then return false end
  local doc, hit, mine = read(store), false, false
  for k, v in pairs(doc) do
    if type(v) == "table" and v.homeAccountId == home_account_id then
      doc[k], hit = nil, true
      if k == name_of(client_id) then mine = true end
    end
  end
  if hit then write(store, doc) end
  return mine
end

return active

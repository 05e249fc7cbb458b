--- Merging one access's changes into a partition another process changed
-- meanwhile, entry by entry: what a shared cache (Redis, an nginx shared
-- dictionary) does when its write finds a version it did not load.
-- @module msal.cache.merge
local json = require("cjson").new() -- a private instance: its settings are ours alone

local merge = {}

-- The document as Lua (sections of entries by key), or nil when the text is
-- not a JSON object.
local function decode(text)
  if text == "" then return {} end
  local ok, doc = pcall(json.decode, text)
  if ok and type(doc) == "table" then return doc end
  return nil
end

local function same(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do
    if not same(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

--- What an access did, entry by entry.
-- @tparam string base the partition as the access loaded it
-- @tparam string mine the partition as the access left it
-- @treturn table `{ {section, key, entry | false}, … }` (false: removed)
function merge.changes(base, mine)
  local b, m = decode(base) or {}, assert(decode(mine), "the store serialized invalid JSON")
  local out = {}
  for section, entries in pairs(m) do
    if type(entries) == "table" then
      local old = type(b[section]) == "table" and b[section] or {}
      for k, e in pairs(entries) do
        if not same(old[k], e) then out[#out + 1] = { section, k, e } end
      end
    end
  end
  for section, entries in pairs(b) do
    if type(entries) == "table" then
      local now = type(m[section]) == "table" and m[section] or {}
      for k in pairs(entries) do
        if now[k] == nil then out[#out + 1] = { section, k, false } end
      end
    end
  end
  return out
end

--- Another process's version with an access's changes applied on top.
-- @tparam string current the partition as it is now
-- @tparam table delta from `changes`
-- @treturn string|nil the merged JSON; nil when current is not a JSON object
function merge.apply(current, delta)
  local doc = decode(current)
  if not doc then return nil end
  for i = 1, #delta do
    local section, k, e = delta[i][1], delta[i][2], delta[i][3]
    if type(doc[section]) ~= "table" then doc[section] = {} end
    doc[section][k] = e or nil
  end
  return json.encode(doc)
end

--- Several partitions as one document (what listing accounts across a
-- partitioned cache reads): every entry of every partition; texts that are
-- not JSON objects are skipped.
-- @tparam {string,...} texts
-- @treturn string the JSON ("" when there is nothing)
function merge.union(texts)
  local all, any = {}, false
  for i = 1, #texts do
    local doc = decode(texts[i])
    if doc then
      for section, entries in pairs(doc) do
        if type(entries) == "table" then
          local into = all[section]
          if type(into) ~= "table" then
            into = {}
            all[section] = into
          end
          for k, e in pairs(entries) do
            into[k] = e
            any = true
          end
        elseif all[section] == nil then
          all[section] = entries
        end
      end
    end
  end
  return any and json.encode(all) or ""
end

return merge

--- What partitioned caches (Redis, an nginx shared dictionary) share: which
-- partition an access concerns, and the key that partition is stored
-- under. Both are methods of such a plugin: `plugin.partition` ("account"
-- or "app"), `plugin.prefix`, and a bounded memo of keys (`plugin.keys`,
-- `plugin.nkeys`, `plugin.max_keys`).
-- @module msal.cache.partition
local partition = {}

local DEFAULT = "default"

--- The partition key of a request in the plugin's mode: the account's
-- home_account_id ("account") or the tenant id ("app"); nil when the
-- request lacks it (the access then uses the "default" partition).
-- @tparam table plugin
-- @tparam table info `{home_account_id = …, tenant_id = …}`
-- @treturn string|nil
function partition.partition_key_for(plugin, info)
  if type(info) ~= "table" then return nil end
  local k = plugin.partition == "app" and info.tenant_id or info.home_account_id
  return type(k) == "string" and k ~= "" and k or nil
end

--- The storage key of a client's partition, from the memo (no string
-- building per access; a web app sees many users, so the memo is bounded).
-- @tparam table plugin
-- @tparam string client_id
-- @tparam[opt] string partition_key ("default" when nil)
-- @treturn string `<prefix>:<client_id>:<partition_key>`, or what
--   `plugin:make_key(client_id, partition_key)` makes when the plugin has it
function partition.key_for(plugin, client_id, partition_key)
  partition_key = partition_key or DEFAULT
  local by_client = plugin.keys[client_id]
  if not by_client then
    by_client = {}
    plugin.keys[client_id] = by_client
  end
  local key = by_client[partition_key]
  if not key then
    if plugin.nkeys >= plugin.max_keys then -- bounded: start over
      by_client = {}
      plugin.keys, plugin.nkeys = { [client_id] = by_client }, 0
    end
    key = plugin.make_key and plugin:make_key(client_id, partition_key)
      or plugin.prefix .. ":" .. tostring(client_id) .. ":" .. partition_key
    by_client[partition_key] = key
    plugin.nkeys = plugin.nkeys + 1
  end
  return key
end

return partition

--- One token request across the processes that share a cache (nginx
-- workers, hosts sharing Redis, processes sharing a file), for the tokens
-- without an account: app tokens and managed-identity tokens. The cache
-- plugin's refresh lock (`plugin:lock_refresh(thumbprint, whose)`, the one
-- silent.refresh takes for refresh tokens) decides who fetches; the others
-- wait for it, look in the cache again and find its token. A lock not had
-- in time resolves no unlock, and the waiter fetches itself.
-- @module msal.cache.fetch_lock
local fetch_lock = {}

local function no_op() end

--- `fetch()` under the lock named by `thumbprint`, unless `again()` finds
-- the token once the lock is had. Without a plugin that locks, `fetch()`.
-- @tparam table app the application (its token cache's plugin)
-- @tparam string thumbprint what is fetched (hashed here: plugins use it in keys and file names)
-- @tparam table whose `{client_id, home_account_id, tenant_id}` for plugins that partition
-- @tparam function again the cached result now, or nil (may raise: then fetch)
-- @tparam function fetch a promise of the fetched result
-- @treturn promise of the result
function fetch_lock.fetch(app, thumbprint, whose, again, fetch)
  local plugin = app.token_cache.plugin
  if not (plugin and plugin.lock_refresh) then return fetch() end
  local key = require("msal.core").crypto.sha256_hex(thumbprint)
  return plugin:lock_refresh(key, whose):next(function(unlock)
    unlock = unlock or no_op
    local ok, hit = pcall(again)
    if ok and hit then
      unlock()
      return hit
    end
    local p = fetch()
    p:next(unlock, unlock)
    return p
  end)
end

return fetch_lock

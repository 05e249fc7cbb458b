-- A custom cache plugin: the token cache kept in an OpenResty-style shared
-- dictionary (`ngx.shared.tokens` in nginx; any object with get/set works,
-- here a plain table stands in so the example runs anywhere).
--
--   lua5.4 examples/shared_dict_plugin.lua
--
-- A plugin is any table with two functions, called around every cache use:
--   before_cache_access(self, ctx)  load what others wrote (ctx.token_cache:deserialize)
--   after_cache_access(self, ctx)   if ctx.cache_has_changed, store ctx.token_cache:serialize()
-- ctx also says ctx.will_write (the access may change the cache) and, for
-- partitioned stores, ctx.partition_key (when the plugin has a
-- partition_key_for(info) method).
local msal = require("msal")

-- Stand-in for ngx.shared.DICT: get(key) and set(key, value).
local function fake_shared_dict()
  local data = {}
  return {
    get = function(_, k) return data[k] end,
    set = function(_, k, v) data[k] = v; return true end,
  }
end

local SharedDictPlugin = {}
SharedDictPlugin.__index = SharedDictPlugin

function SharedDictPlugin.new(dict, key)
  return setmetatable({ dict = dict, key = key, seen = nil }, SharedDictPlugin)
end

function SharedDictPlugin:before_cache_access(ctx)
  local text = self.dict:get(self.key)
  -- only re-parse when another worker stored a different version
  if text and text ~= self.seen then
    ctx.token_cache:deserialize(text)
    self.seen = text
  end
end

function SharedDictPlugin:after_cache_access(ctx)
  if ctx.cache_has_changed then
    local text = ctx.token_cache:serialize()
    self.dict:set(self.key, text)
    self.seen = text
  end
end

-- Two "workers" sharing one dictionary: what one stores, the other serves.
local dict = fake_shared_dict()
local function worker()
  return msal.PublicClientApplication.new({
    auth = { client_id = "11111111-2222-3333-4444-555555555555",
      authority = "https://login.microsoftonline.com/common" },
    cache = SharedDictPlugin.new(dict, "msal-token-cache"),
  })
end

local one, two = worker(), worker()
local f = assert(io.open("examples/cache.json", "rb"))
local cache_json = f:read("*a")
f:close()
-- worker one signs the user in (here: loads the example cache) and stores it
one:get_token_cache():deserialize(cache_json)
dict:set("msal-token-cache", one:get_token_cache():serialize())

local account = two:get_all_accounts()[1]
local result = assert(two:acquire_token_silent({ scopes = { "User.Read" }, account = account }):await())
print(("worker two served a token for %s from the shared dictionary (from_cache: %s)")
  :format(result.account.username, tostring(result.from_cache)))

return SharedDictPlugin

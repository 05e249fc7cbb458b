--- Where an interactive flow keeps its request context (PKCE verifier,
-- nonce, scopes, claims, authority) between sending the user away and the
-- redirect coming back. The default lives in memory and expires entries; a
-- web app behind several workers plugs in a shared one with the same two
-- methods: `put(state, ctx, ttl_s)` and `take(state) -> ctx|nil` (take
-- removes, so a state is redeemed at most once).
-- @module msal.state_store
local state_store = {}

local Memory = {}
Memory.__index = Memory

--- An in-memory store.
-- @tparam[opt] function clock seconds (os.time by default)
function state_store.memory(clock)
  return setmetatable({ items = {}, n = 0, clock = clock or os.time }, Memory)
end

function Memory:put(state, ctx, ttl_s)
  local now = self.clock()
  -- drop expired entries now and then, so abandoned sign-ins do not pile up
  self.n = self.n + 1
  if self.n % 64 == 0 then
    for k, v in pairs(self.items) do
      if v.expires < now then self.items[k] = nil end
    end
  end
  self.items[state] = { ctx = ctx, expires = now + (ttl_s or 600) }
end

function Memory:take(state)
  local item = self.items[state]
  self.items[state] = nil
  if item and item.expires >= self.clock() then return item.ctx end
  return nil
end

local Shared = {}
Shared.__index = Shared

--- A store in a dictionary every worker sees: an nginx `lua_shared_dict`
-- (by name or as `ngx.shared.NAME`), or any object with `get`, `set`,
-- `add` and `delete`. Contexts are kept as JSON; a state is taken once even
-- when two workers try at the same moment.
-- @param dict the dictionary or its lua_shared_dict name
-- @tparam[opt="msal:state:"] string prefix of its keys
function state_store.shared(dict, prefix)
  if type(dict) == "string" then
    dict = ngx and ngx.shared and ngx.shared[dict] -- luacheck: globals ngx
    if not dict then error("state_store.shared: there is no lua_shared_dict of that name", 2) end
  end
  return setmetatable({ dict = dict, prefix = prefix or "msal:state:" }, Shared)
end

function Shared:put(state, ctx, ttl_s)
  local ok, err = self.dict:set(self.prefix .. state, require("cjson").encode(ctx), ttl_s or 600)
  if not ok then error("state_store.shared: cannot store the sign-in's state: " .. tostring(err), 0) end
end

function Shared:take(state)
  local key = self.prefix .. state
  -- add succeeds for one taker only: a state is redeemed at most once
  if not self.dict:add(key .. "#taken", true, 600) then return nil end
  local text = self.dict:get(key)
  self.dict:delete(key)
  local ok, ctx = pcall(require("cjson").decode, text or "")
  return ok and type(ctx) == "table" and ctx or nil
end

return state_store

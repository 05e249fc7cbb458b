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

return state_store

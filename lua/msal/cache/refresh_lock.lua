--- Waiting for another process's refresh: the polling that the file and
-- Redis caches' `lock_refresh` share. A lock is tried without blocking and
-- again on the loop's timers (the host's, under OpenResty or Neovim), so the
-- process keeps running while it waits; the wait is bounded, and a waiter
-- that runs out refreshes by itself rather than hang.
-- @module msal.cache.refresh_lock
local Promise = require("msal.promise")
local loop = require("msal.loop")

local refresh_lock = {}

local TRY_FIRST_MS, TRY_MOST_MS = 5, 100

--- Tries `take()` until it has the lock or wait_ms have passed.
-- @tparam function take returns the unlock function when it took the lock,
--   false when another holds it (try again), nil when trying is pointless
--   (the lock cannot be made, the server does not answer)
-- @tparam number wait_ms how long to keep trying; 0: not at all
-- @treturn promise of the unlock function, or of nil: then the caller
--   refreshes by itself
function refresh_lock.poll(take, wait_ms)
  if wait_ms == 0 then return Promise.resolve(nil) end
  local deadline = loop.now_ms() + wait_ms
  return Promise.new(function(resolve)
    local delay = TRY_FIRST_MS
    local function try()
      local unlock = take()
      if unlock then return resolve(unlock) end
      local left = deadline - loop.now_ms()
      if unlock == nil or left <= 0 then return resolve(nil) end
      loop.set_timeout(math.min(delay, left), try)
      delay = math.min(delay * 2, TRY_MOST_MS)
    end
    try()
  end)
end

return refresh_lock

--- MSAL's retry policies for managed identity requests. IMDS: on 404, 408,
-- 410, 429 and 5xx, three retries with exponential backoff (1 s, 2 s, 4 s),
-- or seven 10 s apart when the first answer was 410 (IMDS is being
-- updated). The other sources: three retries on 404, 408, 429, 500, 503
-- and 504, one second apart or after Retry-After.
-- @module msal.managed_identity.retry
local Promise = require("msal.promise")
local loop = require("msal.loop")
local errors = require("msal.errors")
local network = require("msal.network")

local retry = {}

--- The delays, in milliseconds. Specs shorten them (as msal-node's tests
-- override its policies' static getters); nothing else should.
retry.delays = { imds_min = 1000, imds_max = 4000, imds_delta = 2000, imds_gone = 10000, default = 1000 }

local IMDS_4XX = { [404] = true, [408] = true, [410] = true, [429] = true }
local DEFAULT_STATUS = { [404] = true, [408] = true, [429] = true, [500] = true, [503] = true, [504] = true }

-- IMDS: whether to retry after `status` (the n-th retry would be next, from
-- 0), and after how long; `first` is the first answer's status.
local function imds_policy(status, n, first)
  local max = first == 410 and 7 or 3
  if n >= max or not (IMDS_4XX[status] or (status >= 500 and status <= 599)) then return nil end
  local d = retry.delays
  if status == 410 then return d.imds_gone end
  if n == 0 then return d.imds_min end
  return math.min(math.floor(2 ^ (n - 1)) * d.imds_delta, d.imds_max)
end

-- The other sources: Retry-After in seconds (at least the default delay,
-- at most network.MAX_RETRY_AFTER_S).
local function default_policy(status, n, _, res)
  if n >= 3 or not DEFAULT_STATUS[status] then return nil end
  local d = retry.delays.default
  local ra = tonumber(res.headers and res.headers["retry-after"])
  if ra and ra > 0 then d = math.max(d, math.min(ra, network.MAX_RETRY_AFTER_S) * 1000) end
  return d
end

local function send_once(transport, req, source)
  return Promise.new(function(resolve, reject)
    transport:request(req, function(err, res)
      if not err then return resolve(res) end
      local kind = type(err) == "table" and err.kind or "io"
      reject(errors.ClientAuthError(kind == "timeout" and "request_timeout" or "network_error",
        source .. ": the request to the managed identity endpoint failed (" .. kind .. ")",
        { kind = kind, source = source }))
    end)
  end)
end

local function sleep(ms)
  return Promise.new(function(resolve) loop.set_timeout(ms, resolve) end)
end

--- Sends a request with the source's retry policy.
-- @tparam table transport
-- @tparam table req `{method, url, headers, body, timeout_ms}`
-- @tparam table src the source (`name`, `imds`)
-- @tparam boolean disabled no retries (`system.disable_internal_retries`)
-- @tparam table log the app's logger
-- @treturn promise of the last response
function retry.send(transport, req, src, disabled, log)
  local policy = src.imds and imds_policy or default_policy
  return Promise.async(function()
    local res = errors.try(send_once(transport, req, src.name):await())
    local first, n = res.status, 0
    while not disabled do
      local ms = policy(res.status, n, first, res)
      if not ms then break end
      log:verbose(("%s answered HTTP %d: retry %d in %d ms"):format(src.name, res.status, n + 1, ms))
      sleep(ms):await()
      res = errors.try(send_once(transport, req, src.name):await())
      n = n + 1
    end
    return res
  end)
end

return retry

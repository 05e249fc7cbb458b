--- What every transport (curl's, the cosocket one) has the same way: the
-- promise face of `request(req, done)`, and one default instance.
-- @module msal.transport.common
local Promise = require("msal.promise")

local common = {}

--- Start a request and get a promise for its response (a transport's
-- `send` method).
-- @tparam table transport any transport with `request(req, done)`
-- @tparam table req as for `request`
-- @treturn Promise fulfilled with `res` (any HTTP status), rejected with
-- the err table
-- @treturn table the request's handle (`close()` cancels)
function common.send(transport, req)
  local handle
  local p = Promise.new(function(resolve, reject)
    handle = transport:request(req, function(err, res)
      if err then reject(err) else resolve(res) end
    end)
  end)
  return p, handle
end

--- A transport module's `default()`: the instance with default options,
-- made on first use (one per process, or per nginx worker).
-- @tparam table module the transport module (its `new`)
-- @treturn function default
function common.default_of(module)
  local shared
  return function()
    if not shared then shared = module.new() end
    return shared
  end
end

return common

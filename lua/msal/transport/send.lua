--- `transport:send(req)`, the promise face of every transport's
-- `request(req, done)`: one definition for curl's and the cosocket one.
-- @module msal.transport.send
local Promise = require("msal.promise")

--- Start a request and get a promise for its response.
-- @tparam table transport any transport with `request(req, done)`
-- @tparam table req as for `request`
-- @treturn Promise fulfilled with `res` (any HTTP status), rejected with
-- the err table
-- @treturn table the request's handle (`close()` cancels)
return function(transport, req)
  local handle
  local p = Promise.new(function(resolve, reject)
    handle = transport:request(req, function(err, res)
      if err then reject(err) else resolve(res) end
    end)
  end)
  return p, handle
end

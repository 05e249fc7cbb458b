-- The nginx side of spec/hosts/openresty_redis_spec.lua: msal_host_app's
-- handlers over the Redis cache, with the blocking C client fenced off so
-- that a request that reached it fails (and is counted), and the cosocket
-- client's connection counts on display.
local cjson = require("cjson.safe")
local core = require("msal.core")

local M = {}

--- init_worker: from here on, msal.core.redis.connect counts its calls in
-- the `tokens` dictionary and raises (the cache must use cosockets in
-- request phases); then msal_host_app.init with the Redis cache `cache`.
function M.init(authority, client_id, cache)
  core.redis.connect = function()
    ngx.shared.tokens:incr("c_connects", 1, 0)
    error("msal.core.redis.connect called inside nginx in phase " .. ngx.get_phase())
  end
  local cosock = require("msal.cache.redis_cosocket")
  local connect = cosock.connect
  cosock.connect = function(o)
    local c, err, code = connect(o)
    if c then ngx.shared.tokens:incr(c.reused and "cosocket_reused" or "cosocket_fresh", 1, 0) end
    return c, err, code
  end
  M.cache = cache
  require("msal_host_app").init(authority, client_id, { cache = cache })
end

--- GET /stats: the cosocket connections the cache opened (fresh) and took
-- from the keepalive pool (reused), and the C client's calls, in all
-- workers.
function M.stats()
  local d = ngx.shared.tokens
  ngx.header["content-type"] = "application/json"
  ngx.say(cjson.encode({ fresh = d:get("cosocket_fresh") or 0, reused = d:get("cosocket_reused") or 0,
    c_connects = d:get("c_connects") or 0 }))
end

--- GET /probe: one cosocket connection to the cache's server (the URL
-- M.init was given), PING, and what came of it: `{pong, message, code,
-- reused}`.
function M.probe()
  local o = assert(require("msal.cache.redis").parse_url(M.cache.url))
  if M.cache.tls then o.tls = M.cache.tls end
  o.timeout_ms = 2000
  local c, msg, code = require("msal.cache.redis_cosocket").connect(o)
  local doc = { message = msg, code = code }
  if c then
    doc.reused = c.reused
    doc.pong, doc.message, doc.code = c:command("PING")
    c:close()
  end
  ngx.header["content-type"] = "application/json"
  ngx.say(cjson.encode(doc))
end

return M

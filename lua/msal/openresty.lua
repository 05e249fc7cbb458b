--- The OpenResty host: lua-msal inside nginx workers without ever blocking
-- one.
--
-- C functions cannot yield to nginx, so nothing here waits in C: HTTP goes
-- through cosockets (`msal.transport.openresty`), timers are nginx timers,
-- and `await` in a handler suspends only that request's light thread (on an
-- `ngx.semaphore`) while the worker serves others. The C core still does
-- the non-blocking work: the token store, crypto, parsing.
--
--     init_worker_by_lua_block { require("msal.openresty").setup() }
--     content_by_lua_block {
--       local app = ...  -- msal.openresty.PublicClientApplication.new{...}, once per worker
--       local result, err = app:acquire_token_silent(req):await()
--     }
--
-- Tokens are shared by all workers through `shared_dict_cache` (a
-- `lua_shared_dict`), which also makes N requests on any workers that need
-- one refresh send one token request; or by several nginx hosts through the
-- Redis cache (`cache = {location = "redis", url = …}` or `redis_cache`),
-- which uses cosockets in request phases.
-- @module msal.openresty
local loop = require("msal.loop")
local errors = require("msal.errors")
local config = require("msal.config")

local M = {}

-- Phases where a light thread may wait (cosockets, ngx.sleep, semaphores).
local YIELDABLE = {
  rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true, preread = true,
}

-- How long one semaphore wait lasts before await looks again; a promise
-- settles the semaphore itself, so this only bounds a missed post.
local WAIT_SLICE_S = 1

local function phase_error(what, phase)
  return errors.ClientConfigurationError("unsupported_phase",
    ("%s cannot wait in nginx's %s phase (no cosockets or light threads there); acquire tokens in "
      .. "rewrite_by_lua, access_by_lua, content_by_lua or a timer"):format(what, phase))
end

-- The callback that wakes a waiting request. Made here, not in wait: a
-- closure whose upvalue is a local of a request frame that nginx aborted
-- (client gone, ngx.exit elsewhere) reads it as nil when it finally runs;
-- this one's upvalue was closed when poster returned.
local function poster(sema)
  return function() sema:post(1) end
end

-- await outside an msal.async coroutine: the request's light thread waits
-- on a semaphore the promise posts, after running the jobs queued so far.
local function wait(p)
  local phase = ngx.get_phase()
  if not YIELDABLE[phase] then error(phase_error("await", phase), 0) end
  local sema = require("ngx.semaphore").new()
  local post = poster(sema)
  p:next(post, post)
  while p:state() == "pending" do
    loop.step(0)
    if p:state() ~= "pending" then return end
    sema:wait(WAIT_SLICE_S)
  end
end

-- Why timers and drains run in the current request when they can: an
-- msal.async coroutine (a refresh, a device-code poll) may be resumed only
-- from the request that created it (lua-nginx-module: "no co ctx found"),
-- and a promise's next step runs wherever its timer fires. So a timer is a
-- light thread of the request that set it, sleeping; only where a request
-- cannot have one (init_worker, header/body filters, log) is it an nginx
-- timer. A light thread also keeps its request open until it ran.

local Timer = {}
Timer.__index = Timer

--- Cancels the timer: it does not fire, and a sleeping light thread ends at
-- its next slice rather than keep its request open.
function Timer:close()
  self.closed = true
end

-- A cancelled timer's thread wakes this often to end early.
local SLEEP_SLICE_S = 0.1

local function fire(t)
  if t.closed then return end
  t.closed = true
  t.fn()
  loop.step(0)
end

local function sleep_then_fire(t, ms)
  local deadline = ngx.now() + ms / 1000
  while not t.closed do
    local left = deadline - ngx.now()
    if left <= 0 then break end
    -- ngx.sleep(0) warns on Debian's nginx: never sleep less than 1 ms
    ngx.sleep(math.max(0.001, math.min(left, SLEEP_SLICE_S)))
  end
  fire(t)
end

local function timer_fired(premature, t)
  if not premature then fire(t) end
end

-- Runs fn(a, b) in a light thread of this request when it can have one,
-- else in an nginx timer after `delay_s`.
local function later(thread_fn, timer_fn, a, b, delay_s)
  if YIELDABLE[ngx.get_phase()] then
    local ok, err = pcall(ngx.thread.spawn, thread_fn, a, b)
    if ok then return true end
    ngx.log(ngx.INFO, "msal: no light thread here (", tostring(err), "), an nginx timer instead")
  end
  return ngx.timer.at(delay_s, timer_fn, a, b)
end

-- The loop's timers: a Retry-After wait or a device-code poll never blocks
-- the worker.
local function set_timeout(ms, fn)
  local t = setmetatable({ fn = fn, closed = false }, Timer)
  local ok, err = later(sleep_then_fire, timer_fired, t, ms, ms / 1000)
  if not ok then
    error(errors.ClientAuthError("timer_failed", "nginx could not start a timer: " .. tostring(err)), 0)
  end
  return t
end

-- Jobs queued outside any await (promise style in a handler) still run,
-- in the request that queued them when it can: one drain per request (the
-- flag lives in ngx.ctx), or one nginx timer elsewhere.
local function drain_thread()
  ngx.sleep(0.001)
  ngx.ctx.msal_drain = nil
  loop.step(0)
end

local function drain_timer(premature)
  if not premature then loop.step(0) end
end

local function wake()
  if YIELDABLE[ngx.get_phase()] then
    local ctx = ngx.ctx
    if ctx.msal_drain then return end
    ctx.msal_drain = true
  end
  pcall(later, drain_thread, drain_timer, nil, nil, 0)
end

local installed = false

--- Makes msal.loop run on nginx: await suspends the request's light thread,
-- timers are nginx timers. Call it once per worker (init_worker_by_lua);
-- the constructors here call it too, so forgetting it is harmless.
-- @raise outside nginx (no `ngx`)
function M.setup()
  if installed then return end
  if type(ngx) ~= "table" or not ngx.timer then
    error(errors.ClientConfigurationError("not_openresty", "msal.openresty runs inside nginx with the Lua module"), 2)
  end
  loop.set_host({ set_timeout = set_timeout, wait = wait, wake = wake })
  installed = true
end

--- A cosocket transport (`msal.transport.openresty`): HTTP/1.1 with
-- keep-alive through the cosocket pool, TLS verified against nginx's
-- `lua_ssl_trusted_certificate`.
-- @tparam[opt] table opts as `msal.transport.openresty.new`'s
-- @treturn table transport
function M.transport(opts)
  return require("msal.transport.openresty").new(opts)
end

--- The token cache in a `lua_shared_dict`, shared by every worker,
-- partitioned per account, with the cross-worker refresh lock
-- (`msal.cache.shared_dict`).
-- @tparam string dict_name the `lua_shared_dict`'s name
-- @tparam[opt] table opts `{lock_dict = name, lock_timeout = s, lock_ttl = s,
--   partition = "account" | "app", key_prefix = "msal"}`
-- @treturn table the cache plugin, for `cache = …`
function M.shared_dict_cache(dict_name, opts)
  return require("msal.cache.shared_dict").new(dict_name, opts)
end

--- The Redis token cache (`msal.cache.redis`), as `cache = {location =
-- "redis", …}` makes it: inside nginx, in phases where cosockets work
-- (rewrite, access, content, timers), it talks to Redis over cosockets, one
-- connection per cache access taken from and given back to nginx's
-- keepalive pool, never the blocking C client; the refresh lock (`SET NX
-- PX`, compare-and-delete) and Redis Cluster redirections work as outside
-- nginx, so N requests on any workers (or any hosts) that need one refresh
-- send one token request. Over TLS (`rediss://`) the server's certificate
-- is verified against nginx's `lua_ssl_trusted_certificate`
-- (lua-nginx-module 0.10.23 takes no CA per socket: `tls.ca_file` and
-- `ca_path` do not apply), for a host name only: with an IP address in the
-- URL give the certificate's name as `tls.server_name`. `tls.cert_file` and
-- `key_file` (mTLS) are shown with lua-resty-core's `setclientcert`.
-- @tparam table opts as `msal.cache.redis.new`'s (`url`, `partition`,
--   `local_ttl_ms`, `timeout_ms`, `refresh_lock_wait_ms`, `tls`, …)
-- @treturn table the cache plugin, for `cache = …`
function M.redis_cache(opts)
  return require("msal.cache.redis").new(opts)
end

local DEFAULTS = {
  -- one cosocket transport per worker (cosockets themselves are per request)
  transport = function() return require("msal.transport.openresty").default() end,
}

--- msal.PublicClientApplication.new with the cosocket transport (one per
-- worker) as the default, after `setup()`. Make the app once per worker
-- (at module level or in init_worker), not per request.
-- @tparam table cfg as msal.PublicClientApplication.new's
-- @treturn table the application
-- @function PublicClientApplication.new
M.PublicClientApplication = config.host_application(M.setup, DEFAULTS)

--- msal.ConfidentialClientApplication.new with the cosocket transport as
-- the default, after `setup()`: web apps that redeem codes with their
-- secret or certificate, APIs calling others on behalf of a user, and
-- daemons. With `shared_dict_cache` or `redis_cache`, workers (and hosts)
-- that need the same app token send one request.
-- @tparam table cfg as msal.ConfidentialClientApplication.new's
-- @treturn table the application
-- @function ConfidentialClientApplication.new
M.ConfidentialClientApplication = config.host_application(M.setup, DEFAULTS, "ConfidentialClientApplication")

--- msal.ManagedIdentityApplication.new with the cosocket transport as the
-- default, after `setup()`. nginx hides the environment from workers unless
-- `env` lists each variable; `system.env` passes them instead.
-- @tparam[opt] table cfg as msal.ManagedIdentityApplication.new's
-- @treturn table the application
-- @function ManagedIdentityApplication.new
M.ManagedIdentityApplication = {
  new = function(cfg)
    M.setup()
    return require("msal").ManagedIdentityApplication.new(config.with_system_defaults(cfg or {}, DEFAULTS))
  end,
}

local jwt_host = require("msal.jwt").for_host(DEFAULTS)

--- msal.jwt.verify with the cosocket transport as the default, after
-- `setup()`: validates a request's bearer token in `access_by_lua` without
-- blocking the worker (keys are fetched once per worker, then verified in C).
-- @tparam string token
-- @tparam table opts as msal.jwt.verifier's; pass the same table every time
-- @treturn promise of the claims
-- @function jwt.verify

--- msal.jwt.verifier with the cosocket transport as the default, after
-- `setup()`: for a handler that keeps its verifier itself.
-- @tparam table opts as msal.jwt.verifier's
-- @treturn table the verifier, with `verify(token)`
-- @raise ClientConfigurationError for bad options
-- @function jwt.verifier
M.jwt = {
  verify = function(token, opts)
    M.setup()
    return jwt_host.verify(token, opts)
  end,
  verifier = function(opts)
    M.setup()
    return jwt_host.verifier(opts)
  end,
}

return M

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
-- one refresh send one token request.
-- @module msal.openresty
local loop = require("msal.loop")
local errors = require("msal.errors")
local msal = require("msal")

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

-- await outside an msal.async coroutine: the request's light thread waits
-- on a semaphore the promise posts, after running the jobs queued so far.
local function wait(p)
  local phase = ngx.get_phase()
  if not YIELDABLE[phase] then error(phase_error("await", phase), 0) end
  local sema = require("ngx.semaphore").new()
  local function post() sema:post(1) end
  p:next(post, post)
  while p:state() == "pending" do
    loop.step(0)
    if p:state() ~= "pending" then return end
    sema:wait(WAIT_SLICE_S)
  end
end

local Timer = {}
Timer.__index = Timer

--- Cancels the timer (nginx timers cannot be cancelled: it fires and does
-- nothing).
function Timer:close()
  self.closed = true
end

local function fire(premature, t)
  if premature or t.closed then return end
  t.closed = true
  t.fn()
  loop.step(0)
end

-- The loop's timers on nginx's: a Retry-After wait or a device-code poll
-- never blocks the worker.
local function set_timeout(ms, fn)
  local t = setmetatable({ fn = fn, closed = false }, Timer)
  local ok, err = ngx.timer.at(ms / 1000, fire, t)
  if not ok then
    error(errors.ClientAuthError("timer_failed", "nginx could not start a timer: " .. tostring(err)), 0)
  end
  return t
end

-- Jobs queued outside any await (promise style in a handler) still run:
-- one 0-second timer drains the queue, however many jobs were queued.
local drain_armed = false
local function drain(premature)
  drain_armed = false
  if not premature then loop.step(0) end
end

local function wake()
  if drain_armed then return end
  local ok, armed = pcall(ngx.timer.at, 0, drain)
  drain_armed = ok and armed and true or false
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

local default_transport

local function with_defaults(cfg)
  local c, system = {}, {}
  for k, v in pairs(cfg) do c[k] = v end
  for k, v in pairs(type(cfg.system) == "table" and cfg.system or {}) do system[k] = v end
  if system.transport == nil then
    default_transport = default_transport or M.transport()
    system.transport = default_transport
  end
  c.system = system
  return c
end

M.PublicClientApplication = {}

--- msal.PublicClientApplication.new with the cosocket transport (one per
-- worker) as the default, after `setup()`. Make the app once per worker
-- (at module level or in init_worker), not per request.
-- @tparam table cfg as msal.PublicClientApplication.new's
-- @treturn table the application
function M.PublicClientApplication.new(cfg)
  M.setup()
  if type(cfg) ~= "table" then return msal.PublicClientApplication.new(cfg) end
  return msal.PublicClientApplication.new(with_defaults(cfg))
end

return M

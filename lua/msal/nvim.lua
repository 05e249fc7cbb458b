--- The Neovim host (0.7.2 and newer, LuaJIT): lua-msal inside the editor
-- without ever freezing it.
--
-- Neovim's main loop is libuv (`vim.loop`), and a Lua call that waits in C
-- stops the whole editor. So the library's loop does not run itself here:
-- its one descriptor (`msal.loop.pollfd()`, every curl and loopback socket
-- behind it) is watched by a libuv poll, and one libuv timer fires when
-- curl's timers are due; each calls `loop.step(0)`, which never blocks.
-- Promise callbacks and library timers arrive through `vim.schedule`, where
-- the whole `vim.api` may be used. `await` yields the coroutine it is
-- called in; at the top of the main loop it is an error, since waiting
-- there is exactly the freeze this module exists to avoid.
--
--     local mn = require("msal.nvim")
--     local app = mn.PublicClientApplication.new{ auth = {…}, cache = {location = "file", path = …} }
--     app:acquire_token_silent(req):next(function(r) … end)      -- promise style
--     coroutine.wrap(function()                                  -- await style
--       local r, err = app:acquire_token_silent(req):await()
--     end)()
-- @module msal.nvim
local loop = require("msal.loop")
local errors = require("msal.errors")
local config = require("msal.config")
local Promise = require("msal.promise")

local default_on_unhandled = Promise.on_unhandled

local uv = vim.loop

local M = {}

local MAX_TIMER_MS = 2 ^ 31 - 1

-- LuaJIT 2.1 has it; without it, being in a coroutine has to do.
local isyieldable = coroutine.isyieldable or function() return true end

local installed = false
local timer          -- the driver's one timer: curl's deadlines and wakes
local woken = false  -- timer armed at 0 by wake and not fired yet

-- A failure inside a libuv callback has nobody to return to: raise it from
-- the main loop, where Neovim shows it like any plugin error.
local function report(err)
  vim.schedule(function() error(err, 0) end)
end

local on_timer

-- After each step the loop knows its next deadline; nil means only I/O
-- (the poll) can bring work, so the timer rests.
local function rearm()
  if woken then return end -- a wake during the step already asked for 0
  local t = loop.timeout()
  if t then
    timer:start(math.ceil(math.max(t, 0)), 0, on_timer)
  else
    timer:stop()
  end
end

-- One turn from a libuv callback (a fast context): step(0) only moves C
-- state and hands finished work to vim.schedule, so it is safe there.
local function turn()
  woken = false
  local ok, err = xpcall(loop.step, debug.traceback, 0)
  rearm()
  if not ok then report("msal.nvim: " .. tostring(err)) end
end

on_timer = turn

-- A request just started (or other work is due sooner than the timer
-- says): step on the next libuv iteration. Repeated wakes before it fires
-- cost nothing.
local function wake()
  if woken or not timer then return end
  woken = true
  timer:start(0, 0, on_timer)
end

local Timer = {}
Timer.__index = Timer

--- Cancels a library timer; its function will not run, even when libuv
-- already fired and the call is waiting in `vim.schedule`.
function Timer:close()
  self.cancelled = true
  local h = self.h
  if h then
    self.h = nil
    h:stop()
    h:close()
  end
end

-- Library timers (a device-code poll, a Retry-After wait) on libuv timers,
-- whose callback only schedules: fn may touch the editor.
local function set_timeout(ms, fn)
  local t = setmetatable({ h = uv.new_timer(), cancelled = false }, Timer)
  -- libuv takes whole milliseconds; a "never" (math.huge) becomes ~24 days
  t.h:start(math.min(math.ceil(ms), MAX_TIMER_MS), 0, function()
    local h = t.h
    if h then
      t.h = nil
      h:close()
    end
    vim.schedule(function()
      if not t.cancelled then
        t.cancelled = true
        fn()
      end
    end)
  end)
  return t
end

-- How `await` waits outside an msal.async coroutine: in any yieldable
-- coroutine it yields until p settles; at the top of the main loop it
-- refuses, because a wait there would stop the editor.
local function wait(p)
  local co = coroutine.running()
  if co == nil or not isyieldable() then
    local where = co == nil and "on Neovim's main loop"
      or "here (a C function, such as a vim.api callback, stands between it and its coroutine)"
    error(errors.ClientConfigurationError("await_on_main_loop",
      "await cannot wait " .. where .. ": the editor would freeze until the token arrives; "
        .. "call it inside a coroutine (coroutine.wrap(function() ... end)() or msal.async(fn)) "
        .. "or use promise style, p:next(function(result) ... end)"), 0)
  end
  -- The settle callback itself comes through vim.schedule (the loop's
  -- defer), so the coroutine resumes in the main loop, never in libuv's.
  local function resume()
    if coroutine.status(co) ~= "suspended" then return end
    local ok, err = coroutine.resume(co)
    if not ok then report(debug.traceback(co, tostring(err))) end
  end
  p:next(resume, resume)
  -- Someone else may resume this coroutine early; only settlement ends it.
  while p:state() == "pending" do coroutine.yield() end
end

--- Hands msal.loop to Neovim's libuv loop: jobs through `vim.schedule`,
-- timers on `vim.loop` timers, sockets watched by a `vim.loop` poll,
-- `await` yielding its coroutine, unhandled rejections reported through
-- `vim.notify` (unless `msal.Promise.on_unhandled` was replaced already).
-- The constructors here call it, so a
-- plugin rarely needs to; calling it again does nothing.
-- @tparam[opt] table opts none yet; accepted so plugins can pass their
--   `setup` options through
function M.setup(opts) -- luacheck: no unused args
  if installed then return end
  timer = uv.new_timer()
  local poll = uv.new_poll(loop.pollfd())
  poll:start(loop.events(), function(err)
    if err then
      report("msal.nvim: polling msal.loop's descriptor failed: " .. tostring(err))
      return
    end
    turn()
  end)
  loop.set_host({ defer = vim.schedule, set_timeout = set_timeout, wait = wait, wake = wake })
  -- The default report writes to stderr, which is the editor's terminal
  -- here: it would scribble over the screen. A report someone installed
  -- on purpose stays.
  if Promise.on_unhandled == default_on_unhandled then
    Promise.on_unhandled = function(err)
      vim.schedule(function()
        vim.notify("msal: unhandled promise rejection: " .. tostring(err), vim.log.levels.WARN, { title = "msal" })
      end)
    end
  end
  installed = true
  -- Work queued before setup sits in the loop's own queue: drain it from
  -- the main loop, where its callbacks may use vim.api.
  vim.schedule(turn)
end

--- A libcurl transport (`msal.transport.curl`), driven from libuv once
-- `setup` ran.
-- @tparam[opt] table opts as `msal.transport.curl.new`'s (`ca_file`,
--   `timeout_ms`, …)
-- @treturn table transport
function M.transport(opts)
  return require("msal.transport.curl").new(opts)
end

--- Opens a URL in the system browser without waiting for it: `vim.ui.open`
-- (0.10+) where Neovim has it, else a detached xdg-open (open on macOS).
-- The default `system.open_browser` here: vim.ui.open knows the user's
-- opener (WSL, macOS, a custom one), and libuv's spawn needs no shell,
-- where the library's default runs two through os.execute, each holding
-- the editor until it returns.
-- @tparam string url
-- @raise when no browser could be started
function M.open_browser(url)
  if vim.ui and vim.ui.open then
    local obj, err = vim.ui.open(url)
    if obj == nil and err then error(err, 0) end
    return
  end
  local sys = uv.os_uname().sysname
  local cmd, args = "xdg-open", { url }
  if sys == "Darwin" then
    cmd = "open"
  elseif sys:match("^Windows") then
    cmd, args = "rundll32", { "url.dll,FileProtocolHandler", url }
  end
  local handle
  local ok, h, err = pcall(uv.spawn, cmd, { args = args, detached = true }, function()
    if handle and not handle:is_closing() then handle:close() end
  end)
  if not ok or not h then error("cannot start " .. cmd .. ": " .. tostring(ok and err or h), 0) end
  handle = h
  handle:unref() -- a browser left open must not keep Neovim from quitting
end

--- Shows a device code the way Neovim shows things: `info.message` (the
-- authority's sentence with the URL and the code) through `vim.notify`,
-- so a notification plugin picks it up. The default of
-- `acquire_token_by_device_code` here; pass your own
-- `device_code_callback` to show it differently (a float, a register).
-- @tparam table info `user_code`, `verification_uri`, `message`, …
function M.device_code_callback(info)
  local function show()
    vim.notify(info.message, vim.log.levels.INFO, { title = "msal" })
  end
  if vim.in_fast_event() then vim.schedule(show) else show() end
end

--- `app:acquire_token_by_device_code(req)` with `M.device_code_callback`
-- when the request names none (the flow refuses to start without one).
-- The request table is not changed.
-- @tparam table app an application
-- @tparam table req `{scopes, device_code_callback, …}`
-- @treturn Promise the token result
function M.acquire_token_by_device_code(app, req)
  local r = {}
  for k, v in pairs(req or {}) do r[k] = v end
  if r.device_code_callback == nil then r.device_code_callback = M.device_code_callback end
  return app:acquire_token_by_device_code(r)
end

local DEFAULTS = {
  -- one connection pool for every app of the editor
  transport = function() return require("msal.transport.curl").default() end,
  open_browser = function() return M.open_browser end,
}

--- msal.PublicClientApplication.new for Neovim: calls `setup()`, and
-- defaults `system.transport` to a shared curl transport and
-- `system.open_browser` to a browser start that never blocks the editor.
-- @tparam table cfg as msal.PublicClientApplication.new's
-- @treturn table the application
-- @raise ClientConfigurationError on a bad configuration
-- @function PublicClientApplication.new
M.PublicClientApplication = config.host_application(M.setup, DEFAULTS)

--- msal.ManagedIdentityApplication.new for Neovim: calls `setup()` and
-- defaults `system.transport` to the shared curl transport.
-- @tparam[opt] table cfg as msal.ManagedIdentityApplication.new's
-- @treturn table the application
-- @raise ClientConfigurationError on a bad configuration
-- @function ManagedIdentityApplication.new
M.ManagedIdentityApplication = {
  new = function(cfg)
    M.setup()
    return require("msal").ManagedIdentityApplication.new(config.with_system_defaults(cfg or {},
      { transport = DEFAULTS.transport }))
  end,
}

return M

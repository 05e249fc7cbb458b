-- The cases spec/hosts/nvim_spec.lua runs inside headless Neovim (through
-- driver.lua). Each is `case(args, done)`: it starts its work and returns
-- at once, as a plugin's command would; done(result) is called later from
-- Neovim's loop. args: authority, client_id, scopes, cache_path (a file
-- cache the spec seeded), code_file (where the device case writes what it
-- was shown).
local mn = require("msal.nvim")
local msal = require("msal")
local uv = vim.loop

local cases = {}

local function now_ms() return uv.hrtime() / 1e6 end

local function app_of(args)
  return mn.PublicClientApplication.new({
    auth = { client_id = args.client_id, authority = args.authority },
    cache = args.cache_path and { location = "file", path = args.cache_path } or nil,
  })
end

local function request_of(app, args, extra)
  local req = { scopes = args.scopes or { "User.Read" }, account = app:get_all_accounts()[1] }
  for k, v in pairs(extra or {}) do req[k] = v end
  return req
end

-- A 50 ms libuv timer that counts its ticks through vim.schedule: a tick
-- counts only when Neovim's main loop is free to run it.
local function ticker(ms)
  local t = { n = 0 }
  local h = uv.new_timer()
  h:start(ms or 50, ms or 50, function()
    vim.schedule(function() t.n = t.n + 1 end)
  end)
  function t.stop()
    h:stop()
    h:close()
    return t.n
  end
  return t
end

local function describe_err(err)
  if type(err) == "table" then
    return { name = err.name, error_code = err.error_code, text = tostring(err) }
  end
  return { text = tostring(err) }
end

-- A token result, without the parts JSON cannot carry.
local function summary(r)
  return { access_token = r.access_token, from_cache = r.from_cache,
    username = r.account and r.account.username, home_account_id = r.account and r.account.home_account_id }
end

-- done(result) from inside a callback; an error there becomes the result
-- instead of a rejection nobody sees.
local function guarded(done, fn)
  return function(...)
    local ok, err = xpcall(fn, debug.traceback, ...)
    if not ok then done({ error = tostring(err) }) end
  end
end

--- A silent hit from the file cache the spec seeded, awaited in a coroutine.
function cases.silent_hit(args, done)
  coroutine.wrap(guarded(done, function()
    local app = app_of(args)
    local r, err = app:acquire_token_silent(request_of(app, args)):await()
    done({ accounts = #app:get_all_accounts(), result = r and summary(r), err = err and describe_err(err) })
  end))()
end

--- A refresh the token endpoint answers in 2 s, promise style, while a
--- 50 ms timer ticks.
function cases.slow_refresh(args, done)
  local app = app_of(args)
  local tick = ticker(50)
  local t0 = now_ms()
  app:acquire_token_silent(request_of(app, args)):next(guarded(done, function(r)
    done({ ticks = tick.stop(), elapsed_ms = now_ms() - t0, result = summary(r) })
  end), guarded(done, function(err)
    done({ ticks = tick.stop(), err = describe_err(err) })
  end))
end

--- Promise style settles by itself (nothing awaits, nothing drives the
--- loop but the host), and its callbacks run where vim.api works: first
--- over the network (a refresh), then from the cache.
function cases.promise_style(args, done)
  local app = app_of(args)
  local res = { notes = {} }
  -- a rejection nobody handles is reported through vim.notify (stderr is
  -- the editor's screen)
  local notify = vim.notify
  vim.notify = function(msg, level, opts) -- luacheck: ignore
    res.notes[#res.notes + 1] = msg
    return notify(msg, level, opts)
  end
  msal.Promise.reject(msal.ClientAuthError("nobody_listens", "a rejection without a handler"))
  local p = app:acquire_token_silent(request_of(app, args))
  res.pending_after_call = p:state() == "pending"
  local second_sync = nil
  p:next(guarded(done, function(r)
    res.first = summary(r)
    res.first_in_fast = vim.in_fast_event()
    -- vim.api is forbidden in a fast context: these raise there
    vim.api.nvim_buf_set_lines(0, 0, -1, false, { "token " .. r.access_token:sub(1, 8) })
    res.first_buffer = vim.api.nvim_buf_get_lines(0, 0, -1, false)[1]
    res.first_mode = vim.api.nvim_get_mode().mode
    local ran = false
    app:acquire_token_silent(request_of(app, args)):next(guarded(done, function(r2)
      ran = true
      res.second = summary(r2)
      res.second_in_fast = vim.in_fast_event()
      res.second_sync = second_sync
      vim.api.nvim_set_var("msal_case_token", r2.access_token)
      res.second_var = vim.api.nvim_get_var("msal_case_token")
      done(res)
    end), guarded(done, function(err) done({ error = "second: " .. tostring(err) }) end))
    second_sync = ran -- true only if the callback ran before next() returned
  end), guarded(done, function(err)
    res.err = describe_err(err)
    done(res)
  end))
end

--- await in a plain coroutine yields it (the timer keeps ticking while the
--- token endpoint takes its time), await in msal.async works too, and
--- await at the top of the main loop raises the named error at once.
function cases.await(args, done)
  local app = app_of(args)
  local tick = ticker(50)
  local res = {}
  local t0 = now_ms()
  coroutine.wrap(guarded(done, function()
    local r, err = app:acquire_token_silent(request_of(app, args)):await()
    res.co_elapsed_ms = now_ms() - t0
    res.co_ticks = tick.n
    res.co_in_fast = vim.in_fast_event()
    res.co_result = r and summary(r)
    res.co_err = err and describe_err(err)
    msal.async(function()
      local r2, err2 = app:acquire_token_silent(request_of(app, args, { force_refresh = true })):await()
      res.async_result = r2 and summary(r2)
      res.async_err = err2 and describe_err(err2)
    end):next(guarded(done, function()
      -- the top of the main loop: no coroutine here
      res.top_coroutine = coroutine.running() ~= nil
      local p = app:acquire_token_silent(request_of(app, args, { force_refresh = true }))
      res.top_pending = p:state() == "pending"
      local t1 = now_ms()
      local ok, err3 = pcall(p.await, p)
      res.top_elapsed_ms = now_ms() - t1
      res.top_ok = ok
      res.top_err = describe_err(err3)
      res.ticks = tick.stop()
      done(res)
    end), guarded(done, function(e) done({ error = "async: " .. tostring(e) }) end))
  end))()
  -- the coroutine is suspended in await: we are back here at once
  res.returned_ms = now_ms() - t0
  res.returned_before_result = res.co_result == nil and res.co_err == nil
end

--- The device code flow with msal.nvim's default callback (vim.notify):
--- what was shown goes to args.code_file for the spec, which approves the
--- code at /devicelogin like a user on another device.
function cases.device_code(args, done)
  local app = app_of(args)
  local notes = {}
  local notify = vim.notify
  vim.notify = function(msg, level, opts) -- luacheck: ignore
    notes[#notes + 1] = { msg = msg, level = level, in_fast = vim.in_fast_event() }
    local f = assert(io.open(args.code_file .. ".tmp", "w"))
    f:write(msg)
    f:close()
    os.rename(args.code_file .. ".tmp", args.code_file)
    return notify(msg, level, opts)
  end
  local tick = ticker(50)
  local t0 = now_ms()
  mn.acquire_token_by_device_code(app, { scopes = args.scopes or { "User.Read" } }):next(guarded(done, function(r)
    done({ ticks = tick.stop(), elapsed_ms = now_ms() - t0, notes = notes, result = summary(r),
      accounts = #app:get_all_accounts() })
  end), guarded(done, function(err)
    done({ ticks = tick.stop(), notes = notes, err = describe_err(err) })
  end))
end

--- The popup flow with msal.nvim's open_browser: the "browser" is the
--- spec's xdg-open on PATH, which takes its time, then follows the
--- authorize URL to the loopback listener. Both the listener and curl are
--- driven from libuv meanwhile.
function cases.popup(args, done)
  local app = app_of(args)
  local tick = ticker(50)
  local t0 = now_ms()
  app:acquire_token_popup({ scopes = args.scopes or { "User.Read" } }):next(guarded(done, function(r)
    done({ ticks = tick.stop(), elapsed_ms = now_ms() - t0, result = summary(r), accounts = #app:get_all_accounts() })
  end), guarded(done, function(err)
    done({ ticks = tick.stop(), err = describe_err(err) })
  end))
end

--- The example plugin (examples/nvim, on the runtimepath, configured by
--- the spec through vim.g.msal_example): :MsalToken, then :MsalSignOut.
function cases.example(args, done)
  local res = {
    has_token_cmd = vim.fn.exists(":MsalToken") == 2,
    has_signout_cmd = vim.fn.exists(":MsalSignOut") == 2,
  }
  vim.fn.setreg('"', "")
  vim.cmd("MsalToken")
  res.reg_right_after = vim.fn.getreg('"')
  local poll = uv.new_timer()
  local waited, over = 0, false
  poll:start(20, 20, vim.schedule_wrap(guarded(done, function()
    if over then return end
    waited = waited + 20
    if res.token == nil then
      local reg = vim.fn.getreg('"')
      if reg ~= "" then
        res.token = reg
        res.messages = vim.fn.execute("messages")
        vim.cmd("MsalSignOut")
      end
      return
    end
    local m = vim.fn.execute("messages")
    if m:find("signed out", 1, true) or waited > 5000 then
      over = true
      poll:stop()
      poll:close()
      res.messages_after = m
      done(res)
    end
  end)))
end

return cases

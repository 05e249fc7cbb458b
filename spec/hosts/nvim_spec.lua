-- msal.nvim inside real headless Neovim processes (Debian's neovim 0.7.2,
-- LuaJIT, the tree's LuaJIT build of msal.core), against the local
-- Entra-like authority: a silent hit from a file cache, a slow refresh
-- that leaves the editor's loop running, promise callbacks that settle by
-- themselves where vim.api works, await that yields a coroutine and refuses
-- the main loop, the device code flow, and the example plugin.
--
-- Each case runs in its own `nvim --headless` (spec/support/nvim/driver.lua
-- runs one function of spec/support/nvim/cases.lua and writes its result
-- as JSON), under `timeout`, so a hang fails the test, not the suite.
local cjson = require("cjson")
local core = require("msal.core")
local entra = require("entra")
local files = require("files")
local proc = require("proc")

local ROOT = os.getenv("MSAL_TEST_ROOT") or "."
local SUPPORT = ROOT .. "/spec/support/nvim"
local CLIENT = "lua-msal-nvim"
local NVIM_LIMIT_S = 20 -- one Neovim run at the most

local function authority() return entra.base() .. "/" .. entra.TENANT end

-- Signs the default user in (the spec's own app) and writes its cache to
-- path, the file Neovim's app reads; without access tokens when `expired`,
-- so the next silent call must refresh. Returns the sign-in's result.
local function seed(path, expired)
  local app, r = entra.signed_in_app(CLIENT, authority(), expired)
  assert(app:get_token_cache():write_file(path))
  return r
end

local refresh_requests = entra.refresh_requests

local function env_prefix(dir, vars)
  local s = ""
  -- a private home for Neovim: no user config, plugins or state leak in
  for _, v in ipairs({ "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME" }) do
    s = s .. v .. "=" .. proc.quote(dir .. "/xdg") .. " "
  end
  for k, v in pairs(vars) do s = s .. k .. "=" .. proc.quote(v) .. " " end
  return s .. "MSAL_TEST_ROOT=" .. proc.quote(ROOT) .. " "
end

-- The shell command of one case. opts.example: start as a user would
-- (plugins load, examples/nvim on the runtimepath, vim.g.msal_example set
-- from opts.example) instead of -u NONE; opts.env: more environment.
local function nvim_command(dir, case, args, opts)
  opts = opts or {}
  local out = dir .. "/" .. case .. ".result.json"
  os.remove(out)
  local vars = { MSAL_NVIM_CASE = case, MSAL_NVIM_OUT = out, MSAL_NVIM_ARGS = cjson.encode(args) }
  for k, v in pairs(opts.env or {}) do vars[k] = v end
  local init = "-u NONE"
  local cmds = "--cmd " .. proc.quote("luafile " .. SUPPORT .. "/paths.lua")
  if opts.example then
    init = "-u NORC"
    vars.MSAL_NVIM_EXAMPLE = cjson.encode(opts.example)
    cmds = cmds .. " --cmd " .. proc.quote("set rtp^=" .. ROOT .. "/examples/nvim")
      .. " --cmd " .. proc.quote("lua vim.g.msal_example = vim.json.decode(os.getenv('MSAL_NVIM_EXAMPLE'))")
  end
  local cmd = env_prefix(dir, vars) .. ("timeout -k 2 %d nvim --headless %s -i NONE -n %s -c %s")
    :format(NVIM_LIMIT_S, init, cmds, proc.quote("luafile " .. SUPPORT .. "/driver.lua"))
  return cmd, out
end

local function result_of(out, output, code)
  local text = files.read(out)
  assert(text, ("nvim wrote no result (exit %s; 124 is the time limit):\n%s"):format(tostring(code), output))
  local res = cjson.decode(text)
  assert(res.error == nil, tostring(res.error) .. "\n" .. output)
  return res
end

-- Runs one case to its end; returns its result, and Neovim's run time in ms.
local function run_nvim(dir, case, args, opts)
  local cmd, out = nvim_command(dir, case, args, opts)
  local t0 = core.now_ms()
  local output, code = proc.sh(cmd, { plain = true })
  return result_of(out, output, code), core.now_ms() - t0
end

describe("msal.nvim in headless Neovim #host", function()
  local dir, cleanup

  setup(function()
    dir, cleanup = proc.tempdir()
  end)

  teardown(function()
    if cleanup then cleanup() end
  end)

  before_each(function() entra.reset() end)

  local function args_for(cache_path, extra)
    local a = { client_id = CLIENT, authority = authority(), scopes = { "User.Read" }, cache_path = cache_path }
    for k, v in pairs(extra or {}) do a[k] = v end
    return a
  end

  it("serves a silent hit from a file cache", function()
    local path = dir .. "/hit.json"
    local signed = seed(path, false)
    local before = #entra.requests("token")
    local res = run_nvim(dir, "silent_hit", args_for(path))
    assert.is_nil(res.err, res.err and res.err.text)
    assert.equal(1, res.accounts)
    assert.is_true(res.result.from_cache)
    assert.equal(signed.access_token, res.result.access_token)
    assert.equal(entra.UID .. "." .. entra.TENANT, res.result.home_account_id)
    assert.equal(before, #entra.requests("token"))
  end)

  it("keeps Neovim's loop running during a 2-second refresh, which completes with one token request", function()
    local path = dir .. "/slow.json"
    local signed = seed(path, true)
    entra.next({ endpoint = "token", delay_ms = 2000, when = { grant_type = "refresh_token" } })
    local res = run_nvim(dir, "slow_refresh", args_for(path))
    assert.is_nil(res.err, res.err and res.err.text)
    assert.is_false(res.result.from_cache)
    assert.is_string(res.result.access_token)
    assert.not_equal(signed.access_token, res.result.access_token)
    assert.is_true(res.elapsed_ms >= 1900, "the refresh took " .. res.elapsed_ms .. " ms")
    -- 2 s of a 50 ms timer is 40 ticks; a blocked loop gives none
    assert.is_true(res.ticks >= 30, "the 50 ms timer ticked " .. res.ticks .. " times in " .. res.elapsed_ms .. " ms")
    assert.equal(1, refresh_requests())
  end)

  it("settles promise style by itself, callbacks through vim.schedule where vim.api works; reports unhandled rejections with vim.notify", function()
    local path = dir .. "/promise.json"
    seed(path, true)
    local res = run_nvim(dir, "promise_style", args_for(path))
    assert.is_nil(res.err, res.err and res.err.text)
    assert.is_true(res.pending_after_call)
    -- first over the network: nothing awaited, the host drove curl
    assert.is_false(res.first.from_cache)
    assert.is_false(res.first_in_fast)
    assert.equal("token " .. res.first.access_token:sub(1, 8), res.first_buffer)
    assert.equal("n", res.first_mode)
    -- then a hit: still a callback from the loop, never synchronous
    assert.is_true(res.second.from_cache)
    assert.equal(res.first.access_token, res.second.access_token)
    assert.is_false(res.second_in_fast)
    assert.is_false(res.second_sync)
    assert.equal(res.second.access_token, res.second_var)
    assert.equal(1, refresh_requests())
    assert.same({ "msal: unhandled promise rejection: ClientAuthError: nobody_listens: a rejection without a handler" },
      res.notes)
  end)

  it("yields a coroutine in await while the editor runs, and refuses await at the top of the main loop", function()
    local path = dir .. "/await.json"
    seed(path, true)
    entra.next({
      { endpoint = "token", delay_ms = 1000, when = { grant_type = "refresh_token" } }, -- the coroutine's
      { endpoint = "token", delay_ms = 0, when = { grant_type = "refresh_token" } },    -- msal.async's
      { endpoint = "token", delay_ms = 3000, when = { grant_type = "refresh_token" } }, -- the top level's
    })
    local res, ran_ms = run_nvim(dir, "await", args_for(path))
    -- the coroutine was suspended in await: its starter got control back at once
    assert.is_true(res.returned_before_result)
    assert.is_true(res.returned_ms < 500, "coroutine.wrap returned after " .. res.returned_ms .. " ms")
    assert.is_nil(res.co_err, res.co_err and res.co_err.text)
    assert.is_false(res.co_result.from_cache)
    assert.is_true(res.co_elapsed_ms >= 900)
    assert.is_true(res.co_ticks >= 12, "the 50 ms timer ticked " .. res.co_ticks .. " times during a 1 s await")
    assert.is_false(res.co_in_fast)
    -- msal.async's own coroutine awaits through the host too
    assert.is_nil(res.async_err, res.async_err and res.async_err.text)
    assert.is_false(res.async_result.from_cache)
    -- at the top of the main loop: the named error, at once, not a 3 s freeze
    assert.is_false(res.top_coroutine)
    assert.is_true(res.top_pending)
    assert.is_false(res.top_ok)
    assert.equal("ClientConfigurationError", res.top_err.name)
    assert.equal("await_on_main_loop", res.top_err.error_code)
    assert.matches("coroutine", res.top_err.text)
    assert.matches(":next", res.top_err.text, 1, true)
    assert.is_true(res.top_elapsed_ms < 100, "the top-level await took " .. res.top_elapsed_ms .. " ms to fail")
    assert.is_true(ran_ms < 2900, "Neovim ran " .. ran_ms .. " ms: did something wait for the 3 s answer?")
  end)

  it("runs the device code flow: the code shows through vim.notify, the user approves, the token arrives", function()
    local code_file = dir .. "/device_code.txt"
    os.remove(code_file)
    local cmd, out = nvim_command(dir, "device_code", args_for(nil, { code_file = code_file }))
    local job = proc.background(cmd, dir .. "/device_job", { plain = true })
    -- the user reads the message Neovim showed...
    local shown
    local deadline = core.now_ms() + 10000
    while not shown and core.now_ms() < deadline and not job:done() do
      shown = files.read(code_file)
      if not shown then core.sleep_ms(20) end
    end
    assert(shown, "Neovim showed no device code:\n" .. job:output())
    local user_code = shown:match("enter the code (%S+)")
    assert(user_code, "no code in the message: " .. shown)
    -- ... and enters the code on another device
    local http = require("msal.transport.curl").new()
    local answer = assert(http:send({ method = "POST", url = entra.base() .. "/devicelogin",
      headers = { ["content-type"] = "application/x-www-form-urlencoded" },
      body = "otc=" .. user_code }):await())
    http:close()
    assert.equal(200, answer.status)
    local code = job:wait(NVIM_LIMIT_S * 1000 + 5000)
    local res = result_of(out, job:output(), code)
    assert.is_nil(res.err, res.err and res.err.text)
    assert.equal(1, #res.notes)
    assert.equal(shown, res.notes[1].msg)
    assert.is_false(res.notes[1].in_fast)
    assert.is_false(res.result.from_cache)
    assert.equal(entra.UID .. "." .. entra.TENANT, res.result.home_account_id)
    assert.equal(1, res.accounts)
    -- the flow waits >= 1 s (the poll interval); the timer ran all along
    assert.is_true(res.elapsed_ms >= 900)
    assert.is_true(res.ticks >= res.elapsed_ms / 50 * 0.6,
      ("the 50 ms timer ticked %d times in %d ms"):format(res.ticks, res.elapsed_ms))
    local polls = #entra.grant_forms("urn:ietf:params:oauth:grant-type:device_code")
    assert.is_true(polls >= 1)
  end)

  it("opens the browser without waiting for it and finishes the popup flow on the loopback listener", function()
    -- a browser that starts slowly, then signs in: the authority answers
    -- at once with a redirect to the app's loopback listener
    local bin = dir .. "/bin"
    proc.sh("mkdir -p " .. proc.quote(bin), { plain = true })
    local opened = dir .. "/opened.txt"
    os.remove(opened)
    files.write(bin .. "/xdg-open", ("#!/bin/sh\necho \"$1\" > %s\nsleep 1\nexec curl -s -L -o /dev/null --max-time 10 \"$1\"\n")
      :format(proc.quote(opened)))
    proc.sh("chmod +x " .. proc.quote(bin .. "/xdg-open"), { plain = true })
    local res = run_nvim(dir, "popup", args_for(nil), { env = { PATH = bin .. ":" .. os.getenv("PATH") } })
    assert.is_nil(res.err, res.err and res.err.text)
    assert.matches("/oauth2/v2.0/authorize?", files.read(opened), 1, true)
    assert.is_false(res.result.from_cache)
    assert.equal(entra.UID .. "." .. entra.TENANT, res.result.home_account_id)
    assert.equal(1, res.accounts)
    assert.is_true(res.elapsed_ms >= 1000)
    assert.is_true(res.ticks >= res.elapsed_ms / 50 * 0.6,
      ("the 50 ms timer ticked %d times in %d ms"):format(res.ticks, res.elapsed_ms))
  end)

  it("loads the example plugin from the runtimepath; :MsalToken yanks a cached token, :MsalSignOut forgets it", function()
    local path = dir .. "/example.json"
    local signed = seed(path, false)
    local res = run_nvim(dir, "example", args_for(path), {
      example = { client_id = CLIENT, authority = authority(), scopes = { "User.Read" }, cache_path = path },
    })
    assert.is_true(res.has_token_cmd)
    assert.is_true(res.has_signout_cmd)
    -- the command returned before the token: it never waits
    assert.equal("", res.reg_right_after)
    assert.equal(signed.access_token, res.token)
    assert.matches("from the cache", res.messages, 1, true)
    assert.matches(signed.access_token:sub(1, 12), res.messages, 1, true)
    assert.matches("signed out (1 account removed)", res.messages_after, 1, true)
    assert.same({}, cjson.decode(files.read(path)).Account or {})
    assert.equal(0, refresh_requests())
  end)
end)

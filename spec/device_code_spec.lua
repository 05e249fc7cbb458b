-- The device code flow against the local Entra-like authority: the user
-- finishes (or not) on "another device" through the server's control API.
local msal = require("msal")
local entra = require("entra")
local cjson = require("cjson")

local function new_app()
  return msal.PublicClientApplication.new({
    auth = { client_id = "lua-msal-app", authority = entra.base() .. "/" .. entra.TENANT },
  })
end

-- Answers the device flow as the user would, once the callback showed the code.
local function user_does(action, shown)
  msal.async(function()
    while not shown.user_code do
      msal.Promise.new(function(resolve) require("msal.loop").set_timeout(50, resolve) end):await()
    end
    entra.control = entra.control or nil
    local res = require("msal.transport.curl").new():send({ method = "POST", url = entra.base() .. "/__control/device",
      headers = { ["content-type"] = "application/json" },
      body = cjson.encode({ user_code = shown.user_code, action = action }) }):await()
    assert(res and res.status == 200, "control API refused the device action")
  end)
end

describe("acquire_token_by_device_code", function()
  before_each(function() entra.reset() end)

  it("shows the code, polls, and caches the token once the user approves", function()
    local app, shown = new_app(), {}
    local p = app:acquire_token_by_device_code({ scopes = { "User.Read" },
      device_code_callback = function(info) for k, v in pairs(info) do shown[k] = v end end })
    user_does("approve", shown)
    local r = assert(p:await())
    assert.is_string(shown.user_code)
    assert.is_string(shown.device_code)
    assert.matches("^http://127%.0%.0%.1:%d+/devicelogin", shown.verification_uri)
    assert.is_number(shown.expires_in)
    assert.is_number(shown.interval)
    assert.matches(shown.user_code, shown.message, 1, true)
    assert.is_false(r.from_cache)
    assert.equal(entra.UID .. "." .. entra.TENANT, r.account.home_account_id)
    local polls = entra.requests("token")
    assert.equal("urn:ietf:params:oauth:grant-type:device_code", polls[#polls].form.grant_type)
    assert.equal("1", polls[#polls].form.client_info)
    -- the next silent call is served from the cache
    local again = assert(app:acquire_token_silent({ scopes = { "User.Read" }, account = app:get_all_accounts()[1] }):await())
    assert.is_true(again.from_cache)
    assert.equal(r.access_token, again.access_token)
  end)

  it("rejects when the user declines", function()
    local app, shown = new_app(), {}
    local p = app:acquire_token_by_device_code({ scopes = { "User.Read" },
      device_code_callback = function(info) shown.user_code = info.user_code end })
    user_does("deny", shown)
    local _, err = p:await()
    assert.is_table(err)
    assert.matches("declined", err.error_code .. " " .. err.error_message)
    assert.same({}, cjson.decode(app:get_token_cache():serialize()).AccessToken)
  end)

  it("rejects with device_code_expired when the code runs out", function()
    entra.config({ device_expires_in = 2, device_interval = 1 })
    local app = new_app()
    local _, err = app:acquire_token_by_device_code({ scopes = { "User.Read" }, device_code_callback = function() end })
      :await()
    assert.equal("ClientAuthError", err.name)
    assert.equal("device_code_expired", err.error_code)
  end)

  it("stops polling when cancelled, without blocking the loop meanwhile", function()
    local app, req = new_app(), nil
    local ticks = 0
    local timer
    local function tick()
      ticks = ticks + 1
      timer = require("msal.loop").set_timeout(100, tick)
    end
    timer = require("msal.loop").set_timeout(100, tick)
    req = { scopes = { "User.Read" }, device_code_callback = function() end }
    require("msal.loop").set_timeout(1500, function() req.cancel = true end)
    local _, err = app:acquire_token_by_device_code(req):await()
    timer:close()
    assert.equal("device_code_polling_cancelled", err.error_code)
    assert.is_true(ticks >= 8, "the loop kept running while the flow waited: " .. ticks .. " ticks")
  end)

  it("needs a callback and one resource", function()
    local app = new_app()
    local _, err = app:acquire_token_by_device_code({ scopes = { "User.Read" } }):await()
    assert.equal("ClientConfigurationError", err.name)
    _, err = app:acquire_token_by_device_code({ scopes = { "User.Read", "api://other/x" },
      device_code_callback = function() end }):await()
    assert.equal("multiple_resources", err.error_code)
  end)

  if _VERSION == "Lua 5.4" and not os.getenv("MSAL_TEST_ASAN") then
    -- 6 s of waiting by design (RFC 8628: slow_down adds 5 s); once is enough
    it("slows down when told to", function()
      entra.next({ endpoint = "token", status = 400, body = { error = "slow_down" },
        when = { grant_type = "urn:ietf:params:oauth:grant-type:device_code" } })
      local app, shown = new_app(), {}
      local p = app:acquire_token_by_device_code({ scopes = { "User.Read" },
        device_code_callback = function(info) shown.user_code = info.user_code end })
      user_does("approve", shown)
      assert(p:await())
      local polls = {}
      for _, q in ipairs(entra.requests("token")) do
        if q.form.grant_type == "urn:ietf:params:oauth:grant-type:device_code" then polls[#polls + 1] = q.time end
      end
      assert.equal(2, #polls)
      local gap = polls[2] - polls[1] -- the log keeps seconds
      assert.is_true(gap >= 5.5, "second poll after " .. gap .. " s")
    end)
  end

  it("ends the caller's timeout with user_timeout_reached, promptly", function()
    local app = new_app()
    local t0 = require("msal.loop").now_ms()
    local _, err = app:acquire_token_by_device_code({ scopes = { "User.Read" }, timeout = 0.3,
      device_code_callback = function() end }):await()
    assert.equal("ClientAuthError", err.name)
    assert.equal("user_timeout_reached", err.error_code)
    assert.is_true(require("msal.loop").now_ms() - t0 < 2000)
  end)

  -- The server's interval once drove a poll per loop turn (40 polls in
  -- under a millisecond); expires_in bounds the flow the same way.
  for _, bad in ipairs({ "NaN", -1, 0, "abc", "", 1e-9 }) do
    it("polls at a sane pace when the server's interval is " .. cjson.encode(bad), function()
      entra.next({ endpoint = "devicecode", override = { interval = bad, expires_in = bad } })
      local app, shown = new_app(), {}
      local _, err = app:acquire_token_by_device_code({ scopes = { "User.Read" }, timeout = 1.5,
        device_code_callback = function(info) for k, v in pairs(info) do shown[k] = v end end }):await()
      -- a tiny expires_in counts as 1 s: the code expires before the timeout
      assert.is_truthy(({ user_timeout_reached = true, device_code_expired = true })[err.error_code], err.error_code)
      local n = #entra.grant_forms("urn:ietf:params:oauth:grant-type:device_code")
      assert.is_true(n <= 2, n .. " polls in 1.5 s")
      assert.is_true(shown.interval >= 1 and shown.interval <= 60, tostring(shown.interval))
      assert.is_true(shown.expires_in >= 1 and shown.expires_in <= 86400, tostring(shown.expires_in))
    end)
  end

  it("bounds a huge interval, and a timeout still ends the wait", function()
    entra.next({ endpoint = "devicecode", override = { interval = 1e9, expires_in = 1e12 } })
    local app, shown = new_app(), {}
    local t0 = require("msal.loop").now_ms()
    local _, err = app:acquire_token_by_device_code({ scopes = { "User.Read" }, timeout = 0.5,
      device_code_callback = function(info) shown.interval, shown.expires_in = info.interval, info.expires_in end })
      :await()
    assert.equal("user_timeout_reached", err.error_code)
    assert.same({ 60, 86400 }, { shown.interval, shown.expires_in })
    assert.is_true(require("msal.loop").now_ms() - t0 < 2000)
  end)

  it("uses a per-request authority", function()
    local app, shown = new_app(), {}
    local p = app:acquire_token_by_device_code({ scopes = { "User.Read" }, authority = entra.base() .. "/organizations",
      device_code_callback = function(info) shown.user_code = info.user_code end })
    user_does("approve", shown)
    assert(p:await())
    local dc = entra.requests("devicecode")
    assert.equal("organizations", dc[#dc].tenant)
    local polls = entra.requests("token")
    assert.equal("organizations", polls[#polls].tenant)
  end)

  it("refuses a timeout that is not a positive number of seconds", function()
    local _, err = new_app():acquire_token_by_device_code({ scopes = { "User.Read" }, timeout = "soon",
      device_code_callback = function() end }):await()
    assert.equal("ClientConfigurationError", err.name)
  end)
end)

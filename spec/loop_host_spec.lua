-- msal.loop as another loop drives it: set_host (jobs, timers, await, wake)
-- and the pollable face (pollfd, events, timeout, step), the way msal.nvim,
-- msal.openresty or a cqueues/luv program uses it; and single flight when a
-- transport suspends its caller.
local loop = require("msal.loop")
local Promise = require("msal.promise")
local core = require("msal.core")
local msal = require("msal")
local cjson = require("cjson")
local F = require("fixtures")
local fake_transport = require("fake_transport")

local NOW = 1800000000
local AUTHORITY = "https://login.microsoftonline.com/common"

local function expired_app(transport)
  local app = msal.PublicClientApplication.new({
    auth = { client_id = F.CLIENT, authority = AUTHORITY, authority_metadata = cjson.encode({
      issuer = "https://login.microsoftonline.com/{tenantid}/v2.0",
      token_endpoint = AUTHORITY .. "/oauth2/v2.0/token",
      authorization_endpoint = AUTHORITY .. "/oauth2/v2.0/authorize" }) },
    system = { clock = function() return NOW end, transport = transport } })
  app:get_token_cache():deserialize(cjson.encode(F.signed_in({ expires_on = tostring(NOW + 100) })))
  return app
end

local function token_answer()
  return { status = 200, json = { token_type = "Bearer", scope = "User.Read", expires_in = 3600,
    access_token = "refreshed", refresh_token = "rt2" } }
end

describe("msal.loop with a host", function()
  before_each(function() loop.reset() end)
  after_each(function() loop.reset() end)

  it("puts timers on the host's timers and never sleeps", function()
    local armed = {}
    loop.set_clock(nil, function() error("the loop slept") end)
    loop.set_host({ set_timeout = function(ms, fn)
      armed[#armed + 1] = { ms = ms, fn = fn }
      return { close = function() end }
    end })
    local fired = false
    local t = loop.set_timeout(250, function() fired = true end)
    assert.equal(1, #armed)
    assert.equal(250, armed[1].ms)
    assert.is_function(t.close)
    assert.is_false(loop.pending())
    armed[1].fn()
    assert.is_true(fired)
  end)

  it("lets the host decide how a top-level await waits", function()
    local waited
    loop.set_host({ wait = function(p)
      waited = p
      loop.run_until(function() return p:state() ~= "pending" end)
    end })
    local p = Promise.new(function(resolve) loop.defer(resolve, "v") end)
    assert.equal("v", p:await())
    assert.equal(p, waited)
  end)

  it("keeps an async body's await its own after it resumed a coroutine that a host's wait yielded", function()
    -- a host whose wait yields the waiting coroutine (as Neovim's does)
    loop.set_host({ wait = function(p)
      local co = coroutine.running()
      local function back() loop.defer(function() coroutine.resume(co) end) end
      p:next(back, back)
      coroutine.yield()
    end })
    local resolve_inner, resolve_own
    local inner = Promise.new(function(r) resolve_inner = r end)
    local own = Promise.new(function(r) resolve_own = r end)
    local inner_result
    local body = Promise.async(function()
      local c = coroutine.create(function() inner_result = inner:await() end)
      coroutine.resume(c) -- suspends in the host's wait, back here
      return own:await()  -- the async body's own await: suspends the body
    end)
    resolve_own("own")
    resolve_inner("inner")
    loop.run()
    assert.equal("fulfilled", body:state())
    assert.equal("own", (body:await()))
    assert.equal("inner", inner_result)
  end)

  it("raises what the host's wait raises", function()
    loop.set_host({ wait = function() error("no waiting here", 0) end })
    local p = Promise.new(function() end)
    assert.has_error(function() p:await() end, "no waiting here")
  end)

  it("wakes the host when work arrives, not for each job of a drain", function()
    local wakes = 0
    loop.set_host({ wake = function() wakes = wakes + 1 end })
    loop.defer(function() loop.defer(function() end) end)
    assert.equal(1, wakes)
    loop.defer(function() end) -- the queue is not empty: already woken
    assert.equal(1, wakes)
    loop.step(0)
    assert.equal(1, wakes)
    loop.set_timeout(10, function() end)
    assert.equal(2, wakes)
    loop.add_source({ pending = function() return false end, step = function() return false end })
    assert.equal(3, wakes)
  end)

  it("keeps the other host fields when set_scheduler changes job delivery", function()
    local timers = 0
    loop.set_host({ set_timeout = function() timers = timers + 1 return { close = function() end } end })
    local jobs = {}
    loop.set_scheduler(function(fn) jobs[#jobs + 1] = fn end)
    loop.set_timeout(5, function() end)
    loop.defer(function() end)
    assert.equal(1, timers)
    assert.equal(1, #jobs)
  end)

  it("refuses unknown host fields and non-functions", function()
    assert.has_error(function() loop.set_host({ sleep = function() end }) end)
    assert.has_error(function() loop.set_host({ defer = 1 }) end)
  end)
end)

describe("msal.loop's pollable face", function()
  before_each(function() loop.reset() end)
  after_each(function() loop.reset() end)

  it("says when step has work: now for jobs, at the timer's deadline, nil for I/O only", function()
    local t = 1000
    loop.set_clock(function() return t end)
    assert.is_nil(loop.timeout())
    assert.equal("r", loop.events())
    loop.set_timeout(40, function() end)
    assert.equal(40, loop.timeout())
    t = 1030
    assert.equal(10, loop.timeout())
    loop.defer(function() end)
    assert.equal(0, loop.timeout())
  end)

  it("polls a busy source without a pollfd every 10 ms", function()
    loop.add_source({ pending = function() return true end, step = function() return false end })
    assert.equal(10, loop.timeout())
  end)

  it("is driven to the end of a real HTTP request by an outside poll on pollfd()", function()
    local base = os.getenv("MSAL_TEST_ENTRA")
    assert(base, "MSAL_TEST_ENTRA is not set: run the specs with make test")
    local fd = loop.pollfd()
    assert.equal(fd, loop.pollfd())
    local transport = require("msal.transport.curl").new()
    local res
    transport:request({ url = base .. "/common/v2.0/.well-known/openid-configuration" }, function(err, r)
      res = r or err
    end)
    -- an outside loop: one poll on the loop's descriptor, then step(0)
    local polls = 0
    while res == nil and polls < 2000 do
      polls = polls + 1
      local timeout = loop.timeout()
      core.loop.wait({ fd }, timeout == nil and 1000 or math.min(timeout, 1000))
      loop.step(0)
    end
    assert.is_table(res)
    assert.equal(200, res.status)
    assert.truthy(res.body:find("token_endpoint", 1, true))
    transport:close()
  end)

  it("does not block in step(0) even with a request in flight", function()
    local base = os.getenv("MSAL_TEST_ENTRA")
    local transport = require("msal.transport.curl").new()
    transport:request({ url = base .. "/common/v2.0/.well-known/openid-configuration" }, function() end)
    local t0 = core.now_ms()
    for _ = 1, 20 do loop.step(0) end
    assert.is_true(core.now_ms() - t0 < 50)
    transport:close()
    loop.run()
  end)
end)

describe("single flight", function()
  before_each(function() loop.reset() end)
  after_each(function() loop.reset() end)

  it("is recorded before the transport runs, so a caller arriving while it is suspended shares it", function()
    local app
    local inner
    local t = fake_transport.new(function()
      -- a cosocket transport suspends the request here; another request
      -- of the same worker runs meanwhile
      if not inner then
        inner = app:acquire_token_silent({ scopes = { "User.Read" }, account = app:get_all_accounts()[1] })
      end
      return token_answer()
    end)
    app = expired_app(t)
    local outer = app:acquire_token_silent({ scopes = { "User.Read" }, account = app:get_all_accounts()[1] })
    local a = assert(outer:await())
    local b = assert(inner:await())
    assert.equal(1, t.n)
    assert.equal("refreshed", a.access_token)
    assert.equal("refreshed", b.access_token)
  end)

  it("turns a raise inside the flow into a rejection and forgets the entry", function()
    local calls = 0
    local t = fake_transport.new(function()
      calls = calls + 1
      if calls == 1 then error("transport exploded") end
      return token_answer()
    end)
    local app = expired_app(t)
    local req = { scopes = { "User.Read" }, account = app:get_all_accounts()[1] }
    local r, err = app:acquire_token_silent(req):await()
    assert.is_nil(r)
    assert.is_table(err)
    assert.is_nil(next(app.inflight))
    assert.equal("refreshed", assert(app:acquire_token_silent(req):await()).access_token)
  end)
end)

local loop = require("msal.loop")
local Promise = require("msal.promise")

local default_on_unhandled = Promise.on_unhandled

-- Virtual clock: sleeping advances time instantly, so timer tests are exact
-- and fast. `slept` records every blocking wait the loop asked for.
local clock
local function install_clock()
  clock = { t = 0, slept = {} }
  loop.set_clock(function() return clock.t end, function(ms)
    clock.slept[#clock.slept + 1] = ms
    clock.t = clock.t + ms
  end)
end

-- Promise settled by a timer, to get genuinely asynchronous settlement.
local function later(ms, value, err)
  return Promise.new(function(resolve, reject)
    loop.set_timeout(ms, function()
      if err ~= nil then reject(err) else resolve(value) end
    end)
  end)
end

local function push(log, x)
  log[#log + 1] = x
end

describe("msal.promise", function()
  local unhandled

  before_each(function()
    loop.reset()
    install_clock()
    unhandled = {}
    Promise.on_unhandled = function(err, p)
      unhandled[#unhandled + 1] = { err = err, p = p }
    end
  end)

  after_each(function()
    loop.reset()
    Promise.on_unhandled = default_on_unhandled
  end)

  describe("ordering", function()
    it("never runs callbacks synchronously, even on settled promises", function()
      local log = {}
      Promise.resolve(1):next(function() push(log, "ok") end)
      Promise.reject("e"):catch(function() push(log, "err") end)
      push(log, "sync")
      assert.same({ "sync" }, log)
      loop.run()
      assert.same({ "sync", "ok", "err" }, log)
    end)

    it("runs callbacks in registration order across promises", function()
      local log = {}
      local a, b = Promise.resolve("a"), Promise.resolve("b")
      a:next(function(v) push(log, v .. 1) end)
      b:next(function(v) push(log, v .. 1) end)
      a:next(function(v) push(log, v .. 2) end)
      loop.run()
      assert.same({ "a1", "b1", "a2" }, log)
    end)

    it("runs the executor synchronously and callbacks after resolve", function()
      local log, resolve = {}, nil
      local p = Promise.new(function(res)
        push(log, "executor")
        resolve = res
      end)
      p:next(function(v) push(log, "first " .. v) end)
      p:next(function(v) push(log, "second " .. v) end)
      push(log, "sync")
      resolve("x")
      push(log, "resolved")
      loop.run()
      assert.same({ "executor", "sync", "resolved", "first x", "second x" }, log)
    end)
  end)

  describe("chaining", function()
    it("fulfilled(v) is settled at once and chains like resolve(v)", function()
      local t = {}
      local p = Promise.fulfilled(t)
      assert.equal("fulfilled", p:state())
      assert.is_true(rawequal(t, p:await()))
      local seen
      p:next(function(v) seen = v end)
      assert.is_nil(seen) -- callbacks still run from the loop
      Promise.run()
      assert.is_true(rawequal(t, seen))
    end)

    it("passes values through next", function()
      local p = Promise.resolve(1)
        :next(function(v) return v + 1 end)
        :next(function(v) return v * 10 end)
      assert.equal(20, p:await())
    end)

    it("rejects with the very error object a callback throws", function()
      local err = { code = "boom" }
      local p = Promise.resolve():next(function() error(err) end)
      local v, e = p:await()
      assert.is_nil(v)
      assert.is_true(rawequal(err, e))
      assert.equal("rejected", p:state())
    end)

    it("skips on_ok for rejections and on_err for values", function()
      local err = {}
      local _, e = Promise.reject(err):next(function() return "no" end):await()
      assert.is_true(rawequal(err, e))
      assert.equal(5, Promise.resolve(5):catch(function() return "no" end):await())
    end)

    it("recovers with catch", function()
      local p = Promise.reject("x"):catch(function(e) return e .. "!" end)
      assert.same({ "x!" }, { p:await() })
    end)

    it("ignores non-function callbacks", function()
      assert.equal(3, Promise.resolve(3):next("nope", 42):await())
    end)

    it("adopts a promise returned from a callback", function()
      local p = Promise.resolve():next(function() return later(10, "inner") end)
      assert.equal("inner", p:await())
      local err = {}
      local _, e = Promise.resolve():next(function() return later(10, nil, err) end):await()
      assert.is_true(rawequal(err, e))
    end)

    it("adopts a promise passed to resolve", function()
      local p = Promise.new(function(resolve) resolve(later(5, "adopted")) end)
      assert.equal("pending", p:state())
      assert.equal("adopted", p:await())
    end)

    it("treats foreign tables with a next method as plain values", function()
      local t = { next = function() error("must not be called") end }
      assert.equal(t, Promise.resolve():next(function() return t end):await())
    end)

    it("rejects a promise resolved with itself", function()
      local p
      p = Promise.resolve():next(function() return p end)
      local v, e = p:await()
      assert.is_nil(v)
      assert.matches("TypeError", e)
    end)
  end)

  describe("finally", function()
    it("is called without arguments and passes the value through", function()
      local nargs
      local p = Promise.resolve("v"):finally(function(...) nargs = select("#", ...) end)
      assert.equal("v", p:await())
      assert.equal(0, nargs)
    end)

    it("passes the error through", function()
      local err, called = {}, false
      local _, e = Promise.reject(err):finally(function() called = true end):await()
      assert.is_true(called)
      assert.is_true(rawequal(err, e))
    end)

    it("overrides the outcome when fn throws", function()
      local err = {}
      local _, e = Promise.resolve("v"):finally(function() error(err) end):await()
      assert.is_true(rawequal(err, e))
      _, e = Promise.reject("old"):finally(function() error(err) end):await()
      assert.is_true(rawequal(err, e))
    end)

    it("waits for a returned promise, keeping the original value", function()
      local log = {}
      local p = Promise.resolve("v"):finally(function()
        return later(10, "ignored"):next(function() push(log, "cleanup") end)
      end)
      assert.equal("v", p:await())
      assert.same({ "cleanup" }, log)
      assert.equal(10, clock.t)
    end)

    it("rejects when the returned promise rejects", function()
      local _, e = Promise.resolve("v"):finally(function() return later(1, nil, "bad") end):await()
      assert.equal("bad", e)
    end)
  end)

  describe("values", function()
    it("fulfils with nil", function()
      local p = Promise.resolve(nil)
      local seen = "unset"
      p:next(function(v) seen = v end)
      loop.run()
      assert.is_nil(seen)
      assert.equal("fulfilled", p:state())
      local v, e = p:await()
      assert.is_nil(v)
      assert.is_nil(e)
    end)

    it("fulfils with false", function()
      local p = Promise.new(function(resolve) resolve(false) end)
      assert.equal("fulfilled", p:state())
      assert.is_false(p:next(function(v) return v end):await())
    end)

    it("only honours the first resolve or reject", function()
      local p = Promise.new(function(resolve, reject)
        resolve(1)
        reject("late")
        resolve(2)
      end)
      assert.equal(1, p:await())
    end)

    it("rejects when the executor throws", function()
      local err = {}
      local _, e = Promise.new(function() error(err) end):await()
      assert.is_true(rawequal(err, e))
    end)

    it("recognises its own promises", function()
      assert.is_true(Promise.is_promise(Promise.resolve()))
      assert.is_false(Promise.is_promise({ next = function() end }))
      assert.is_false(Promise.is_promise(nil))
      assert.is_false(Promise.is_promise("str"))
    end)

    it("returns a promise given to Promise.resolve unchanged", function()
      local p = later(1, 1)
      assert.equal(p, Promise.resolve(p))
    end)
  end)

  describe("combinators", function()
    it("all keeps input order, not settlement order", function()
      local p = Promise.all({ later(30, "a"), later(10, "b"), "c", later(20, "d") })
      assert.same({ n = 4, "a", "b", "c", "d" }, p:await())
    end)

    it("all keeps nil values and the count", function()
      local r = Promise.all({ n = 4, Promise.resolve(nil), nil, later(5, 3), nil }):await()
      assert.equal(4, r.n)
      assert.is_nil(r[1])
      assert.is_nil(r[2])
      assert.equal(3, r[3])
      assert.is_nil(r[4])
    end)

    it("all of nothing fulfils with an empty list", function()
      assert.same({ n = 0 }, Promise.all({}):await())
    end)

    it("all rejects with the first rejection", function()
      local first = {}
      local p = Promise.all({ later(30, nil, "second"), later(10, nil, first), later(50, "ok") })
      local v, e = p:await()
      assert.is_nil(v)
      assert.is_true(rawequal(first, e))
      loop.run()
      assert.same({}, unhandled)
    end)

    it("race settles like the first to settle", function()
      assert.equal("fast", Promise.race({ later(20, "slow"), later(5, "fast") }):await())
      local _, e = Promise.race({ later(20, "slow"), later(5, nil, "err") }):await()
      assert.equal("err", e)
    end)

    it("all_settled reports every outcome", function()
      local r = Promise.all_settled({ later(5, "v"), later(1, nil, "e"), 7 }):await()
      assert.same({
        n = 3,
        { status = "fulfilled", value = "v" },
        { status = "rejected", reason = "e" },
        { status = "fulfilled", value = 7 },
      }, r)
    end)
  end)

  describe("await outside async", function()
    it("returns the value, or nil and the error", function()
      assert.equal(42, Promise.resolve(42):await())
      local v, e = Promise.reject("bad"):await()
      assert.is_nil(v)
      assert.equal("bad", e)
    end)

    it("turns the loop until a pending promise settles", function()
      assert.equal("done", later(250, "done"):await())
      assert.equal(250, clock.t)
    end)

    it("does not turn the loop for a settled promise", function()
      local ran = false
      loop.defer(function() ran = true end)
      assert.equal(1, Promise.resolve(1):await())
      assert.is_false(ran)
    end)

    it("runs the loop from a coroutine not started by async", function()
      local co = coroutine.create(function() return later(10, "v"):await() end)
      local ok, v = coroutine.resume(co)
      assert.is_true(ok)
      assert.equal("v", v)
      assert.equal("dead", coroutine.status(co))
    end)

    it("raises instead of hanging when nothing can settle the promise", function()
      local ok, err = pcall(function() return Promise.new(function() end):await() end)
      assert.is_false(ok)
      assert.matches("deadlock: promise can never settle", err, 1, true)
    end)
  end)

  describe("async", function()
    it("suspends in await until the promise settles", function()
      local log = {}
      local p = Promise.async(function()
        push(log, "start")
        local v = later(50, "v"):next(function(x)
          push(log, "timer")
          return x
        end):await()
        push(log, "after " .. v)
        return v .. "!"
      end)
      push(log, "returned")
      -- Had await turned the loop itself, timer and after would precede this.
      assert.same({ "start", "returned" }, log)
      assert.equal("pending", p:state())
      assert.equal("v!", p:await())
      assert.same({ "start", "returned", "timer", "after v" }, log)
      assert.equal(50, clock.t)
    end)

    it("passes arguments and returns only the first result", function()
      local p = Promise.async(function(a, b) return a + b, "dropped" end, 2, 3)
      assert.same({ 5 }, { p:await() })
    end)

    it("gets nil and the error from a rejected await", function()
      local err = {}
      local p = Promise.async(function()
        local v, e = later(5, nil, err):await()
        return { v = v, e = e }
      end)
      local r = p:await()
      assert.is_nil(r.v)
      assert.is_true(rawequal(err, r.e))
    end)

    it("rejects with the error the body throws", function()
      local err = {}
      local p = Promise.async(function()
        later(5, 1):await()
        error(err)
      end)
      local _, e = p:await()
      assert.is_true(rawequal(err, e))
    end)

    it("adopts a promise returned by the body", function()
      assert.equal("x", Promise.async(function() return later(5, "x") end):await())
    end)

    it("nests", function()
      local log = {}
      local outer = Promise.async(function()
        push(log, "outer start")
        local a = Promise.async(function()
          push(log, "inner a")
          return later(20, "a"):await()
        end)
        local b = Promise.async(function()
          push(log, "inner b")
          local v = later(10, "b"):await()
          push(log, "b woke")
          return v
        end)
        local va = a:await()
        push(log, "a done")
        return va .. b:await()
      end)
      assert.equal("ab", outer:await())
      assert.same({ "outer start", "inner a", "inner b", "b woke", "a done" }, log)
      assert.equal(20, clock.t)
    end)

    it("returns at once when awaiting a settled promise", function()
      local log = {}
      Promise.async(function()
        push(log, Promise.resolve("now"):await())
      end)
      push(log, "after async")
      assert.same({ "now", "after async" }, log)
    end)
  end)

  describe("unhandled rejections", function()
    it("reports an unhandled rejection once", function()
      local p = Promise.reject("boom")
      assert.same({}, unhandled)
      loop.run()
      loop.defer(function() end)
      loop.run()
      assert.equal(1, #unhandled)
      assert.equal("boom", unhandled[1].err)
      assert.equal(p, unhandled[1].p)
    end)

    it("reports the end of a chain, not its intermediate links", function()
      local err = {}
      local last = Promise.resolve():next(function() error(err) end):next(function() end)
      loop.run()
      assert.equal(1, #unhandled)
      assert.is_true(rawequal(err, unhandled[1].err))
      assert.equal(last, unhandled[1].p)
    end)

    it("reports a failing async nobody awaits", function()
      Promise.async(function() error("async boom", 0) end)
      loop.run()
      assert.equal(1, #unhandled)
      assert.equal("async boom", unhandled[1].err)
    end)

    it("does not report rejections handled later in the same turn", function()
      local p = Promise.reject("a")
      local q = Promise.reject("b")
      p:catch(function() end)
      -- q gets its handler from a callback queued after its rejection.
      Promise.resolve():next(function() q:catch(function() end) end)
      loop.run()
      assert.same({}, unhandled)
    end)

    it("does not report rejections consumed by await", function()
      Promise.reject("x"):await()
      Promise.async(function() later(1, nil, "y"):await() end)
      loop.run()
      assert.same({}, unhandled)
    end)

    it("writes one line to stderr by default", function()
      Promise.on_unhandled = default_on_unhandled
      local real = io.stderr
      local out = {}
      -- io.stderr is a field, so a stand-in captures the default hook's write.
      io.stderr = { write = function(_, ...) for _, s in ipairs({ ... }) do push(out, s) end end }
      local ok, err = pcall(function()
        Promise.reject("loud")
        loop.run()
      end)
      io.stderr = real
      assert.is_true(ok, err)
      assert.equal("msal: unhandled promise rejection: loud\n", table.concat(out))
    end)
  end)

  describe("fast path", function()
    it("resolve + await leaves the loop untouched and allocates only the promise", function()
      for _ = 1, 100 do Promise.resolve(1):await() end -- warm up
      collectgarbage("collect")
      collectgarbage("stop")
      local before = collectgarbage("count")
      local N = 1000
      for i = 1, N do Promise.resolve(i):await() end
      local per_call = (collectgarbage("count") - before) * 1024 / N
      collectgarbage("restart")
      assert.is_false(loop.pending())
      -- A two-field table is ~104-112 bytes; any extra table or closure
      -- would push it past the bound.
      assert.is_true(per_call < 150, "bytes per resolve+await: " .. per_call)
    end)
  end)
end)

describe("msal.loop", function()
  before_each(function()
    loop.reset()
    install_clock()
  end)

  after_each(function()
    loop.reset()
  end)

  it("runs deferred jobs FIFO, including jobs queued while draining", function()
    local log = {}
    loop.defer(function()
      push(log, 1)
      loop.defer(function() push(log, 3) end)
    end)
    loop.defer(function(a, b) push(log, a .. b) end, 2, "!")
    assert.is_true(loop.step(0))
    assert.same({ 1, "2!", 3 }, log)
    assert.is_false(loop.step(0))
  end)

  it("fires timers in deadline order, ties in creation order", function()
    local log = {}
    loop.set_timeout(30, function() push(log, "30") end)
    loop.set_timeout(10, function() push(log, "10a") end)
    loop.set_timeout(20, function() push(log, "20") end)
    loop.set_timeout(10, function() push(log, "10b") end)
    loop.run()
    assert.same({ "10a", "10b", "20", "30" }, log)
    assert.equal(30, clock.t)
    -- It slept until each deadline instead of polling.
    assert.same({ 10, 10, 10 }, clock.slept)
  end)

  it("does not fire timers before their deadline", function()
    local fired = false
    loop.set_timeout(10, function() fired = true end)
    assert.is_false(loop.step(0))
    assert.is_false(fired)
    clock.t = 10
    assert.is_true(loop.step(0))
    assert.is_true(fired)
  end)

  it("drains promise callbacks between timers", function()
    local log = {}
    loop.set_timeout(5, function()
      push(log, "t1")
      Promise.resolve():next(function() push(log, "cb") end)
    end)
    loop.set_timeout(5, function() push(log, "t2") end)
    loop.run()
    assert.same({ "t1", "cb", "t2" }, log)
  end)

  it("cancels timers, which then do not keep the loop alive", function()
    local log = {}
    local t = loop.set_timeout(1000, function() push(log, "cancelled") end)
    loop.set_timeout(5, function() push(log, "kept") end)
    t:close()
    t:close()
    loop.run()
    assert.same({ "kept" }, log)
    assert.equal(5, clock.t)
    assert.is_false(loop.pending())
  end)

  it("defers a timer armed by a due timer to the next turn", function()
    local n = 0
    local function again()
      n = n + 1
      loop.set_timeout(0, again)
    end
    loop.set_timeout(0, again)
    loop.step(0)
    assert.equal(2, n) -- one in the first pass, one in the pass after I/O
  end)

  it("run_until raises on deadlock instead of hanging", function()
    local ok, err = pcall(loop.run_until, function() return false end)
    assert.is_false(ok)
    assert.matches("deadlock: promise can never settle", err, 1, true)
  end)

  it("run_until stops as soon as the predicate holds", function()
    local done = false
    loop.set_timeout(10, function() done = true end)
    local late = false
    loop.set_timeout(20, function() late = true end)
    loop.run_until(function() return done end)
    assert.is_false(late)
    assert.is_true(loop.pending())
  end)

  it("polls I/O sources with the time left until the next timer", function()
    local waits = {}
    local src = { busy = true }
    function src:pending() return self.busy end
    function src:step(timeout_ms)
      waits[#waits + 1] = timeout_ms
      clock.t = clock.t + timeout_ms
      if #waits == 2 then self.busy = false end
      return false
    end
    loop.add_source(src)
    loop.add_source(src)
    loop.set_timeout(40, function() end)
    loop.run()
    -- First wait bounded by the timer; then no timer left, so a bounded default.
    assert.equal(40, waits[1])
    assert.is_true(waits[2] > 0 and waits[2] < math.huge)
    assert.same({}, clock.slept) -- the source waited; the loop never slept
    loop.remove_source(src)
    src.busy = true
    assert.is_false(loop.pending())
  end)

  it("counts a pending source as work for run_until", function()
    local p, resolve = nil, nil
    p = Promise.new(function(res) resolve = res end)
    local src = {}
    function src:pending() return p:state() == "pending" end
    function src:step()
      resolve("from io")
      return true
    end
    loop.add_source(src)
    assert.equal("from io", p:await())
  end)

  it("hands jobs to a host scheduler", function()
    local queued = {}
    loop.set_scheduler(function(fn) queued[#queued + 1] = fn end)
    local seen
    Promise.resolve("v"):next(function(v) seen = v end)
    assert.equal(1, #queued)
    assert.is_nil(seen)
    queued[1]()
    assert.equal("v", seen)
  end)

  it("reads msal.core's monotonic clock by default, else os.time", function()
    loop.reset()
    local has_core, core = pcall(require, "msal.core")
    local now = loop.now_ms()
    local ref = has_core and core.now_ms() or os.time() * 1000
    assert.is_number(now)
    assert.is_true(math.abs(now - ref) <= 2000)
  end)
end)

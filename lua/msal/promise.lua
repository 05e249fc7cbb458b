--- Promises/A+ over `msal.loop`, with coroutine-based `await`.
--
-- `then` is a Lua keyword, so the method is called `next`. Callbacks always
-- run from the loop, never synchronously. `nil` and `false` are ordinary
-- values. Rejection reasons are kept as-is (tables stay the same table).
--
-- A promise is one table: `_state`, `_value`, and only when needed
-- `_handlers` (reactions waiting for settlement), `_handled` (someone
-- listens, so a rejection is not reported), and `_on_ok`/`_on_err` (the
-- callbacks that will settle this promise when it was made by `next`).
-- @module msal.promise
local loop = require("msal.loop")

local PENDING, FULFILLED, REJECTED = "pending", "fulfilled", "rejected"
local SELF_RESOLUTION = "TypeError: a promise cannot be resolved with itself"

local Promise = {}
local methods = {}
local mt = { __index = methods }

-- Coroutines started by Promise.async, mapped to the promise they settle.
-- Weak keys: a coroutine awaiting a promise that never settles must be
-- collectable together with that promise.
local asyncs = setmetatable({}, { __mode = "k" })

-- The async coroutine we resumed and whose body is running right now.
-- `await` yields only when called directly from it: not from a coroutine
-- the user created inside it, and not from callbacks the loop runs while
-- that coroutine happens to be on the stack.
local current = nil

local isyieldable = coroutine.isyieldable
local settle, resolve, react, resume

local function add_handler(p, h)
  p._handled = true
  if p._state == PENDING then
    local hs = p._handlers
    if hs then hs[#hs + 1] = h else p._handlers = { h } end
  else
    loop.defer(react, p, h)
  end
end

local function report_unhandled(p)
  if not p._handled then Promise.on_unhandled(p._value, p) end
end

function settle(p, state, value)
  if p._state ~= PENDING then return end
  p._state, p._value = state, value
  local hs = p._handlers
  if hs then
    p._handlers = nil
    for i = 1, #hs do loop.defer(react, p, hs[i]) end
  elseif state == REJECTED and not p._handled then
    -- Checked once the job queue drains, so handlers attached later in
    -- the same turn still count.
    loop.on_idle(report_unhandled, p)
  end
end

-- Promise Resolution Procedure (A+ 2.3), restricted to our own promises:
-- foreign tables with a `next` method are plain values, not thenables.
function resolve(p, x)
  if x == p then return settle(p, REJECTED, SELF_RESOLUTION) end
  if getmetatable(x) ~= mt then return settle(p, FULFILLED, x) end
  if x._state == PENDING then
    -- p has no callbacks of its own (react clears them before running
    -- them), so as a handler of x it simply mirrors x.
    add_handler(x, p)
  else
    x._handled = true
    settle(p, x._state, x._value)
  end
end

-- Delivers settled promise p to one reaction h: a promise made by `next`,
-- or an async coroutine suspended in `await`.
function react(p, h)
  local state, value = p._state, p._value
  if type(h) == "thread" then return resume(h, state == FULFILLED, value) end
  local cb
  if state == FULFILLED then cb = h._on_ok else cb = h._on_err end
  h._on_ok, h._on_err = nil, nil
  if cb == nil then return settle(h, state, value) end
  local prev = current
  current = nil
  local ok, r = pcall(cb, value)
  current = prev
  if ok then resolve(h, r) else settle(h, REJECTED, r) end
end

-- The marker an async body returns first when fn raised (see body).
local RAISED = {}

function resume(co, ...)
  local prev = current
  current = co
  local ok, r, raised = coroutine.resume(co, ...)
  current = prev
  if not ok then
    settle(asyncs[co], REJECTED, r)
  elseif coroutine.status(co) == "dead" then
    if r == RAISED then settle(asyncs[co], REJECTED, raised) else resolve(asyncs[co], r) end
  end
  -- Otherwise it is suspended in await and already registered as a handler.
end

-- An async body catches what fn raises, so the coroutine always ends by
-- returning: in nginx a coroutine that dies with an error while light
-- threads it started were running leaves its request unfinished (the
-- response never goes out), where one that returns does not.
local function body(fn, ...)
  local ok, r = pcall(fn, ...)
  if ok then return r end
  return RAISED, r
end

local function new_pending()
  return setmetatable({ _state = PENDING }, mt)
end

--- Create a promise settled by `executor(resolve, reject)`.
-- The executor runs synchronously; if it throws, the promise rejects with
-- the thrown value. Only the first resolve/reject call counts.
-- @tparam function executor
-- @treturn Promise
function Promise.new(executor)
  local p = new_pending()
  local done = false
  local function on_resolve(v)
    if done then return end
    done = true
    resolve(p, v)
  end
  local function on_reject(e)
    if done then return end
    done = true
    settle(p, REJECTED, e)
  end
  local ok, err = pcall(executor, on_resolve, on_reject)
  if not ok then on_reject(err) end
  return p
end

--- A promise fulfilled with `v` (or `v` itself when it is a promise).
-- @tparam any v
-- @treturn Promise
function Promise.resolve(v)
  if getmetatable(v) == mt then return v end
  return Promise.fulfilled(v)
end

--- A promise fulfilled with `v`, which the caller knows is not a promise:
-- the cache-hit path, which saves resolve's metatable check (a C call).
-- @tparam any v any value but a promise
-- @treturn Promise
function Promise.fulfilled(v)
  return setmetatable({ _state = FULFILLED, _value = v }, mt)
end

--- A promise rejected with `e`.
-- @tparam any e rejection reason, kept as-is
-- @treturn Promise
function Promise.reject(e)
  local p = setmetatable({ _state = REJECTED, _value = e }, mt)
  loop.on_idle(report_unhandled, p)
  return p
end

--- Whether `x` is a promise created by this module.
-- @tparam any x
-- @treturn boolean
function Promise.is_promise(x)
  return getmetatable(x) == mt
end

--- Called with `(err, p)` for a rejected promise that has no handler once
-- the job queue has drained. Replace it to log differently or to fail
-- tests; the default prints one line to stderr.
-- @tparam any err rejection reason
-- @tparam Promise p
function Promise.on_unhandled(err, p) -- luacheck: no unused args
  io.stderr:write("msal: unhandled promise rejection: ", tostring(err), "\n")
end

--- Chain callbacks (Promises/A+ `then`).
-- Each callback receives the value or reason; its return value fulfills the
-- returned promise (a returned promise is adopted) and an error it throws
-- rejects it. A missing callback passes the outcome through.
-- @tparam[opt] function on_ok
-- @tparam[opt] function on_err
-- @treturn Promise
function methods:next(on_ok, on_err)
  local child = new_pending()
  if type(on_ok) == "function" then child._on_ok = on_ok end
  if type(on_err) == "function" then child._on_err = on_err end
  add_handler(self, child)
  return child
end

--- Handle a rejection; shorthand for `p:next(nil, fn)`.
-- @tparam function fn `(err) -> value`
-- @treturn Promise
function methods:catch(fn)
  return self:next(nil, fn)
end

--- Run `fn()` on either outcome, then pass the outcome through.
-- If fn throws or returns a promise that rejects, the result rejects with
-- that error instead; a returned promise is waited for.
-- @tparam function fn called without arguments
-- @treturn Promise
function methods:finally(fn)
  return self:next(function(v)
    local r = fn()
    if getmetatable(r) == mt then
      return r:next(function() return v end)
    end
    return v
  end, function(e)
    local r = fn()
    if getmetatable(r) == mt then
      return r:next(function() error(e, 0) end)
    end
    error(e, 0)
  end)
end

--- Current state.
-- @treturn string "pending", "fulfilled" or "rejected"
function methods:state()
  return self._state
end

-- The outcome of a settled promise: its value, or nil and its reason.
local function outcome(self)
  if self._state == FULFILLED then return self._value end
  self._handled = true
  return nil, self._value
end

-- await on a pending promise. Apart from await so that await itself makes
-- no closure: LuaJIT cannot compile a return that must close upvalues, and
-- a cache hit (a settled promise) would leave its compiled path there.
local function await_pending(self)
  local co = coroutine.running()
  if co ~= nil and co == current and (not isyieldable or isyieldable()) then
    add_handler(self, co)
    local ok, v = coroutine.yield()
    if ok then return v end
    return nil, v
  end
  self._handled = true
  if loop.host_waits() then
    -- The host's wait may yield this coroutine (Neovim): the async body
    -- that resumed it, if any, is still the one running when control comes
    -- back there, so `current` must stay as it is.
    loop.wait_for(self)
    return outcome(self)
  end
  -- Loop jobs run here must not mistake themselves for the async body.
  local prev = current
  current = nil
  local ok, err = pcall(loop.wait_for, self, function()
    return self._state ~= PENDING
  end)
  current = prev
  if not ok then error(err, 0) end
  return outcome(self)
end

--- Wait for the promise and return its outcome.
-- Inside `Promise.async` this suspends the coroutine until settlement;
-- anywhere else it waits as the loop's host says (`msal.loop.set_host`):
-- standalone, it turns the loop until the promise settles (raising
-- "deadlock: promise can never settle" if nothing could settle it).
-- A settled promise returns at once without touching the loop.
-- @treturn any the value, or nil when the promise rejected
-- @treturn any the rejection reason, when it rejected
function methods:await()
  if self._state == PENDING then return await_pending(self) end
  return outcome(self)
end

--- Run `fn(...)` in a new coroutine in which `await` suspends.
-- The body starts immediately and runs until its first pending `await`.
-- @tparam function fn
-- @tparam any ... arguments for fn
-- @treturn Promise fulfilled with fn's first return value (a returned
-- promise is adopted), or rejected with the error fn throws
function Promise.async(fn, ...)
  local p = new_pending()
  local co = coroutine.create(body)
  asyncs[co] = p
  resume(co, fn, ...)
  return p
end

--- Wait for all promises (plain values count as fulfilled).
-- @tparam table list array of promises/values; `list.n` is honoured so
-- nil holes are allowed
-- @treturn Promise fulfilled with `{n = count, ...values in order}`, or
-- rejected with the first rejection
function Promise.all(list)
  local n = list.n or #list
  return Promise.new(function(on_resolve, on_reject)
    local results, remaining = { n = n }, n
    local function fulfill_one(i, v)
      results[i] = v
      remaining = remaining - 1
      if remaining == 0 then on_resolve(results) end
    end
    if n == 0 then return on_resolve(results) end
    for i = 1, n do
      local item = list[i]
      if getmetatable(item) == mt then
        item:next(function(v) fulfill_one(i, v) end, on_reject)
      else
        fulfill_one(i, item)
      end
    end
  end)
end

--- Settle like the first of `list` to settle. An empty list never settles.
-- @tparam table list array of promises/values (`list.n` honoured)
-- @treturn Promise
function Promise.race(list)
  local n = list.n or #list
  return Promise.new(function(on_resolve, on_reject)
    for i = 1, n do
      Promise.resolve(list[i]):next(on_resolve, on_reject)
    end
  end)
end

--- Wait for every promise to settle, whatever the outcome.
-- @tparam table list array of promises/values (`list.n` honoured)
-- @treturn Promise fulfilled with `{n = count, ...}` of
-- `{status = "fulfilled", value = v}` / `{status = "rejected", reason = e}`
function Promise.all_settled(list)
  local n = list.n or #list
  local wrapped = { n = n }
  for i = 1, n do
    wrapped[i] = Promise.resolve(list[i]):next(function(v)
      return { status = FULFILLED, value = v }
    end, function(e)
      return { status = REJECTED, reason = e }
    end)
  end
  return Promise.all(wrapped)
end

--- Turn the loop until no work is left (`msal.loop.run`).
function Promise.run()
  return loop.run()
end

return Promise

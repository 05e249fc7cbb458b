--- The library's event loop: deferred jobs, timers and I/O sources (the C
-- core's libcurl multi handles and loopback listeners).
--
-- Standalone (scripts, the `msal` command) the loop runs itself: a
-- top-level `await` turns it until its promise settles. A host with its own
-- loop takes over what it must with `set_host` (jobs, timers, how `await`
-- waits) and drives the rest through the loop's pollable face, the shape of
-- cqueues' objects: watch `pollfd()` for `events()`, call `step(0)` when it
-- is ready or `timeout()` has passed. `msal.nvim` and `msal.openresty` are
-- two such hosts; cqueues, luv or copas would be a few lines more.
--
-- One turn (`step`) drains the job queue, then the idle hooks, then runs the
-- timers that are due (draining jobs after each one, so promise callbacks
-- settle between timers), then polls I/O sources.
-- @module msal.loop
local core = require("msal.core")

local loop = {}

-- Upper bound for one blocking wait when only I/O sources are pending, so a
-- source without its own wake-up still gets re-polled regularly.
local SOURCE_WAIT_MS = 100
-- A busy source without a pollfd cannot wake a wait: poll it this often.
local NO_FD_WAIT_MS = 10

-- Jobs live in parallel arrays so that queueing one allocates no table;
-- promise settlement queues a job per callback and is on the hot path.
local q_fn, q_a, q_b = {}, {}, {}
local q_head, q_tail = 1, 0
local draining = false

-- Idle hooks run once the job queue is empty (used to report unhandled
-- rejections only after every handler had its chance to attach).
local idle_fn, idle_arg = {}, {}

local timers = {}   -- sorted by deadline; equal deadlines keep creation order
local timer_seq = 0
local sources = {}
local set           -- core.loop.poll_set() over the sources' pollfds, on first use

-- What a host took over (see set_host); every field optional.
local NO_HOST = {}
local host = NO_HOST

local now_fn, sleep_fn = core.now_ms, core.sleep_ms

--- Current time in milliseconds from the loop clock (msal.core's
-- monotonic clock unless `set_clock` replaced it).
-- @treturn number milliseconds; only differences are meaningful
function loop.now_ms()
  return now_fn()
end

--- Replace the clock, e.g. with a virtual clock in tests.
-- Pass nil for either function to get the default back.
-- @tparam[opt] function now_ms `() -> ms`
-- @tparam[opt] function sleep_ms `(ms)`, blocks for about `ms` milliseconds
function loop.set_clock(now_ms, sleep_ms)
  now_fn, sleep_fn = now_ms or core.now_ms, sleep_ms or core.sleep_ms
end

-- The host learns that step has work sooner than it thought (a job, a
-- timer, a request just started), unless a step is running and will see it.
local function wake()
  local w = host.wake
  if w and not draining then w() end
end

--- Queue `fn(a, b)` to run on the next turn, after jobs already queued.
-- Arguments are passed through so callers need not allocate a closure.
-- @tparam function fn
-- @param[opt] a
-- @param[opt] b
function loop.defer(fn, a, b)
  local defer = host.defer
  if defer then
    if a == nil and b == nil then
      defer(fn)
    else
      defer(function() fn(a, b) end)
    end
    return
  end
  local i = q_tail + 1
  q_tail = i
  q_fn[i], q_a[i], q_b[i] = fn, a, b
  if i == q_head then wake() end
end

--- Run `fn(arg)` once the job queue has drained.
-- When a host delivers the jobs the loop cannot see its queue, so this
-- degrades to `defer`.
-- @tparam function fn
-- @param[opt] arg
function loop.on_idle(fn, arg)
  if host.defer then return loop.defer(fn, arg) end
  local i = #idle_fn + 1
  idle_fn[i], idle_arg[i] = fn, arg
  if i == 1 then wake() end
end

-- Runs queued jobs (including those queued meanwhile), then idle hooks,
-- until both are empty. Safe to re-enter from a job (nested run_until):
-- all cursors are module state, so the outer pass just sees less work.
local function drain()
  local ran, outer = false, draining
  draining = true
  while true do
    while q_head <= q_tail do
      local i = q_head
      local fn, a, b = q_fn[i], q_a[i], q_b[i]
      q_fn[i], q_a[i], q_b[i] = nil, nil, nil
      q_head = i + 1
      ran = true
      local ok, err = pcall(fn, a, b)
      if not ok then
        draining = outer
        error(err, 0)
      end
    end
    q_head, q_tail = 1, 0
    if idle_fn[1] == nil then
      draining = outer
      return ran
    end
    -- Swap first: hooks added by these hooks wait for the next idle point.
    local fns, args = idle_fn, idle_arg
    idle_fn, idle_arg = {}, {}
    for i = 1, #fns do fns[i](args[i]) end
    ran = true
  end
end

local Timer = {}
Timer.__index = Timer

--- Cancel the timer; does nothing if it already fired or was closed.
function Timer:close()
  for i = 1, #timers do
    if timers[i] == self then
      table.remove(timers, i)
      return
    end
  end
end

--- Call `fn()` after `ms` milliseconds (on the host's timers when a host
-- took them over: nothing ever blocks a host in a sleep).
-- @tparam number ms delay; negative or nil means as soon as possible
-- @tparam function fn
-- @treturn table timer with a `close()` method to cancel it
function loop.set_timeout(ms, fn)
  local host_timer = host.set_timeout
  if host_timer then return host_timer(math.max(ms or 0, 0), fn) end
  timer_seq = timer_seq + 1
  local t = setmetatable({
    deadline = loop.now_ms() + math.max(ms or 0, 0),
    fn = fn,
    seq = timer_seq,
  }, Timer)
  -- Insert after every timer with deadline <= ours so ties stay FIFO.
  local lo, hi = 1, #timers + 1
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if timers[mid].deadline <= t.deadline then lo = mid + 1 else hi = mid end
  end
  table.insert(timers, lo, t)
  if lo == 1 then wake() end
  return t
end

local function run_due_timers()
  local now, last, ran = loop.now_ms(), timer_seq, false
  while true do
    local t = timers[1]
    -- Timers armed by these callbacks wait for the next turn, so a 0 ms
    -- timer that re-arms itself cannot starve I/O.
    if not t or t.deadline > now or t.seq > last then return ran end
    table.remove(timers, 1)
    ran = true
    t.fn()
    drain()
  end
end

--- Whether anything could still run: jobs, idle hooks, timers or busy sources.
-- Work handed to a host (its jobs, its timers) is invisible here.
-- @treturn boolean
function loop.pending()
  if q_head <= q_tail or idle_fn[1] ~= nil or timers[1] ~= nil then
    return true
  end
  for i = 1, #sources do
    if sources[i]:pending() then return true end
  end
  return false
end

local function poll_set()
  if not set then set = core.loop.poll_set() end
  return set
end

--- The descriptor a host loop watches (for `events()`): readable whenever
-- one of the sources' sockets is. One descriptor for all of the loop's I/O,
-- constant for the life of the process.
-- @treturn integer fd
function loop.pollfd()
  return poll_set():pollfd()
end

--- What to watch `pollfd()` for: always "r" (readable).
-- @treturn string
function loop.events()
  return "r"
end

--- Milliseconds until `step` has work without I/O on `pollfd()`: 0 when
-- jobs are queued or a timer is due, else the nearest of the timers' and
-- the busy sources' deadlines; nil when only I/O can bring work.
-- @treturn ?number
function loop.timeout()
  if q_head <= q_tail or idle_fn[1] ~= nil then return 0 end
  local t
  if timers[1] then t = math.max(0, timers[1].deadline - loop.now_ms()) end
  for i = 1, #sources do
    local src = sources[i]
    if src:pending() then
      local s = src.pollfd and (src.timeout and src:timeout()) or NO_FD_WAIT_MS
      if s and (not t or s < t) then t = s end
    end
  end
  return t
end

--- Run one turn: all queued jobs, then due timers, then I/O.
-- If nothing was runnable, blocks up to `timeout_ms` for the next timer or
-- I/O event (never when nothing at all is pending), then runs what became
-- due. A host that drives the loop calls `step(0)`: it never blocks then.
-- @tparam[opt=0] number timeout_ms how long to block at most
-- @treturn boolean true if any job, timer or source dispatch ran
function loop.step(timeout_ms)
  local ran = drain()
  ran = run_due_timers() or ran
  local wait = 0
  if not ran and timeout_ms and timeout_ms > 0 then
    local t = timers[1]
    if t then
      wait = math.min(timeout_ms, math.max(0, t.deadline - loop.now_ms()))
    else
      wait = math.min(timeout_ms, SOURCE_WAIT_MS)
    end
  end
  local busy = {}
  for i = 1, #sources do
    local src = sources[i]
    if src and src:pending() then busy[#busy + 1] = src end
  end
  local polled = #busy > 0
  if #busy == 1 then
    if busy[1]:step(wait) then ran = true end
  elseif #busy > 1 then
    -- several sources (an HTTP request while the loopback listener waits):
    -- one wait on the set of their descriptors, so none starves the others
    if wait > 0 then
      for _, src in ipairs(busy) do
        local t = src.timeout and src:timeout()
        if t and t < wait then wait = t end
        if not src.pollfd then wait = math.min(wait, NO_FD_WAIT_MS) end
      end
      if wait > 0 then poll_set():wait(wait) end
    end
    for _, src in ipairs(busy) do
      if src:step(0) then ran = true end
    end
  end
  if not polled and wait > 0 and timers[1] then sleep_fn(wait) end
  ran = drain() or ran
  return run_due_timers() or ran
end

--- Turn the loop until `pred()` returns true.
-- @tparam function pred
-- @raise "deadlock: promise can never settle" when pred is false and no
-- work is left that could change that
function loop.run_until(pred)
  while not pred() do
    if not loop.pending() then
      error("deadlock: promise can never settle", 2)
    end
    loop.step(math.huge)
  end
end

--- How `await` waits for a pending promise outside an async coroutine:
-- the host's `wait(p)` when it set one, else the loop turns itself.
-- @tparam table p a pending promise
-- @tparam function settled `() -> boolean`
function loop.wait_for(p, settled)
  local w = host.wait
  if w then return w(p) end
  return loop.run_until(settled)
end

--- Whether a host decides how `await` waits (`set_host{wait = …}`).
-- @treturn boolean
function loop.host_waits()
  return host.wait ~= nil
end

--- Turn the loop until no work is left.
function loop.run()
  while loop.pending() do loop.step(math.huge) end
end

--- Register an I/O source polled by the loop.
-- The source needs `src:pending() -> bool` (has in-flight I/O) and
-- `src:step(timeout_ms) -> dispatched?` (waits up to timeout_ms and
-- dispatches completions); `src:pollfd()` (a descriptor readable when step
-- has socket work) and `src:timeout()` (ms until step has timer work, or
-- nil) let `step` and a host wait for it without polling.
-- @tparam table src
function loop.add_source(src)
  local known = false
  for i = 1, #sources do
    if sources[i] == src then known = true break end
  end
  if not known then
    sources[#sources + 1] = src
    if src.pollfd then poll_set():add(src:pollfd()) end
  end
  -- a source is added (again) when it starts work: the host steps soon
  wake()
end

--- Unregister an I/O source; unknown sources are ignored.
-- @tparam table src
function loop.remove_source(src)
  for i = 1, #sources do
    if sources[i] == src then
      table.remove(sources, i)
      if src.pollfd and set then set:remove(src:pollfd()) end
      return
    end
  end
end

local HOST_FIELDS = { defer = true, set_timeout = true, wait = true, wake = true }

--- Hand parts of the loop to a host's own loop. Every field is optional:
--
-- - `defer(fn)`: runs fn later, once (`vim.schedule`): jobs no longer wait
--   for `step`;
-- - `set_timeout(ms, fn) -> handle`: the host's timers (`handle:close()`
--   cancels); library waits (Retry-After, polling) never block then;
-- - `wait(p)`: how `await` waits for the pending promise p outside an async
--   coroutine; returns once p settled, or raises;
-- - `wake()`: called when `step` has new work sooner than `timeout()` said
--   (a job queued, a timer or a request started), so a host re-arms.
--
-- Pass nil to get the standalone loop back.
-- @tparam[opt] table h
function loop.set_host(h)
  if h == nil then host = NO_HOST return end
  assert(type(h) == "table", "set_host takes a table or nil")
  for k, v in pairs(h) do
    assert(HOST_FIELDS[k], "set_host: unknown field '" .. tostring(k) .. "'")
    assert(type(v) == "function", "set_host: '" .. k .. "' must be a function")
  end
  host = h
end

--- Hand job delivery alone to a host: `set_host{defer = defer_fn}`, the
-- rest kept. Pass nil to go back to the built-in queue.
-- @tparam[opt] function defer_fn `(fn)`, must call fn later, once
function loop.set_scheduler(defer_fn)
  local h = {}
  for k, v in pairs(host) do h[k] = v end
  h.defer = defer_fn
  host = next(h) and h or NO_HOST
end

--- Drop all jobs, timers, sources, the host and the custom clock.
-- Meant for test isolation.
function loop.reset()
  q_fn, q_a, q_b = {}, {}, {}
  q_head, q_tail = 1, 0
  draining = false
  idle_fn, idle_arg = {}, {}
  timers = {}
  for _, src in ipairs(sources) do
    if src.pollfd and set then set:remove(src:pollfd()) end
  end
  sources = {}
  host = NO_HOST
  now_fn, sleep_fn = core.now_ms, core.sleep_ms
end

return loop

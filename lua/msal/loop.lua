--- Minimal default event loop: deferred jobs, timers and pluggable I/O sources.
--
-- This is a pure-Lua stand-in. A C loop driving libcurl will replace the
-- internals later, so callers must only rely on the functions below.
--
-- One turn (`step`) drains the job queue, then the idle hooks, then runs the
-- timers that are due (draining jobs after each one, so promise callbacks
-- settle between timers), then polls I/O sources.
-- @module msal.loop
local loop = {}

-- Upper bound for one blocking wait when only I/O sources are pending, so a
-- source without its own wake-up still gets re-polled regularly.
local SOURCE_WAIT_MS = 100

-- Jobs live in parallel arrays so that queueing one allocates no table;
-- promise settlement queues a job per callback and is on the hot path.
local q_fn, q_a, q_b = {}, {}, {}
local q_head, q_tail = 1, 0

-- Idle hooks run once the job queue is empty (used to report unhandled
-- rejections only after every handler had its chance to attach).
local idle_fn, idle_arg = {}, {}

local timers = {}   -- sorted by deadline; equal deadlines keep creation order
local timer_seq = 0
local sources = {}
local scheduler     -- host replacement for defer (vim.schedule...), or nil

-- Clock functions are resolved lazily so a host or a test can install its
-- own before first use, and so msal.core may itself require this module.
local now_fn, sleep_fn

local function coarse_now()
  return os.time() * 1000
end

local function shell_sleep(ms)
  -- Last resort without msal.core: forks a process, but never spins the CPU.
  os.execute(("sleep %.3f"):format(ms / 1000))
end

local function load_clock()
  local ok, core = pcall(require, "msal.core")
  if not ok or type(core) ~= "table" then core = {} end
  now_fn = now_fn or core.now_ms or coarse_now
  sleep_fn = sleep_fn or core.sleep_ms or shell_sleep
end

--- Current time in milliseconds from the loop clock.
-- Uses `msal.core.now_ms` when available, else `os.time()` (1 s resolution,
-- so timers may fire up to a second late until the C core is present).
-- @treturn number milliseconds; only differences are meaningful
function loop.now_ms()
  if not now_fn then load_clock() end
  return now_fn()
end

--- Replace the clock, e.g. with a virtual clock in tests.
-- Pass nil for either function to get the default back.
-- @tparam[opt] function now_ms `() -> ms`
-- @tparam[opt] function sleep_ms `(ms)`, blocks for about `ms` milliseconds
function loop.set_clock(now_ms, sleep_ms)
  now_fn, sleep_fn = now_ms, sleep_ms
end

local function sleep(ms)
  if not sleep_fn then load_clock() end
  sleep_fn(ms)
end

--- Queue `fn(a, b)` to run on the next turn, after jobs already queued.
-- Arguments are passed through so callers need not allocate a closure.
-- @tparam function fn
-- @param[opt] a
-- @param[opt] b
function loop.defer(fn, a, b)
  if scheduler then
    if a == nil and b == nil then
      scheduler(fn)
    else
      scheduler(function() fn(a, b) end)
    end
    return
  end
  local i = q_tail + 1
  q_tail = i
  q_fn[i], q_a[i], q_b[i] = fn, a, b
end

--- Run `fn(arg)` once the job queue has drained.
-- With a host scheduler the loop cannot see the queue, so this degrades
-- to `defer`.
-- @tparam function fn
-- @param[opt] arg
function loop.on_idle(fn, arg)
  if scheduler then return loop.defer(fn, arg) end
  local i = #idle_fn + 1
  idle_fn[i], idle_arg[i] = fn, arg
end

-- Runs queued jobs (including those queued meanwhile), then idle hooks,
-- until both are empty. Safe to re-enter from a job (nested run_until):
-- all cursors are module state, so the outer pass just sees less work.
local function drain()
  local ran = false
  while true do
    while q_head <= q_tail do
      local i = q_head
      local fn, a, b = q_fn[i], q_a[i], q_b[i]
      q_fn[i], q_a[i], q_b[i] = nil, nil, nil
      q_head = i + 1
      ran = true
      fn(a, b)
    end
    q_head, q_tail = 1, 0
    if idle_fn[1] == nil then return ran end
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

--- Call `fn()` after `ms` milliseconds.
-- @tparam number ms delay; negative or nil means as soon as possible
-- @tparam function fn
-- @treturn table timer with a `close()` method to cancel it
function loop.set_timeout(ms, fn)
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
-- Work handed to a host scheduler is invisible here.
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

--- Run one turn: all queued jobs, then due timers, then I/O.
-- If nothing was runnable, blocks up to `timeout_ms` for the next timer or
-- I/O event (never when nothing at all is pending), then runs what became due.
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
    -- one poll over all their descriptors, so none starves the others
    if wait > 0 then
      local fds = {}
      for _, src in ipairs(busy) do
        local t = src.timeout and src:timeout()
        if t and t < wait then wait = t end
        if src.pollfd then fds[#fds + 1] = src:pollfd() else wait = math.min(wait, 10) end
      end
      if wait > 0 then require("msal.core").loop.wait(fds, wait) end
    end
    for _, src in ipairs(busy) do
      if src:step(0) then ran = true end
    end
  end
  if not polled and wait > 0 and timers[1] then sleep(wait) end
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

--- Turn the loop until no work is left.
function loop.run()
  while loop.pending() do loop.step(math.huge) end
end

--- Register an I/O source polled by the loop.
-- The source needs `src:pending() -> bool` (has in-flight I/O) and
-- `src:step(timeout_ms) -> dispatched?` (waits up to timeout_ms and
-- dispatches completions).
-- @tparam table src
function loop.add_source(src)
  for i = 1, #sources do
    if sources[i] == src then return end
  end
  sources[#sources + 1] = src
end

--- Unregister an I/O source; unknown sources are ignored.
-- @tparam table src
function loop.remove_source(src)
  for i = 1, #sources do
    if sources[i] == src then
      table.remove(sources, i)
      return
    end
  end
end

--- Hand job delivery to a host (`vim.schedule`, `ngx.timer.at` wrapper...).
-- The host then owns turning; a top-level `await` cannot drive it, so use
-- `async` code there. Pass nil to go back to the built-in queue.
-- @tparam[opt] function defer_fn `(fn)`, must call fn later, once
function loop.set_scheduler(defer_fn)
  scheduler = defer_fn
end

--- Drop all jobs, timers, sources, the host scheduler and the custom clock.
-- Meant for test isolation.
function loop.reset()
  q_fn, q_a, q_b = {}, {}, {}
  q_head, q_tail = 1, 0
  idle_fn, idle_arg = {}, {}
  timers = {}
  sources = {}
  scheduler = nil
  now_fn, sleep_fn = nil, nil
end

return loop

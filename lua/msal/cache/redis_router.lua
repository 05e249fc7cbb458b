--- Connections to a Redis deployment, one server or a Redis Cluster, for
-- the Redis token cache: each call goes to the node that serves its key.
--
-- A standalone server is one connection. Whether the server is a cluster
-- node is found out on the first call (nothing to configure: a cluster node
-- answers `CLUSTER SLOTS` with the slot map); in a cluster the router keeps
-- a connection per node it needed, and
-- sends each call to the owner of its key's slot (CRC16 of the key or its
-- `{hash tag}`, msal.core.redis.key_slot). A `MOVED` reply (a slot moved for
-- good: resharding, failover) updates the map and the call goes again; an
-- `ASK` reply (the slot is being migrated and the key is already on the
-- target) sends the call to the target with `ASKING` first, and later calls
-- of that slot go there too for a moment, so a WATCH/GET and the MULTI/EXEC
-- that follows meet on the same node.
--
-- A call's key is its first key: the second word of most commands, the
-- first key of EVAL/EVALSHA, and in a pipeline the first command's that has
-- one (a pipeline's commands must share a slot, as a cluster's
-- transactions must anyway). Calls without a key go to any node.
--
-- **Sessions.** Where a connection may live only as long as one piece of
-- work (OpenResty's cosockets belong to their request), `router:session(
-- connect)` gives a view that shares what the router knows of the
-- deployment (mode, slot map, ASK targets) but opens its own connections
-- with `connect`, and `session:close()` ends them (for cosockets: back to
-- nginx's keepalive pool). Without a session the router keeps its
-- connections (msal.core.redis's) across calls.
--
-- Results are msal.core.redis's: the reply, or nil, message, code. With
-- `once` (a MULTI/EXEC whose WATCH is on one connection) the router neither
-- follows a redirection nor repeats the call on a new connection: it
-- returns nil, message, "MOVED"/"ASK" or the connection's code, after
-- updating what it knows, and the caller starts over from its WATCH.
-- @module msal.cache.redis_router
local core = require("msal.core")

local rcore = core.redis
local now_ms = core.now_ms
local key_slot = rcore.key_slot

local router = {}

local Router = {}
Router.__index = Router

-- How many redirections one call follows (a slot moves once per reshard;
-- more means a cluster in turmoil, better reported than chased).
local MAX_REDIRECTS = 5
-- How long a slot's ASK target keeps its calls after the ASK.
local ASK_MS = 1000

-- Commands that name no key.
local KEYLESS = {
  MULTI = true, EXEC = true, DISCARD = true, UNWATCH = true, PING = true, ECHO = true, ASKING = true, AUTH = true,
  SELECT = true, INFO = true, CLUSTER = true, SCAN = true, KEYS = true, FLUSHALL = true, FLUSHDB = true, DBSIZE = true,
  SCRIPT = true, MONITOR = true, TIME = true, READONLY = true, READWRITE = true,
}

local function key_of(cmd)
  local name = tostring(cmd[1]):upper()
  if KEYLESS[name] then return nil end
  if name == "EVAL" or name == "EVALSHA" then
    return (tonumber(cmd[3]) or 0) > 0 and cmd[4] or nil
  end
  return cmd[2]
end

--- The key a call routes by (nil: any node).
-- @tparam string method "command" or "pipeline"
-- @param ... the call's arguments
function router.key_of(method, ...)
  if method == "pipeline" then
    for _, cmd in ipairs((...)) do
      local k = key_of(cmd)
      if k then return k end
    end
    return nil
  end
  return key_of({ ... })
end

--- A router that connects on first use.
-- @tparam table conn_opts msal.core.redis.connect's options for the seed
--   node (the other nodes get the same, with their own host and port)
-- @tparam[opt] function connect what opens a connection (default
--   msal.core.redis.connect): `connect(opts)` -> connection, or nil,
--   message, code
function router.new(conn_opts, connect)
  return setmetatable({
    opts = conn_opts,
    connect = connect, -- nil: msal.core.redis.connect, looked up per call
    seed = (conn_opts.host:find(":", 1, true) and "[" .. conn_opts.host .. "]" or conn_opts.host)
      .. ":" .. conn_opts.port,
    conns = {},       -- "host:port" -> connection
    mode = nil,       -- "standalone" or "cluster", once the first call found out
    slots = nil,      -- slot (0-based) + 1 -> "host:port", in a cluster
    asking = {},      -- slot -> {addr, until_ms}
    redirects = 0,    -- redirections followed (for tests and tuning)
  }, Router)
end

--- A view of the router with connections of its own, opened by connect:
-- what it learns of the deployment (mode, slots, ASK targets, redirect
-- count) is written to the router; its connections are not, and end with
-- `session:close()`.
-- @tparam function connect as router.new's
-- @treturn table the session (the router's methods)
function Router:session(connect)
  return setmetatable({ conns = {}, connect = connect }, { __index = self, __newindex = self })
end

--- Whether the router found a cluster (and routes by slot).
function Router:is_cluster()
  return self.mode == "cluster"
end

local function split_addr(addr)
  local host, port = addr:match("^%[(.*)%]:(%d+)$")
  if not host then host, port = addr:match("^(.*):(%d+)$") end
  return host, tonumber(port)
end

-- The open connection to addr, connecting if needed: conn, fresh; or nil,
-- message, code.
function Router:conn_to(addr)
  local c = self.conns[addr]
  if c and c:is_open() then return c, false end
  self.conns[addr] = nil
  local o = {}
  for k, v in pairs(self.opts) do o[k] = v end
  o.host, o.port = split_addr(addr)
  if self.slots then o.db = nil end -- a cluster has database 0 only
  local err, code
  c, err, code = (self.connect or rcore.connect)(o)
  if not c then return nil, err, code end
  self.conns[addr] = c
  -- a connection from a keepalive pool may have died idle: not fresh, so a
  -- failure on it is retried once on another
  return c, not c.reused
end

-- Where a slot's calls go now, and whether ASKING must go first.
function Router:route(slot)
  if slot then
    local a = self.asking[slot]
    if a then
      if now_ms() < a[2] then return a[1], true end
      self.asking[slot] = nil
    end
    if self.slots then return self.slots[slot + 1] or self.seed, false end
  end
  if self.slots then
    for addr, c in pairs(self.conns) do
      if c:is_open() then return addr, false end
    end
  end
  return self.seed, false
end

--- Reads the slot map (CLUSTER SLOTS) from a node it can reach; true, or
-- nil and why.
function Router:refresh()
  local tried, why = {}, "no node answered"
  local candidates = { self.seed }
  for addr in pairs(self.conns) do candidates[#candidates + 1] = addr end
  for _, addr in ipairs(candidates) do
    if not tried[addr] then
      tried[addr] = true
      local c, err = self:conn_to(addr)
      local ranges
      if c then ranges, err = c:command("CLUSTER", "SLOTS") end
      if type(ranges) == "table" then
        local slots = {}
        for _, r in ipairs(ranges) do
          local from, to, master = r[1], r[2], r[3]
          if type(from) == "number" and type(to) == "number" and type(master) == "table" then
            local host = master[1] ~= "" and master[1] or split_addr(addr)
            local target = (host:find(":", 1, true) and "[" .. host .. "]" or host) .. ":" .. tostring(master[2])
            for s = from, to do slots[s + 1] = target end
          end
        end
        self.slots = slots
        self.asking = {}
        return true
      end
      why = err or why
    end
  end
  return nil, why
end

-- The first MOVED or ASK among a call's results: kind, slot, address.
local function redirection(r, err)
  local text
  if err then
    text = err
  elseif type(r) == "table" then
    for _, x in ipairs(r) do
      if type(x) == "table" and x.err and (x.err:find("^MOVED ") or x.err:find("^ASK ")) then
        text = x.err
        break
      end
    end
  end
  if not text then return nil end
  local kind, slot, addr = text:match("^(%u+) (%d+) (%S+)$")
  if kind == "MOVED" or kind == "ASK" then return kind, tonumber(slot), addr end
  return nil
end

-- The commands with ASKING before each one outside MULTI … EXEC (the flag
-- lasts through a transaction), and where the real replies are.
local function with_asking(cmds)
  local out, keep, in_multi = {}, {}, false
  for _, cmd in ipairs(cmds) do
    local name = tostring(cmd[1]):upper()
    if not in_multi then out[#out + 1] = { "ASKING" } end
    out[#out + 1] = cmd
    keep[#keep + 1] = #out
    if name == "MULTI" then in_multi = true elseif name == "EXEC" or name == "DISCARD" then in_multi = false end
  end
  return out, keep
end

-- Sends the call on c, ASKING first when asking; the results as c's.
local function send(c, asking, method, ...)
  if not asking then return c[method](c, ...) end
  local cmds = method == "pipeline" and (...) or { { ... } }
  local out, keep = with_asking(cmds)
  local rs, err, code = c:pipeline(out)
  if not rs then return nil, err, code end
  local mine = {}
  for i, at in ipairs(keep) do mine[i] = rs[at] end
  if method == "pipeline" then return mine end
  local r = mine[1]
  if type(r) == "table" and r.err then return nil, r.err, "SERVER" end
  if r == false then return nil end
  return r
end

-- The first call finds out what the seed is: a cluster node answers
-- CLUSTER SLOTS with the map, a standalone server with an error. True, or
-- nil, message, code when the seed cannot be reached.
function Router:probe()
  local c, err, code = self:conn_to(self.seed)
  if not c then return nil, err, code end
  local ranges
  ranges, err, code = c:command("CLUSTER", "SLOTS")
  if code ~= nil and code ~= "SERVER" then
    self.conns[self.seed] = nil
    return nil, err, code
  end
  self.mode = "standalone"
  if type(ranges) == "table" then
    self.mode = "cluster"
    self:refresh()
  end
  return true
end

--- Runs conn[method](conn, ...) on the node that serves the call's key,
-- following redirections and replacing a broken connection once (a
-- restarted server leaves every old connection dead), unless once.
-- @tparam boolean once
-- @tparam string method "command" or "pipeline"
-- @return the connection's results
function Router:call(once, method, ...)
  if not self.mode then
    local ok, err, code = self:probe()
    if not ok then return nil, err, code end
  end
  local key = router.key_of(method, ...)
  local slot = key and key_slot(key)
  local broken = 0
  for _ = 1, MAX_REDIRECTS + 2 do
    local addr, asking = self:route(slot)
    local c, fresh_or_err, ccode = self:conn_to(addr)
    if not c then
      if not self.slots or broken > 0 then return nil, fresh_or_err, ccode end
      broken = 1
      self:refresh() -- a node gone: a failover may have moved its slots
    else
      local r, err, code = send(c, asking, method, ...)
      if code ~= nil and code ~= "SERVER" then
        -- the connection broke (and is closed)
        self.conns[addr] = nil
        if fresh_or_err or once or broken > 0 then return nil, err, code end
        broken = broken + 1
      else
        local kind, rslot, target = redirection(r, code == "SERVER" and err or nil)
        if not kind then return r, err, code end
        self.redirects = self.redirects + 1
        if kind == "MOVED" then
          self.mode = "cluster" -- even if CLUSTER SLOTS was refused (an ACL without it)
          self.asking[rslot] = nil
          self:refresh()
          self.slots = self.slots or {}
          self.slots[rslot + 1] = target -- the reply knows best for this slot
        else
          self.asking[rslot] = { target, now_ms() + ASK_MS }
        end
        if once then
          return nil, ("the key's slot %d %s to %s"):format(rslot, kind == "MOVED" and "moved" or "is moving", target),
            kind
        end
      end
    end
  end
  return nil, "too many redirections for one call (the cluster keeps changing)", "MOVED"
end

--- GETs many keys, in one pipeline per node (batches of 256): the values
-- in order, false for a missing key; or nil, message, code.
-- @tparam {string,...} keys
function Router:get_many(keys)
  local out, groups, order = {}, {}, {}
  if not self.mode then
    local ok, err, code = self:probe()
    if not ok then return nil, err, code end
  end
  for i, k in ipairs(keys) do
    local addr = self:route(self.slots and key_slot(k) or nil)
    local g = groups[addr]
    if not g then
      g = {}
      groups[addr] = g
      order[#order + 1] = addr
    end
    g[#g + 1] = i
  end
  for _, addr in ipairs(order) do
    local g = groups[addr]
    for from = 1, #g, 256 do
      local cmds = {}
      for j = from, math.min(from + 255, #g) do cmds[#cmds + 1] = { "GET", keys[g[j]] } end
      local c = self:conn_to(addr)
      local rs = c and c:pipeline(cmds)
      for j = 1, #cmds do
        local i, r = g[from + j - 1], rs and rs[j]
        if type(r) ~= "string" and r ~= false then
          -- moved, being migrated, or the node is unreachable: on its own
          local v, err, code = self:call(false, "command", "GET", keys[i])
          if code ~= nil then return nil, err, code end
          r = v or false
        end
        out[i] = r
      end
    end
  end
  return out
end

--- Closes every connection (the next call opens what it needs).
function Router:close()
  for addr, c in pairs(self.conns) do
    c:close()
    self.conns[addr] = nil
  end
end

return router

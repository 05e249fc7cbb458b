-- A private Redis Cluster of three masters (Debian's redis-server on free
-- loopback ports, joined by `redis-cli --cluster create`), for the cluster
-- spec; and moving one slot from its node to another the way
-- `redis-cli --cluster reshard` does, a step at a time, so a spec can act
-- between the steps.
local core = require("msal.core")
local proc = require("proc")
local redis_server = require("redis_server")

local unpack = table.unpack or unpack

local M = {}

local Cluster = {}
Cluster.__index = Cluster

local function command(node, ...)
  local c = assert(core.redis.connect({ port = node.port, timeout_ms = 5000 }))
  local r, err = c:command(...)
  c:close()
  return r, err
end

-- The node's own id (CLUSTER MYID).
local function id_of(node)
  return assert(command(node, "CLUSTER", "MYID"))
end

--- Starts three nodes and joins them; returns once every node says the
-- cluster is ok.
-- @tparam string dir where the nodes keep their nodes files
function M.start(dir)
  local nodes = {}
  for i = 1, 3 do nodes[i] = redis_server.start({ cluster = true, dir = dir }) end
  local addrs = {}
  for i, n in ipairs(nodes) do addrs[i] = "127.0.0.1:" .. n.port end
  local out, code = proc.sh("redis-cli --cluster create " .. table.concat(addrs, " ") ..
    " --cluster-replicas 0 --cluster-yes", { plain = true })
  local self = setmetatable({ nodes = nodes }, Cluster)
  if code ~= 0 then
    self:stop()
    error("redis-cli --cluster create failed: " .. out)
  end
  for _, n in ipairs(nodes) do n.id = id_of(n) end
  self:wait_ok()
  return self
end

--- Waits until every node reports cluster_state:ok and agrees on the slots.
function Cluster:wait_ok()
  for _ = 1, 500 do
    local ok = true
    for _, n in ipairs(self.nodes) do
      local info = command(n, "CLUSTER", "INFO") or ""
      if not info:find("cluster_state:ok", 1, true) then ok = false end
    end
    if ok then return end
    core.sleep_ms(20)
  end
  error("the cluster did not become ok")
end

--- The URL of one node (any node is a way in).
function Cluster:url(i)
  return "redis://127.0.0.1:" .. self.nodes[i or 1].port
end

--- The node that serves a slot now (from the first node's view).
function Cluster:owner(slot)
  for _, r in ipairs(assert(command(self.nodes[1], "CLUSTER", "SLOTS"))) do
    if slot >= r[1] and slot <= r[2] then
      for _, n in ipairs(self.nodes) do
        if n.port == r[3][2] then return n end
      end
    end
  end
end

--- Runs a command on node i (or a node table).
function Cluster:command(node, ...)
  if type(node) == "number" then node = self.nodes[node] end
  return command(node, ...)
end

--- Starts moving a slot from its owner to another node: IMPORTING on the
-- target, MIGRATING on the source. Returns source, target.
function Cluster:begin_move(slot, target)
  local source = self:owner(slot)
  assert(source ~= target, "the slot is on the target already")
  assert(command(target, "CLUSTER", "SETSLOT", slot, "IMPORTING", source.id) == "OK")
  assert(command(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", target.id) == "OK")
  return source, target
end

--- Moves the slot's keys that are still on source (MIGRATE), as reshard
-- does in batches; returns how many moved.
function Cluster:move_keys(slot, source, target)
  local keys = assert(command(source, "CLUSTER", "GETKEYSINSLOT", slot, 1000))
  if #keys == 0 then return 0 end
  local r, err = command(source, "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", unpack(keys))
  assert(r == "OK" or r == "NOKEY", tostring(err))
  return #keys
end

--- Ends the move: the target owns the slot, and every node knows it.
function Cluster:end_move(slot, target)
  assert(command(target, "CLUSTER", "SETSLOT", slot, "NODE", target.id) == "OK")
  for _, n in ipairs(self.nodes) do
    if n ~= target then command(n, "CLUSTER", "SETSLOT", slot, "NODE", target.id) end
  end
end

--- Stops every node.
function Cluster:stop()
  for _, n in ipairs(self.nodes) do n:stop() end
end

return M

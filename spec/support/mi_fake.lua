--- The fake managed identity endpoints (spec/support/mi_server.py) from a
-- spec: start it, script its answers, read what it was asked, stop it.
--
--     local mi_fake = require("mi_fake")
--     local srv = mi_fake.start()
--     srv:reset({arc_realm = …}); srv:script({{status = 503, json = {}}}); srv:log()
--     srv:stop()
-- @module mi_fake
local cjson = require("cjson")
local curl = require("msal.transport.curl")
local proc = require("proc")

local M = {}

local Server = {}
Server.__index = Server

--- Starts the server (without the ASan preload: a Python child must not
-- get it). It exits by itself when this process does.
-- @treturn table the server: `url`, and the methods below
function M.start()
  local root = os.getenv("MSAL_TEST_ROOT") or "."
  local fh = assert(io.popen("exec env -u LD_PRELOAD python3 " .. proc.quote(root .. "/spec/support/mi_server.py"), "r"))
  local line = assert(fh:read("*l"), "the fake managed identity server did not start")
  local info = cjson.decode(line)
  return setmetatable({ fh = fh, pid = ("%d"):format(info.pid), url = "http://127.0.0.1:" .. ("%d"):format(info.port),
    http = curl.new() }, Server)
end

-- A control call, awaited.
function Server:control(method, path, doc)
  local res = assert(self.http:send({ method = method, url = self.url .. path, body = doc and cjson.encode(doc) or nil,
    headers = { ["content-type"] = "application/json" } }):await())
  assert(res.status == 200, "the fake managed identity server answered " .. tostring(res.status))
  return cjson.decode(res.body)
end

--- Clears the script, the log and the token count; sets the options
-- (`arc_realm`, `arc_secret`, `expires_in`, `expires_format`, `echo`).
function Server:reset(opts) self:control("POST", "/_ctl/reset", opts or {}) end

--- Appends answers (`{status, json | body, headers}`) to serve next.
function Server:script(list) self:control("POST", "/_ctl/script", list) end

--- The requests so far: `{method, path, query, headers, form}` each.
function Server:log() return self:control("GET", "/_ctl/log") end

--- Stops the server.
function Server:stop()
  os.execute("kill " .. self.pid .. " 2>/dev/null")
  self.fh:close()
  self.http:close()
end

return M

--- A private oidc-provider (spec/support/node/oidc_server.js) for a spec
-- that restarts it: each start makes fresh signing keys, so a restart on the
-- same port is a key rotation the shared servers cannot show.
--
--     local idp = oidc_instance.start({ OIDC_AT_ALG = "ES256" })
--     idp:restart()  -- same issuer, new keys
--     idp:stop()
-- @module oidc_instance
local proc = require("proc")

local M = {}

local Instance = {}
Instance.__index = Instance

local function self_pid()
  local fh = assert(io.open("/proc/self/stat"))
  local pid = fh:read("*l"):match("^(%d+)")
  fh:close()
  return pid
end

local function launch(env, port)
  local root = os.getenv("MSAL_TEST_ROOT") or "."
  local vars = { "MSAL_IDP_WATCH_PID=" .. self_pid() }
  for k, v in pairs(env) do vars[#vars + 1] = k .. "=" .. proc.quote(v) end
  -- `echo $$` then exec: the first line is node's PID; its address follows
  -- oidc-provider's start-up warnings.
  local fh = assert(io.popen("echo $$; exec env -u LD_PRELOAD " .. table.concat(vars, " ") .. " node "
    .. proc.quote(root .. "/spec/support/node/oidc_server.js") .. " " .. port .. " 2>&1", "r"))
  local pid = assert(fh:read("*l"), "oidc_server did not start")
  local seen, url = {}, nil
  repeat
    local line = fh:read("*l")
    if not line then
      fh:close()
      error("oidc_server did not start:\n" .. table.concat(seen, "\n"))
    end
    seen[#seen + 1] = line
    url = line:match("^oidc_server listening on (http://%S+)")
  until url
  return fh, pid, url
end

--- Starts a provider on a port the kernel picks.
-- @tparam[opt] table env extra environment (`OIDC_AT_ALG`, `OIDC_AT_TTL`, …)
-- @treturn table the instance: `url` (its issuer), `restart()`, `stop()`
function M.start(env)
  local self = setmetatable({ env = env or {} }, Instance)
  self.fh, self.pid, self.url = launch(self.env, 0)
  self.port = self.url:match(":(%d+)$")
  return self
end

--- Stops the provider and starts it again on the same port, with new keys.
function Instance:restart()
  self:stop()
  self.fh, self.pid, self.url = launch(self.env, self.port)
end

--- Stops the provider and waits for it to exit.
function Instance:stop()
  if not self.fh then return end
  os.execute("kill " .. self.pid .. " 2>/dev/null")
  self.fh:close()
  self.fh = nil
end

return M

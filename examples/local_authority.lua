-- Shared by the examples: which authority to use (MSAL_EXAMPLE_AUTHORITY;
-- scripts/examples points it at the bundled local Entra-like authority) and,
-- with MSAL_EXAMPLE_BROWSER=auto, a stand-in "browser" that loads the
-- sign-in page and follows its redirect, so the examples run offline
-- without a display. Without it the system browser opens.
local msal = require("msal")

local M = {}

M.authority = os.getenv("MSAL_EXAMPLE_AUTHORITY") or "https://login.microsoftonline.com/common"
M.auto = os.getenv("MSAL_EXAMPLE_BROWSER") == "auto"

--- The open_browser to configure (nil: the system browser).
function M.open_browser()
  if not M.auto then return nil end
  return function(url)
    msal.async(function()
      local http = require("msal.transport.curl").new()
      local page = assert(http:send({ method = "GET", url = url }):await())
      if page.headers.location then assert(http:send({ method = "GET", url = page.headers.location }):await()) end
      http:close()
    end)
  end
end

--- A public client application for the examples.
function M.app(extra)
  local cfg = { auth = { client_id = "lua-msal-example", authority = M.authority, redirect_uri = "http://localhost:8400/callback" },
    system = { open_browser = M.open_browser(), loopback_timeout = 120 } }
  for k, v in pairs(extra or {}) do
    for k2, v2 in pairs(v) do cfg[k][k2] = v2 end
  end
  return msal.PublicClientApplication.new(cfg)
end

return M

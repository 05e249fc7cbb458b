-- The device code flow: show the code, the user signs in on another device,
-- the token arrives. With the local authority (MSAL_EXAMPLE_BROWSER=auto)
-- the "other device" is its control API approving the code.
--   scripts/examples
local msal = require("msal")
local example = require("local_authority")

local app = example.app()

local result = assert(app:acquire_token_by_device_code({
  scopes = { "User.Read" },
  device_code_callback = function(info)
    print(info.message)
    if example.auto then
      local base = example.authority:match("^(https?://[^/]+)")
      msal.async(function()
        local http = require("msal.transport.curl").new()
        assert(http:send({ method = "POST", url = base .. "/__control/device", headers = { ["content-type"] = "application/json" },
          body = ('{"user_code":"%s","action":"approve"}'):format(info.user_code) }):await())
      end)
    end
  end,
}):await())
print("signed in on the other device: token for " .. result.account.username)

-- A token for this machine's (or app's) own identity on Azure: the source
-- comes from the environment (App Service, Arc, Cloud Shell, IMDS on a VM…).
--   lua5.4 examples/managed_identity.lua [resource] [user-assigned client id]
local msal = require("msal")

local resource = arg[1] or "https://vault.azure.net"
local app = msal.ManagedIdentityApplication.new({
  managed_identity = arg[2] and { user_assigned_client_id = arg[2] } or nil,
})
print("source: " .. app:get_managed_identity_source())

for round = 1, 2 do
  local result, err = app:acquire_token({ resource = resource }):await()
  if not result then
    print(("failed: %s (source %s)"):format(tostring(err), tostring(err.source)))
    os.exit(1)
  end
  print(("round %d: %s token for %s, from cache: %s, expires at %s"):format(round, result.token_type,
    resource, tostring(result.from_cache), os.date("!%Y-%m-%dT%H:%M:%SZ", result.expires_on)))
end

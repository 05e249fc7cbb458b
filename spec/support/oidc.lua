-- The shared oidc-provider the test command starts
-- (spec/support/node/oidc_server.js, MSAL_TEST_OIDC): its address, and an
-- app token from its confidential client.
local M = {}

--- The provider's base URL (its issuer). Fails, never skips, when the
-- providers are not running.
function M.base()
  local b = os.getenv("MSAL_TEST_OIDC")
  assert(b and b ~= "", "MSAL_TEST_OIDC is not set: start the local providers (spec/support/servers.sh)")
  return b
end

--- An access token for `scope` from the client-credentials grant of the
-- provider's confidential client (client_secret_post), at `base` (default
-- the shared provider).
function M.app_token(scope, base)
  local app = require("msal").ConfidentialClientApplication.new({ auth = { client_id = "lua-msal-confidential",
    client_secret = "s3cret", authority = base or M.base(), protocol_mode = "oidc" } })
  return assert(app:acquire_token_by_client_credential({ scopes = { scope } }):await()).access_token
end

return M

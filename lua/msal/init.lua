--- lua-msal: OAuth 2.0 / OpenID Connect tokens the way Microsoft's MSAL
-- libraries get them, silently from a token cache first.
-- @module msal
local Promise = require("msal.promise")
local application = require("msal.application")
local errors = require("msal.errors")
local events = require("msal.events")
local request = require("msal.request")
local request_options = require("msal.request_options")
local auth_code = require("msal.flows.auth_code")
local lazy = require("msal.lazy")

local msal = {
  _VERSION = "0.1.0",
  PublicClientApplication = { new = application.new_public },
  -- classes a public client's cache hit never uses load on first use
  ManagedIdentityApplication = lazy.require("msal.application.managed_identity", { "new" }),
  ConfidentialClientApplication = lazy.require("msal.application.confidential", { "new" }),
  EventType = events.types,
  CacheLookupPolicy = request_options.CacheLookupPolicy,
  pkce = auth_code.pkce,
  jwt = lazy.require("msal.jwt", { "verify", "verifier" }),
  is_interaction_required = errors.is_interaction_required,
  parse_claims_challenge = request.parse_claims_challenge,
  Promise = Promise,
  async = Promise.async,
  all = Promise.all,
  race = Promise.race,
  run = Promise.run,
}

--- A credential chain for automation (environment, managed identity, the
-- shared cache, interactive): see msal.credential_chain.
-- @tparam table opts as credential_chain.new's
-- @treturn table the chain
function msal.credential_chain(opts)
  return require("msal.credential_chain").new(opts)
end

for _, name in ipairs({ "InteractionRequiredAuthError", "ServerError", "ClientAuthError",
                        "ClientConfigurationError", "BrowserAuthError",
                        "ManagedIdentityError", "TokenValidationError" }) do
  msal[name] = errors[name]
end

return msal

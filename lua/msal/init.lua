--- lua-msal: OAuth 2.0 / OpenID Connect tokens the way Microsoft's MSAL
-- libraries get them, silently from a token cache first.
-- @module msal
local Promise = require("msal.promise")
local application = require("msal.application")
local errors = require("msal.errors")
local events = require("msal.events")
local request = require("msal.request")

local msal = {
  _VERSION = "0.1.0",
  PublicClientApplication = { new = application.new_public },
  ManagedIdentityApplication = { new = require("msal.application.managed_identity").new },
  EventType = events.types,
  CacheLookupPolicy = require("msal.request_options").CacheLookupPolicy,
  is_interaction_required = errors.is_interaction_required,
  parse_claims_challenge = request.parse_claims_challenge,
  Promise = Promise,
  async = Promise.async,
  all = Promise.all,
  race = Promise.race,
  run = Promise.run,
}

for _, name in ipairs({ "InteractionRequiredAuthError", "ServerError", "ClientAuthError",
                        "ClientConfigurationError", "BrowserAuthError",
                        "ManagedIdentityError" }) do
  msal[name] = errors[name]
end

return msal

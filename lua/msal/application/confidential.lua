--- ConfidentialClientApplication: web apps, APIs and daemons that hold a
-- credential (msal-node's class of that name). Every token request carries
-- the credential; the cache is MSAL's, so msal-node's
-- ConfidentialClientApplication reads what this one writes and the reverse.
-- @module msal.application.confidential
local application = require("msal.application")
local lazy = require("msal.lazy")
local client_credential = lazy.require("msal.flows.client_credential")
local obo = lazy.require("msal.flows.obo")

local confidential = {}

local App, run, checked, ACQUIRE = application.App, application.run, application.checked, application.ACQUIRE

local Confidential = {}
Confidential.__index = Confidential

--- Never the credential: its kind only.
Confidential.__tostring = function(self)
  return "msal.ConfidentialClientApplication(" .. self.client_id .. ", " .. self.credential.kind .. ")"
end

-- What a confidential client shares with a public one (msal-node's
-- ClientApplication): the code flow of a web app, the silent flow for its
-- signed-in users, the cache, the accounts and the events. The interactive
-- and device-code flows are a public client's.
for _, name in ipairs({ "acquire_token_silent", "get_auth_code_url", "acquire_token_by_code",
  "acquire_token_by_refresh_token", "get_all_accounts", "get_account", "remove_account", "get_token_cache",
  "add_event_callback", "remove_event_callback", "on" }) do
  Confidential[name] = App[name]
end

--- Makes a confidential client application. Raises a
-- ClientConfigurationError on a bad configuration: no credential, two, a
-- certificate whose key cannot be read (a bad PEM, a wrong passphrase).
-- @tparam table cfg as PublicClientApplication's, with one credential in
--   `auth`: `client_secret = "…"`; `client_certificate = {private_key = PEM,
--   certificate = PEM | thumbprint_sha256 = hex, x5c = bool, passphrase,
--   algorithm = "PS256" | "RS256"}`; or `client_assertion = string |
--   function({client_id, token_endpoint}) -> string`. `auth.azure_region`
--   (a region, or "TryAutoDetect") sends client-credential requests to a
--   regional endpoint.
-- @treturn table the application
function confidential.new(cfg)
  local app = application.new_app(cfg, Confidential, { confidential = true })
  return app
end

function run.acquire_token_by_client_credential(self, req)
  return self.events:around(client_credential.acquire(self, req), "silent", ACQUIRE)
end

--- Acquires the app's own token (client-credentials grant): from the
-- cache (per tenant, no account) until refresh_on or expiry, else from the
-- token endpoint. `azure_region` (else `auth.azure_region`) picks a
-- regional endpoint.
-- @tparam table req `{scopes = {"<resource>/.default"}, force_refresh,
--   claims, azure_region, authority, correlation_id, extra_query_parameters,
--   extra_body_parameters}`
-- @treturn promise of the result (no account)
function Confidential:acquire_token_by_client_credential(req)
  return checked(self, "acquire_token_by_client_credential", req)
end

function run.acquire_token_on_behalf_of(self, req)
  return self.events:around(obo.acquire(self, req), "silent", ACQUIRE)
end

--- Acquires a token for a downstream API on behalf of the user whose
-- token this API was called with: cached under the assertion's hash (as
-- MSAL), refreshed with the OBO refresh token, else the assertion is sent
-- again.
-- @tparam table req `{obo_assertion, scopes, force_refresh, claims,
--   authority, correlation_id, extra_query_parameters, extra_body_parameters}`
-- @treturn promise of the result
function Confidential:acquire_token_on_behalf_of(req)
  return checked(self, "acquire_token_on_behalf_of", req)
end

return confidential

--- The authorization-code flow in two calls, for apps that run their own
-- redirect handler (msal-node's getAuthCodeUrl and acquireTokenByCode):
-- the app makes the PKCE pair (msal.pkce()), sends the user to the URL,
-- keeps the verifier, state and nonce, and redeems the code it receives.
-- @module msal.flows.auth_code
local Promise = require("msal.promise")
local core = require("msal.core")
local errors = require("msal.errors")
local request = require("msal.request")
local request_options = require("msal.request_options")
local authorize = require("msal.lazy").require("msal.flows.authorize")

local try = errors.try

local auth_code = {}

--- A PKCE pair (RFC 7636, S256) for get_auth_code_url / acquire_token_by_code.
-- @treturn table `{verifier, challenge, method = "S256"}`
function auth_code.pkce()
  local verifier, challenge = core.crypto.pkce()
  return { verifier = verifier, challenge = challenge, method = "S256" }
end

--- The authorize URL for req; the state and nonce are the caller's, sent
-- as given.
-- @treturn promise of the URL (a string)
function auth_code.url(app, req)
  return Promise.async(function()
    if type(req.code_challenge) ~= "string" or req.code_challenge == "" then
      -- PKCE is not optional here: without it a stolen code is a token
      error(errors.ClientConfigurationError("pkce_required",
        "get_auth_code_url needs code_challenge (msal.pkce() makes a verifier and its challenge)"), 0)
    end
    local scopes = try(request.check_scopes(req.scopes, true))
    try(request.single_resource(scopes))
    local extra = try(request.check_scopes(req.extra_scopes_to_consent, true))
    local auth, metadata = authorize.authority_of(app, req)
    return authorize.url(app, req, { auth = auth, metadata = metadata,
      redirect_uri = authorize.redirect_uri_of(app, req), state = req.state, nonce = req.nonce,
      challenge = req.code_challenge, scopes = scopes, extra = extra,
      claims = try(request.merge_claims(req.claims, app.config.auth.client_capabilities)),
      correlation_id = req.correlation_id or core.crypto.uuid4() })
  end)
end

--- Redeems a code the app's redirect handler received, and caches the
-- answer. The id token's nonce is checked when req.nonce is given.
-- @treturn promise of the result
function auth_code.redeem(app, req)
  return Promise.async(function()
    if type(req.code) ~= "string" or req.code == "" then
      error(errors.ClientConfigurationError("invalid_request", "acquire_token_by_code needs request.code"), 0)
    end
    local scopes = try(request.check_scopes(req.scopes, true))
    try(request.single_resource(scopes))
    local auth, metadata = authorize.authority_of(app, req)
    return authorize.redeem_code(app, auth, metadata, { code = req.code,
      redirect_uri = authorize.redirect_uri_of(app, req), verifier = req.code_verifier, scopes = scopes,
      claims = try(request.merge_claims(req.claims, app.config.auth.client_capabilities)),
      correlation_id = req.correlation_id or core.crypto.uuid4(), nonce = req.nonce, max_age = req.max_age,
      query_params = req.extra_query_parameters, body_params = request_options.body_params(req) })
  end)
end

return auth_code

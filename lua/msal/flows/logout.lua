--- Sign-out as msal-browser does it: forget the account here, then send the
-- user to the authority's end-session endpoint so the browser session ends
-- too (OpenID RP-Initiated Logout; Entra's /oauth2/v2.0/logout).
--
-- One deliberate difference: the cache is cleared before the authority is
-- resolved, so a user who asked to sign out is signed out locally even when
-- the authority cannot be reached (msal-browser resolves it first).
-- @module msal.flows.logout
local Promise = require("msal.promise")
local authority = require("msal.authority")
local core = require("msal.core")
local errors = require("msal.errors")
local events = require("msal.events")
local network = require("msal.network")

local try = errors.try

local logout = {}

-- Removes req.account, or every account when none is named (msal-browser
-- clears the whole cache then), with ACCOUNT_REMOVED for each account that
-- was there and ACTIVE_ACCOUNT_CHANGED when the active one went; returns
-- the id token of the named account, read before it goes, for
-- id_token_hint.
local function forget(app, account, interaction)
  local tc, ev = app.token_cache, app.events
  local E = events.types
  if account == nil then
    local gone, active = {}, nil
    if ev.n > 0 then gone, active = tc:get_all_accounts(), tc:get_active_account() end
    tc:remove_all_accounts()
    for _, a in ipairs(gone) do ev:emit(E.ACCOUNT_REMOVED, interaction, a) end
    if active then ev:emit(E.ACTIVE_ACCOUNT_CHANGED, interaction) end
    return nil
  end
  local hint = tc:id_token_for(account.home_account_id, account.environment, app.client_id, account.tenant_id)
  local n, was_active = tc:remove_account(account)
  if n > 0 then ev:emit(E.ACCOUNT_REMOVED, interaction, account) end
  if was_active then ev:emit(E.ACTIVE_ACCOUNT_CHANGED, interaction) end
  return hint
end

--- Forgets the account and builds the end-session URL.
-- @tparam table req `{account, post_logout_redirect_uri, logout_hint, state,
--   authority, correlation_id}`
-- @tparam[opt] string interaction "redirect" or "popup", for the events of
--   the local sign-out
-- @treturn promise of `{url}`; url is nil when the authority publishes no
--   end_session_endpoint (only the local sign-out happened)
function logout.begin(app, req, interaction)
  return Promise.async(function()
    req = req or {}
    if type(req) ~= "table" then
      error(errors.ClientConfigurationError("invalid_request", "the logout request must be a table"), 0)
    end
    local account = req.account
    if account ~= nil and (type(account) ~= "table" or type(account.home_account_id) ~= "string"
        or type(account.environment) ~= "string") then
      error(errors.ClientConfigurationError("invalid_account", "logout needs an account from the cache, or none"), 0)
    end
    for _, k in ipairs({ "post_logout_redirect_uri", "logout_hint", "state", "correlation_id" }) do
      if req[k] ~= nil and type(req[k]) ~= "string" then
        error(errors.ClientConfigurationError("invalid_request", "'" .. k .. "' must be a string"), 0)
      end
    end
    local auth, err = app.authority, nil
    if req.authority then
      auth = try(authority.for_app(app, req.authority))
    end
    local id_token_hint = forget(app, account, interaction)
    local metadata = try(authority.resolve(app, auth):await())
    local endpoint = metadata.end_session_endpoint
    if not endpoint then return { url = nil } end
    local query = network.form_encode({
      { "client_id", auth.kind == "oidc" and app.client_id or nil },
      { "post_logout_redirect_uri", req.post_logout_redirect_uri or app.config.auth.post_logout_redirect_uri },
      { "id_token_hint", id_token_hint },
      { "logout_hint", req.logout_hint },
      { "state", req.state },
      { "client-request-id", req.correlation_id or core.crypto.uuid4() },
    })
    return { url = endpoint .. (endpoint:find("?", 1, true) and "&" or "?") .. query }
  end)
end

return logout

--- The authorization-code flow's two halves, shared by redirect and popup:
-- the authorize URL (PKCE S256, state and nonce from the CSPRNG, MSAL's
-- parameters) and the redemption of the code that comes back.
-- @module msal.flows.authorize
local Promise = require("msal.promise")
local authority = require("msal.authority")
local core = require("msal.core")
local errors = require("msal.errors")
local loopback = require("msal.loopback")
local network = require("msal.network")
local request = require("msal.request")
local refresh = require("msal.flows.refresh")

local try = errors.try

local authorize = {}

--- Builds the authorize URL for req and the context to keep until the
-- redirect comes back.
-- @tparam[opt] string state the state to use (the popup flow listens for it
--   before the URL exists); a fresh one from the CSPRNG by default
-- @treturn promise of `{url, state, ctx}`
function authorize.begin(app, req, interaction, state)
  return Promise.async(function()
    req = req or {}
    local scopes = try(request.check_scopes(req.scopes, true))
    try(request.single_resource(scopes, app.authority.kind))
    local extra = try(request.check_scopes(req.extra_scopes_to_consent, true))
    local claims = try(request.merge_claims(req.claims, app.config.auth.client_capabilities))
    local redirect_uri = req.redirect_uri or app.config.auth.redirect_uri
    if type(redirect_uri) ~= "string" then
      error(errors.ClientConfigurationError("redirect_uri_empty", "a redirect_uri is needed (auth.redirect_uri or request.redirect_uri)"), 0)
    end
    local auth = app.authority
    if req.authority then
      auth = try(authority.for_app(app, req.authority))
    end
    local metadata = try(authority.resolve(app, auth):await())
    local crypto = core.crypto
    local verifier, challenge = crypto.pkce()
    state = state or crypto.random_string(32)
    local nonce = crypto.random_string(32)
    local correlation_id = req.correlation_id or crypto.uuid4()
    local login_hint = req.login_hint or (type(req.account) == "table" and req.account.username) or nil
    if req.prompt == "select_account" then login_hint = nil end
    local response_mode = req.response_mode or "query"
    if response_mode ~= "query" and response_mode ~= "form_post" and response_mode ~= "fragment" then
      error(errors.ClientConfigurationError("invalid_response_mode", "response_mode must be query, fragment or form_post"), 0)
    end
    local query = network.form_encode({
      { "client_id", app.client_id },
      { "scope", table.concat(request.with_defaults(scopes, extra), " ") },
      { "redirect_uri", redirect_uri },
      { "response_type", "code" },
      { "response_mode", response_mode },
      { "state", state },
      { "nonce", nonce },
      { "code_challenge", challenge },
      { "code_challenge_method", "S256" },
      { "client_info", auth.kind ~= "oidc" and "1" or nil },
      { "prompt", req.prompt },
      { "login_hint", login_hint },
      { "domain_hint", req.domain_hint },
      { "claims", claims },
      { "client-request-id", correlation_id },
    })
    local sep = metadata.authorization_endpoint:find("?", 1, true) and "&" or "?"
    return {
      url = metadata.authorization_endpoint .. sep .. query,
      state = state,
      ctx = {
        verifier = verifier, nonce = nonce, scopes = scopes, claims = claims, redirect_uri = redirect_uri,
        authority = auth.url, correlation_id = correlation_id, interaction = interaction,
        account = req.account,
      },
    }
  end)
end

--- Redeems an authorization code.
-- @tparam table ctx the context from begin()
-- @tparam string code
-- @treturn promise of the result
function authorize.redeem(app, ctx, code)
  return Promise.async(function()
    local auth = try(authority.for_app(app, ctx.authority))
    local metadata = try(authority.resolve(app, auth):await())
    local scope_list = request.with_defaults(ctx.scopes)
    local started = app.clock()
    local r = try(refresh.post(app, metadata.token_endpoint, network.form_encode({
      { "client_id", app.client_id },
      { "scope", table.concat(scope_list, " ") },
      { "grant_type", "authorization_code" },
      { "code", code },
      { "redirect_uri", ctx.redirect_uri },
      { "code_verifier", ctx.verifier },
      { "client_info", auth.kind ~= "oidc" and "1" or nil },
      { "claims", ctx.claims },
    }), refresh.headers(ctx.correlation_id, ctx.account)):await())
    if r.id_token and app.config.system.validate_id_token_signature then
      try(require("msal.jwks").verify(app, metadata, r.id_token):await())
    end
    return try(refresh.finish(app, r, { env = auth.cache_env, realm = auth.realm or "", scopes_list = scope_list,
      started = started, grant = "authorization_code", metadata = metadata, auth = auth,
      correlation_id = ctx.correlation_id, nonce = ctx.nonce }))
  end)
end

local RESPONSE_KEYS = { "code", "state", "error" }

local function carries_response(params)
  for _, k in ipairs(RESPONSE_KEYS) do
    if params[k] ~= nil then return true end
  end
  return false
end

local function refused(why)
  return nil, errors.ClientAuthError("invalid_redirect_response",
    "the redirect response is malformed (" .. why .. "); nothing was redeemed")
end

--- The parameters of a redirect: a full URL (query or fragment), a query
-- string, or a table (form_post bodies already parsed). As the loopback
-- listener, a repeated parameter or a response split between the query and
-- the fragment is refused: which copy to believe is what a mix-up attack
-- would choose.
-- @treturn[1] table name -> value
-- @treturn[2] nil
-- @treturn[2] table ClientAuthError `invalid_redirect_response`
function authorize.params_of(input)
  if type(input) == "table" then return input end
  if type(input) ~= "string" then return {} end
  local query, frag = input:match("^[^?#]*%?([^#]*)#?(.*)$")
  if not query then
    frag = input:match("#(.*)$")
    query = (frag or input:find("[:/]")) and "" or input
  end
  local params, why = loopback.parse_query(query)
  if not params then return refused(why) end
  if frag and frag ~= "" then
    local fparams
    fparams, why = loopback.parse_query(frag)
    if not fparams then return refused(why) end
    if carries_response(fparams) then
      if carries_response(params) then return refused("parameters in both the query and the fragment") end
      params = fparams
    end
  end
  return params
end

return authorize

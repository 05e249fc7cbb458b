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
local request_options = require("msal.request_options")
local refresh = require("msal.flows.refresh")

local try = errors.try

local authorize = {}

-- The wire form of a request's state: the library's own random part, then
-- `|` and the caller's state when there is one, as MSAL's ProtocolUtils
-- joins them (its library part is base64 JSON; ours is random text, which
-- never holds a `|`).
local STATE_DELIM = "|"

--- A fresh state: the library's random part, and the caller's after it.
-- @tparam[opt] string user_state the caller's `state`
-- @treturn string the state to send
function authorize.new_state(user_state)
  local lib = core.crypto.random_string(32)
  if type(user_state) == "string" and user_state ~= "" then return lib .. STATE_DELIM .. user_state end
  return lib
end

--- The key a state's context is kept under: its library part (a caller's
-- state may repeat across sign-ins; the library's never does).
-- @treturn string|nil nil for a state that is not a non-empty string
function authorize.state_key(state)
  local key = type(state) == "string" and state:match("^[^|]*")
  return key ~= "" and key or nil
end

--- The caller's part of a state, or nil.
function authorize.user_state(state)
  local i = type(state) == "string" and state:find(STATE_DELIM, 1, true)
  if i and i < #state then return state:sub(i + 1) end
  return nil
end

--- Resolves the authority a request names, or the app's.
-- @treturn table the parsed authority
-- @treturn table its metadata (raises on failure; call inside Promise.async)
function authorize.authority_of(app, req)
  local auth = app.authority
  if req.authority then auth = try(authority.for_app(app, req.authority)) end
  return auth, try(authority.resolve(app, auth):await())
end

--- The authorize URL: MSAL's parameters for req, with the state, nonce and
-- PKCE challenge given (any of them may be nil for get_auth_code_url).
-- @tparam table p `{auth, metadata, redirect_uri, state, nonce, challenge,
--   scopes, extra, claims, correlation_id}`
-- @treturn string
function authorize.url(app, req, p)
  local login_hint, sid = req.login_hint or (type(req.account) == "table" and req.account.username) or nil, nil
  -- MSAL: a sid only with prompt=none, and then instead of the login hint
  if req.sid and req.prompt == "none" then login_hint, sid = nil, req.sid end
  if req.prompt == "select_account" then login_hint, sid = nil, nil end
  local response_mode = req.response_mode or "query"
  if response_mode ~= "query" and response_mode ~= "form_post" and response_mode ~= "fragment" then
    error(errors.ClientConfigurationError("invalid_response_mode", "response_mode must be query, fragment or form_post"), 0)
  end
  local params = {
    { "client_id", app.client_id },
    { "scope", table.concat(request.with_defaults(p.scopes, p.extra, app.default_scopes), " ") },
    { "redirect_uri", p.redirect_uri },
    { "response_type", "code" },
    { "response_mode", response_mode },
    { "state", p.state },
    { "nonce", p.nonce },
    { "code_challenge", p.challenge },
    { "code_challenge_method", p.challenge and "S256" or nil },
    { "client_info", p.auth.kind ~= "oidc" and "1" or nil },
    { "prompt", req.prompt },
    { "login_hint", login_hint },
    { "sid", sid },
    { "domain_hint", req.domain_hint },
    { "max_age", req.max_age and ("%d"):format(req.max_age) or nil },
    { "claims", p.claims },
    { "client-request-id", p.correlation_id },
  }
  for _, kv in ipairs(request_options.params_list(req.extra_query_parameters)) do params[#params + 1] = kv end
  local endpoint = p.metadata.authorization_endpoint
  return endpoint .. (endpoint:find("?", 1, true) and "&" or "?") .. network.form_encode(params)
end

--- The redirect URI of a request: its own, else the configuration's
-- (raises a ClientConfigurationError when neither; call inside Promise.async).
function authorize.redirect_uri_of(app, req)
  local redirect_uri = req.redirect_uri or app.config.auth.redirect_uri
  if type(redirect_uri) ~= "string" then
    error(errors.ClientConfigurationError("redirect_uri_empty", "a redirect_uri is needed (auth.redirect_uri or request.redirect_uri)"), 0)
  end
  return redirect_uri
end

--- Builds the authorize URL for req and the context to keep until the
-- redirect comes back.
-- @tparam[opt] string state the state to use (the popup flow listens for it
--   before the URL exists; authorize.new_state makes it); a fresh one by default
-- @treturn promise of `{url, state, key, ctx}` (key: the state store's key)
function authorize.begin(app, req, interaction, state)
  return Promise.async(function()
    req = req or {}
    local scopes = try(request.check_scopes(req.scopes, true))
    try(request.single_resource(scopes, app.authority.kind))
    local extra = try(request.check_scopes(req.extra_scopes_to_consent, true))
    local claims = try(request.merge_claims(req.claims, app.config.auth.client_capabilities))
    local redirect_uri = authorize.redirect_uri_of(app, req)
    local auth, metadata = authorize.authority_of(app, req)
    local verifier, challenge = core.crypto.pkce()
    state = state or authorize.new_state(req.state)
    local nonce = core.crypto.random_string(32)
    local correlation_id = req.correlation_id or core.crypto.uuid4()
    local url = authorize.url(app, req, { auth = auth, metadata = metadata, redirect_uri = redirect_uri, state = state,
      nonce = nonce, challenge = challenge, scopes = scopes, extra = extra, claims = claims, correlation_id = correlation_id })
    return {
      url = url,
      state = state,
      key = authorize.state_key(state),
      ctx = {
        verifier = verifier, nonce = nonce, scopes = scopes, claims = claims, redirect_uri = redirect_uri,
        authority = auth.url, correlation_id = correlation_id, interaction = interaction,
        account = req.account, state = state, max_age = req.max_age,
        query_params = req.extra_query_parameters, body_params = request_options.body_params(req),
      },
    }
  end)
end

--- Redeems an authorization code (the redirect's, the popup's, or the one
-- an app's own redirect handler got) and caches the answer.
-- @tparam table p `{code, redirect_uri, verifier, scopes, claims,
--   correlation_id, account, nonce, max_age, query_params, body_params
--   (list of pairs), user_state}`
-- @treturn the result (raises on failure; call inside Promise.async)
function authorize.redeem_code(app, auth, metadata, p)
  local scope_list = request.with_defaults(p.scopes, nil, app.default_scopes)
  local started = app.clock()
  local body = {
    { "client_id", app.client_id },
    { "scope", table.concat(scope_list, " ") },
    { "grant_type", "authorization_code" },
    { "code", p.code },
    { "redirect_uri", p.redirect_uri },
    { "code_verifier", p.verifier },
    { "client_info", auth.kind ~= "oidc" and "1" or nil },
    { "claims", p.claims },
  }
  for _, kv in ipairs(p.body_params or {}) do body[#body + 1] = kv end
  local r = try(refresh.post(app, refresh.token_url(metadata, p.query_params), network.form_encode(body),
    refresh.headers(p.correlation_id, p.account)):await())
  if r.id_token and app.config.system.validate_id_token_signature then
    try(require("msal.jwks").verify(app, metadata, r.id_token):await())
  end
  local result = try(refresh.finish(app, r, { env = auth.cache_env, realm = auth.realm or "", scopes_list = scope_list,
    started = started, grant = "authorization_code", metadata = metadata, auth = auth,
    correlation_id = p.correlation_id, nonce = p.nonce, max_age = p.max_age }))
  result.state = p.user_state
  return result
end

--- Redeems the code of a redirect begin() started.
-- @tparam table ctx the context from begin()
-- @tparam string code
-- @tparam[opt] string state the redirect's state, compared with the one sent
-- @treturn promise of the result
function authorize.redeem(app, ctx, code, state)
  return Promise.async(function()
    if ctx.state and not (type(state) == "string" and core.crypto.constant_time_equal(state, ctx.state)) then
      error(errors.ClientAuthError("state_mismatch", "the redirect's state is not the one this sign-in sent"), 0)
    end
    local auth = try(authority.for_app(app, ctx.authority))
    local metadata = try(authority.resolve(app, auth):await())
    return authorize.redeem_code(app, auth, metadata, { code = code, redirect_uri = ctx.redirect_uri,
      verifier = ctx.verifier, scopes = ctx.scopes, claims = ctx.claims, correlation_id = ctx.correlation_id,
      account = ctx.account, nonce = ctx.nonce, max_age = ctx.max_age, query_params = ctx.query_params,
      body_params = ctx.body_params, user_state = authorize.user_state(ctx.state) })
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

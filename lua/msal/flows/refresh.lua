--- The refresh-token grant behind acquire_token_silent: which refresh
-- tokens to try (FOCI family tokens as msal-python does), the request MSAL
-- sends, and what the answer does to the cache.
-- @module msal.flows.refresh
local Promise = require("msal.promise")
local authority = require("msal.authority")
local core = require("msal.core")
local errors = require("msal.errors")
local events = require("msal.events")
local loop = require("msal.loop")
local network = require("msal.network")
local request = require("msal.request")
local request_options = require("msal.request_options")
local save = require("msal.cache.save")
local token_response = require("msal.token_response")

local try = errors.try

local refresh = {}

--- The library's name and version as MSAL's telemetry headers carry them.
refresh.SKU, refresh.VERSION = "lua-msal", "0.1.0"

-- Refresh tokens to try for an account, best first: the family's (FOCI)
-- unless this app is known not to be in the family, then the app's own.
local function candidates(tc, account, env, client_id, confidential)
  local store = tc.store
  local hid = account.home_account_id
  local meta_key = store:find("AppMetadata", { client_id = client_id, environment = env })[1]
  local meta = meta_key and store:get("AppMetadata", meta_key)
  local list, seen = {}, {}
  local function add(keys, family)
    for _, k in ipairs(keys) do
      if not seen[k] then
        seen[k] = true
        local e = store:get("RefreshToken", k)
        list[#list + 1] = { key = k, secret = e.secret, client_id = e.client_id, family = family,
          expires_on = tonumber(e.expires_on) }
      end
    end
  end
  -- a confidential client never redeems family tokens: they are public
  -- first-party apps' (and its own answers carry no foci)
  if (not meta or meta.family_id == "1") and not confidential then
    add(store:find("RefreshToken", { home_account_id = hid, environment = env, family_id = "1" }), true)
  end
  add(store:find("RefreshToken", { home_account_id = hid, environment = env, client_id = client_id }), false)
  return list
end
refresh.candidates = candidates

--- Headers MSAL sends with token requests (msal-python puts them in
-- headers; msal-node in the body).
function refresh.headers(correlation_id, account)
  local h = {
    ["content-type"] = "application/x-www-form-urlencoded;charset=utf-8",
    accept = "application/json",
    ["x-client-sku"] = refresh.SKU, ["x-client-ver"] = refresh.VERSION, ["x-client-os"] = "linux",
    ["x-ms-lib-capability"] = "retry-after, h429",
    ["client-request-id"] = correlation_id,
  }
  local uid, utid = (account and account.home_account_id or ""):match("^([^.]+)%.([^.]+)$")
  if uid then h["x-anchormailbox"] = "Oid:" .. uid .. "@" .. utid end
  return h
end

--- Sends a token request and turns the answer into a checked response or
-- an error of MSAL's classes.
-- @treturn promise of `r` (msal.token_response.check)
function refresh.post(app, endpoint, body, headers)
  if app.credential then
    -- a confidential client authenticates every token request (MSAL's
    -- client_secret_post, or a client assertion made for this endpoint)
    return app.credential:params(endpoint):next(function(params)
      return refresh.send(app, endpoint, body .. "&" .. network.form_encode(params), headers)
    end)
  end
  return refresh.send(app, endpoint, body, headers)
end

--- Sends a token request as it is (refresh.post adds the client's
-- credential first).
-- @treturn promise of `r` (msal.token_response.check)
function refresh.send(app, endpoint, body, headers)
  local log, started = app.log, loop.now_ms()
  -- which grant, where, and what came back: the token endpoint's URL names
  -- no user, and neither the body's secrets nor the answer are logged
  local grant = log:enabled("info") and (body:match("grant_type=([^&]*)") or "?"):gsub("%%3A", ":")
  local function took() return math.floor(loop.now_ms() - started) end
  return network.send(network.transport(app), { method = "POST", url = endpoint, headers = headers, body = body,
    timeout_ms = app.config.system.http_timeout_ms })
    :next(function(res)
      if grant then
        log:info(("token request: grant %s to %s: HTTP %d in %d ms"):format(grant, endpoint, res.status, took()))
      end
      local doc, err = network.json(res)
      if res.status ~= 200 then
        if doc and type(doc.error) == "string" then return Promise.reject(errors.from_server(doc, res.status)) end
        return Promise.reject(errors.ServerError("server_error",
          ("the token endpoint answered HTTP %d without an OAuth error"):format(res.status), { status = res.status }))
      end
      if not doc then return Promise.reject(err) end
      local r
      r, err = token_response.check(doc)
      if not r then return Promise.reject(err) end
      return r
    end, function(err)
      if grant then
        log:info(("token request: grant %s to %s: %s after %d ms"):format(grant, endpoint,
          tostring(err.error_code), took()))
      end
      return Promise.reject(err)
    end)
end

--- Builds the acquire result of a network answer, and stores it.
-- @treturn[1] table the result
-- @treturn[2] nil
-- @treturn[2] table error (an id token that fails its checks)
function refresh.finish(app, r, ctx)
  local ci = app.authority.kind ~= "oidc" and token_response.client_info(r.client_info) or nil
  local claims
  if r.id_token then
    local err
    claims, err = token_response.check_id_token(r.id_token, { metadata = ctx.metadata,
      client_id = app.client_id, now = app.clock(), nonce = ctx.nonce, max_age = ctx.max_age })
    if not claims then return nil, err end
  end
  local tc = app.token_cache
  -- the partition of the account this answer is for (Redis caches)
  local hid = ci and (ci.uid .. "." .. ci.utid) or (claims and claims.sub) or (ctx.account and ctx.account.home_account_id)
  local saved = tc:for_partition(ctx.partition or { home_account_id = hid, tenant_id = claims and claims.tid or ctx.realm })
    :access(true, save.response, tc, {
    client_id = app.client_id, environment = ctx.env, realm = ctx.realm,
    requested_scopes = ctx.scopes_list, now = ctx.started, authority_type = app.authority_type,
    account = ctx.account, grant = ctx.grant, user_assertion_hash = ctx.user_assertion_hash,
  }, r, claims, ci)
  -- the account as the answer's tenant sees it (a guest tenant's view)
  local account = saved.account_key and tc:account_at(saved.account_key, saved.realm) or ctx.account
  local result = {
    access_token = r.access_token,
    id_token = r.id_token,
    id_token_claims = claims,
    scopes = request.scope_list(saved.target),
    expires_on = saved.expires_on,
    ext_expires_on = saved.ext_expires_on,
    refresh_on = saved.refresh_on,
    account = account,
    tenant_id = saved.realm,
    token_type = r.token_type,
    from_cache = false,
    correlation_id = ctx.correlation_id,
    authority = ctx.auth.url,
  }
  if saved.account_added then events.account_added(result, account) end
  return result
end

-- MSAL's DEFAULT_REFRESH_TOKEN_EXPIRATION_OFFSET_SECONDS. (MSAL reads the
-- request's offset with `||`, so its 0 means 300; here 0 means 0.)
local RT_OFFSET = 300

-- Whether a refresh token's own expiry (refresh_token_expires_in, when the
-- server sent one) has passed, or will within the offset.
local function expired(cand, now, offset)
  return cand.expires_on ~= nil and now + offset > cand.expires_on
end

--- The token endpoint body of a refresh-token grant.
local function refresh_body(app, scopes_list, secret, claims, body_params)
  local body = {
    { "client_id", app.client_id },
    { "scope", table.concat(scopes_list, " ") },
    { "grant_type", "refresh_token" },
    { "client_info", app.authority.kind ~= "oidc" and "1" or nil },
    { "refresh_token", secret },
    { "claims", claims },
  }
  for _, kv in ipairs(body_params) do body[#body + 1] = kv end
  return network.form_encode(body)
end

--- The token endpoint URL with a request's extra query parameters.
function refresh.token_url(metadata, query_params)
  local list = request_options.params_list(query_params)
  local endpoint = metadata.token_endpoint
  if #list == 0 then return endpoint end
  return endpoint .. (endpoint:find("?", 1, true) and "&" or "?") .. network.form_encode(list)
end

--- Redeems a refresh token for the request.
-- @treturn promise of the result; rejects with InteractionRequiredAuthError
--   when no refresh token can be used (`no_tokens_found`, or
--   `refresh_token_expired` when every one is past its own expiry) or the
--   server wants interaction
function refresh.acquire(app, req, ctx)
  return Promise.async(function()
    local tc = app.token_cache
    local part = { home_account_id = ctx.account.home_account_id, tenant_id = ctx.realm }
    local all = tc:for_partition(part):access(false, candidates, tc, ctx.account, ctx.env, app.client_id,
      app.credential ~= nil)
    if #all == 0 then
      error(errors.InteractionRequiredAuthError("no_tokens_found",
        "no access token in the cache answers the request and there is no refresh token"), 0)
    end
    local now, offset = app.clock(), req.refresh_token_expiration_offset or RT_OFFSET
    local cands = {}
    for _, cand in ipairs(all) do
      if not expired(cand, now, offset) then cands[#cands + 1] = cand end
    end
    if #cands == 0 then
      error(errors.InteractionRequiredAuthError("refresh_token_expired",
        "the refresh token has expired (or will within refresh_token_expiration_offset): sign-in needed"), 0)
    end
    local claims = try(request.merge_claims(req.claims, app.config.auth.client_capabilities))
    local metadata = try(authority.resolve(app, ctx.auth):await())
    ctx.metadata, ctx.grant = metadata, "refresh_token"
    ctx.scopes_list = request.with_defaults(req.scopes, nil, app.default_scopes)
    ctx.correlation_id = req.correlation_id or core.crypto.uuid4()
    local headers = refresh.headers(ctx.correlation_id, ctx.account)
    local url, body_params = refresh.token_url(metadata, req.extra_query_parameters), request_options.body_params(req)
    local last
    for i, cand in ipairs(cands) do
      ctx.started = app.clock()
      local r, err = refresh.post(app, url, refresh_body(app, ctx.scopes_list, cand.secret, claims, body_params),
        headers):await()
      if r and r.id_token and app.config.system.validate_id_token_signature then
        try(require("msal.jwks").verify(app, metadata, r.id_token):await())
      end
      if r then
        return try(refresh.finish(app, r, ctx))
      end
      last = err
      local bad = err.suberror == "bad_token"
      if bad then
        -- MSAL deletes a refresh token only when the server says it is bad
        tc:for_partition(part):access(true, function() tc.store:remove("RefreshToken", cand.key) end)
      end
      -- a family token another app minted may be refused for this one: the
      -- app's own token is next; and of several copies of the app's own (a
      -- file another library wrote too), one the server calls spent is not
      -- the last word: msal-python tries each in turn as well
      if not (cands[i + 1] and (bad or cand.family and (err.name == "InteractionRequiredAuthError"
          or err.error_code == "invalid_grant" or err.suberror == "client_mismatch"))) then
        break
      end
    end
    if not errors.is_error(last) then last = errors.ClientAuthError("unexpected_error", tostring(last)) end
    if last.correlation_id == nil then last.correlation_id = ctx.correlation_id end
    error(last, 0)
  end)
end

--- Redeems a refresh token obtained elsewhere (MSAL's migration API,
-- msal-node's acquireTokenByRefreshToken) and caches the answer: the
-- account, id token, access token and the new refresh token, so that
-- acquire_token_silent serves the account from then on.
-- @tparam table req `{refresh_token, scopes, claims, authority,
--   correlation_id, extra_query_parameters, extra_body_parameters}`
-- @treturn promise of the result
function refresh.by_refresh_token(app, req)
  return Promise.async(function()
    if type(req.refresh_token) ~= "string" or req.refresh_token == "" then
      error(errors.ClientConfigurationError("invalid_request",
        "acquire_token_by_refresh_token needs request.refresh_token"), 0)
    end
    local scopes = try(request.check_scopes(req.scopes))
    try(request.single_resource(scopes))
    local claims = try(request.merge_claims(req.claims, app.config.auth.client_capabilities))
    local auth = app.authority
    if req.authority then auth = try(authority.for_app(app, req.authority)) end
    local metadata = try(authority.resolve(app, auth):await())
    local ctx = { env = auth.cache_env, realm = auth.realm or "", grant = "refresh_token", metadata = metadata,
      auth = auth, correlation_id = req.correlation_id or core.crypto.uuid4(),
      scopes_list = request.with_defaults(scopes, nil, app.default_scopes), started = app.clock() }
    local r = try(refresh.post(app, refresh.token_url(metadata, req.extra_query_parameters),
      refresh_body(app, ctx.scopes_list, req.refresh_token, claims, request_options.body_params(req)),
      refresh.headers(ctx.correlation_id)):await())
    if r.id_token and app.config.system.validate_id_token_signature then
      try(require("msal.jwks").verify(app, metadata, r.id_token):await())
    end
    return try(refresh.finish(app, r, ctx))
  end)
end

return refresh

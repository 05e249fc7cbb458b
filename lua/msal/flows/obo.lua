--- The on-behalf-of grant: a middle-tier API exchanges the token it was
-- called with (the user assertion) for a token to a downstream API. As
-- MSAL: tokens are cached under the assertion's hash (userAssertionHash =
-- base64url(sha256(assertion))), so a later call with the same assertion is
-- served from the cache; once the access token is due, the refresh token
-- the OBO answer carried is redeemed first, and only then the assertion
-- again.
-- @module msal.flows.obo
local Promise = require("msal.promise")
local authority = require("msal.authority")
local core = require("msal.core")
local errors = require("msal.errors")
local id_token = require("msal.id_token")
local network = require("msal.network")
local refresh = require("msal.flows.refresh")
local request = require("msal.request")
local request_options = require("msal.request_options")

local try = errors.try

local obo = {}

--- RFC 7523's grant type, with which MSAL sends the user assertion.
obo.GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"

--- MSAL's userAssertionHash of an assertion.
function obo.assertion_hash(assertion)
  return core.crypto.b64url_encode(core.crypto.sha256(assertion))
end

-- Entries of a section with this assertion hash (and client, environment,
-- scopes), as msal-node's OBO look-up filters them: not by account or realm.
local function entries_with_hash(store, section, filter, hash)
  local out = {}
  for _, key in ipairs(store:find(section, filter)) do
    local e = store:get(section, key)
    if e and e.userAssertionHash == hash then out[#out + 1] = { key = key, entry = e } end
  end
  return out
end

-- The cached answer for the assertion (synchronous), and `{why, rt}`: "hit",
-- "refresh_due" or why not, and the OBO refresh token when there is one.
-- (Two results: the cache plugin's access passes no more.)
local function lookup(app, ctx)
  local store, now = app.token_cache.store, app.clock()
  local rts = entries_with_hash(store, "RefreshToken", { client_id = app.client_id, environment = ctx.env }, ctx.hash)
  local rt = rts[1] and rts[1].entry.secret
  if ctx.skip then return nil, { why = "skipped", rt = rt } end
  local ats = entries_with_hash(store, "AccessToken", { client_id = app.client_id, environment = ctx.env,
    target = request.search_scopes(ctx.scopes) }, ctx.hash)
  if #ats == 0 then return nil, { why = "none", rt = rt } end
  if #ats > 1 then return nil, { why = "multiple", rt = rt } end
  local at = ats[1].entry
  local expires_on, refresh_on = tonumber(at.expires_on), tonumber(at.refresh_on)
  if not expires_on or now + app.renewal_offset > expires_on then return nil, { why = "expired", rt = rt } end
  local hid = at.home_account_id
  local jwt = hid ~= "" and app.token_cache:id_token_for(hid, at.environment, app.client_id, at.realm) or nil
  local result = {
    access_token = at.secret, id_token = jwt, id_token_claims = jwt and id_token.decode(jwt) or nil,
    scopes = request.scope_list(at.target), expires_on = expires_on, ext_expires_on = tonumber(at.extended_expires_on),
    refresh_on = refresh_on, account = hid ~= "" and app.token_cache:account_for({ home_account_id = hid },
      at.environment, at.realm) or nil,
    tenant_id = at.realm, token_type = at.token_type or "Bearer", from_cache = true,
  }
  return result, { why = (refresh_on and now >= refresh_on) and "refresh_due" or "hit", rt = rt }
end

local function redeem(app, req, ctx, grant_params)
  local metadata = try(authority.resolve(app, ctx.auth):await())
  local body = {
    { "client_id", app.client_id },
    { "scope", table.concat(ctx.scopes_list, " ") },
    { "client_info", "1" },
    { "claims", ctx.claims },
  }
  for _, kv in ipairs(grant_params) do body[#body + 1] = kv end
  for _, kv in ipairs(request_options.body_params(req)) do body[#body + 1] = kv end
  ctx.metadata, ctx.started = metadata, app.clock()
  local r = try(refresh.post(app, refresh.token_url(metadata, req.extra_query_parameters),
    network.form_encode(body), refresh.headers(ctx.correlation_id)):await())
  return try(refresh.finish(app, r, ctx))
end

--- acquire_token_on_behalf_of: the cached token for this assertion, else
-- the OBO refresh token, else the assertion itself (grant jwt-bearer,
-- `requested_token_use=on_behalf_of`). `force_refresh` and `claims` skip
-- the cached access token.
-- @treturn promise of the result (with the user's account when the answer
--   had an id token)
function obo.acquire(app, req)
  return Promise.async(function()
    if type(req.obo_assertion) ~= "string" or req.obo_assertion == "" then
      error(errors.ClientConfigurationError("invalid_request",
        "acquire_token_on_behalf_of needs request.obo_assertion (the token the API was called with)"), 0)
    end
    local scopes = try(request.check_scopes(req.scopes))
    try(request.single_resource(scopes, app.authority.kind))
    local auth = app.authority
    if req.authority then auth = try(authority.for_app(app, req.authority)) end
    local ctx = { auth = auth, env = auth.cache_env, realm = auth.realm or "", scopes = scopes,
      hash = obo.assertion_hash(req.obo_assertion), correlation_id = req.correlation_id or core.crypto.uuid4(),
      skip = req.force_refresh or request.has_claims(req.claims),
      scopes_list = request.with_defaults(scopes, nil, app.default_scopes),
      claims = try(request.merge_claims(req.claims, app.config.auth.client_capabilities)) }
    -- a partitioned cache (Redis) keeps OBO tokens under the assertion's
    -- hash, as msal-node advises: the user is not known before the answer
    ctx.user_assertion_hash, ctx.partition = ctx.hash, { partition_key = ctx.hash }
    local tc = app.token_cache
    local cached, found = tc:for_partition(ctx.partition):access(false, lookup, app, ctx)
    local rt = found.rt
    if cached then
      cached.correlation_id, cached.authority = ctx.correlation_id, auth.url
      if found.why == "hit" then return cached end
    end
    if rt then
      ctx.grant = "refresh_token"
      local ok, r = pcall(redeem, app, req, ctx, { { "grant_type", "refresh_token" }, { "refresh_token", rt } })
      if ok then return r end
      app.log:info("on-behalf-of: the refresh token was refused (" .. tostring(r.error_code) ..
        "); sending the assertion again")
    end
    ctx.grant = obo.GRANT
    local ok, r = pcall(redeem, app, req, ctx, { { "grant_type", obo.GRANT },
      { "requested_token_use", "on_behalf_of" }, { "assertion", req.obo_assertion } })
    if ok then return r end
    if cached then return cached end -- past refresh_on: still valid
    error(r, 0)
  end)
end

return obo

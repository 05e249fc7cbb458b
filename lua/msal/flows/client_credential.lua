--- The client-credentials grant (a daemon's own token, no user): MSAL's
-- request, and its app tokens cached per tenant with no account (an
-- AccessToken whose home_account_id is empty and realm the authority's
-- tenant, as msal-node keys it), served from the cache until refresh_on or
-- expiry. `azure_region` sends the request to a regional endpoint.
-- @module msal.flows.client_credential
local Promise = require("msal.promise")
local authority = require("msal.authority")
local core = require("msal.core")
local errors = require("msal.errors")
local fetch_lock = require("msal.cache.fetch_lock")
local network = require("msal.network")
local refresh = require("msal.flows.refresh")
local request = require("msal.request")
local request_options = require("msal.request_options")
local save = require("msal.cache.save")

local try = errors.try

local client_credential = {}

-- msal-common's KNOWN_PUBLIC_CLOUDS: their regional host is
-- {region}.login.microsoft.com; other hosts get the region as a prefix.
local PUBLIC_CLOUD = { ["login.microsoftonline.com"] = true, ["login.windows.net"] = true,
  ["login.microsoft.com"] = true, ["sts.windows.net"] = true }

--- MSAL's value for azure_region that reads the region from the
-- environment (REGION_NAME).
client_credential.AUTO_DETECT = "TryAutoDetect"

-- The environment, replaceable by specs.
client_credential.getenv = os.getenv

--- The region a request goes to: the request's, else the configuration's;
-- TryAutoDetect reads REGION_NAME (MSAL then also asks IMDS; here no region
-- found means the global endpoint). nil for none.
function client_credential.region_of(app, req)
  local region = req.azure_region or app.config.auth.azure_region
  if region == client_credential.AUTO_DETECT then
    region = client_credential.getenv("REGION_NAME")
    region = region and region:gsub("%s+", ""):lower()
    if region == "" then region = nil end
  end
  return region
end

--- The regional form of an endpoint URL (msal-common's
-- buildRegionalAuthorityString).
-- @treturn[1] string
-- @treturn[2] nil
-- @treturn[2] table ClientConfigurationError for a region that is not a host label
function client_credential.regional(endpoint, region)
  if not region then return endpoint end
  if not region:match("^[%w][%w%-]*$") then
    return nil, errors.ClientConfigurationError("invalid_azure_region",
      "azure_region must be a region name such as \"westus2\" or \"TryAutoDetect\"")
  end
  local scheme, host, rest = endpoint:match("^(%a[%w+.-]*://)([^/?#]+)(.*)$")
  if not host then return endpoint end
  local hostname = host:gsub(":%d+$", ""):lower()
  local regional = PUBLIC_CLOUD[hostname] and (region .. ".login.microsoft.com") or (region .. "." .. host)
  return scheme .. regional .. rest
end

-- The cached app token for the scopes, when one answers (synchronous).
local function lookup(app, sc, env, realm)
  local status, at, expires_on, ext_expires_on, refresh_on = app.token_cache.store:find_access_token(
    "", env, app.client_id, realm, sc, app.clock(), app.renewal_offset)
  if status ~= "hit" and status ~= "refresh_due" then return nil, status end
  return { access_token = at.secret, scopes = request.scope_list(at.target), expires_on = expires_on, ext_expires_on = ext_expires_on,
    refresh_on = refresh_on, tenant_id = realm, token_type = at.token_type or "Bearer", from_cache = true }, status
end

-- Stores an app token: older ones of the tenant whose scopes overlap go.
local function store_token(tc, ctx, r)
  local store = tc.store
  local now = math.floor(ctx.started)
  local expires_on = now + r.expires_in
  local ext = expires_on + (r.ext_expires_in or 0)
  local refresh_on = r.refresh_in and r.refresh_in > 0 and now + r.refresh_in or nil
  local target = (r.scope and r.scope ~= "") and r.scope or table.concat(ctx.scopes, " ")
  local new_set = save.scope_set(target)
  for _, key in ipairs(store:find("AccessToken", { home_account_id = "", environment = ctx.env,
      client_id = ctx.client_id, realm = ctx.realm })) do
    local old = store:get("AccessToken", key)
    if old and old.home_account_id == "" and next(new_set) then
      for s in pairs(save.scope_set(old.target or "")) do
        if new_set[s] then store:remove("AccessToken", key); break end
      end
    end
  end
  local bearer = r.token_type:lower() == "bearer"
  store:put("AccessToken", {
    home_account_id = "", environment = ctx.env,
    credential_type = bearer and "AccessToken" or "AccessToken_With_AuthScheme",
    client_id = ctx.client_id, secret = r.access_token, realm = ctx.realm, target = target,
    cached_at = tostring(now), expires_on = tostring(expires_on), extended_expires_on = tostring(ext),
    refresh_on = refresh_on and tostring(refresh_on) or nil, token_type = r.token_type,
  })
  return { target = target, expires_on = expires_on, ext_expires_on = ext, refresh_on = refresh_on }
end

local function network_token(app, req, ctx)
  local metadata = try(authority.resolve(app, ctx.auth):await())
  local endpoint = try(client_credential.regional(metadata.token_endpoint, client_credential.region_of(app, req)))
  local body = {
    { "client_id", app.client_id },
    { "scope", table.concat(ctx.scopes, " ") },
    { "grant_type", "client_credentials" },
    { "claims", try(request.merge_claims(req.claims, app.config.auth.client_capabilities)) },
  }
  for _, kv in ipairs(request_options.body_params(req)) do body[#body + 1] = kv end
  ctx.started = app.clock()
  local r = try(refresh.post(app, refresh.token_url({ token_endpoint = endpoint }, req.extra_query_parameters),
    network.form_encode(body), refresh.headers(ctx.correlation_id)):await())
  local tc = app.token_cache
  local saved = tc:for_partition({ home_account_id = "", tenant_id = ctx.realm }):access(true, store_token, tc, ctx, r)
  return { access_token = r.access_token, scopes = request.scope_list(saved.target), expires_on = saved.expires_on,
    ext_expires_on = saved.ext_expires_on, refresh_on = saved.refresh_on, tenant_id = ctx.realm,
    token_type = r.token_type, from_cache = false, correlation_id = ctx.correlation_id, authority = ctx.auth.url }
end

-- The cached app token for the request's scopes: the result and
-- find_access_token's status, or nil and the status.
local function from_cache(app, ctx)
  return app.token_cache:for_partition({ home_account_id = "", tenant_id = ctx.realm })
    :access(false, lookup, app, request.search_scopes(ctx.scopes), ctx.env, ctx.realm)
end

-- Across processes that share the cache, one request too (msal.cache.fetch_lock).
local function locked_token(app, req, ctx, key)
  if req.force_refresh or request.has_claims(req.claims) then return network_token(app, req, ctx) end
  local whose = { client_id = app.client_id, home_account_id = "", tenant_id = ctx.realm }
  return try(fetch_lock.fetch(app, key, whose, function()
    local r, why = from_cache(app, ctx)
    if why ~= "hit" then return nil end
    r.correlation_id, r.authority = ctx.correlation_id, ctx.auth.url
    return r
  end, function() return Promise.async(network_token, app, req, ctx) end):await())
end

-- One token request for concurrent callers that would send the same one
-- (a daemon's workers starting together): they share its promise.
local function shared_request(app, req, ctx)
  local key = table.concat({ "client_credential", ctx.auth.url, table.concat(ctx.scopes, " "), req.claims or "",
    tostring(client_credential.region_of(app, req)), req.force_refresh and "force" or "" }, "\0")
  local inflight = app.inflight
  local p = inflight[key]
  if not p then
    p = Promise.async(locked_token, app, req, ctx, key)
    inflight[key] = p
    local function done() if inflight[key] == p then inflight[key] = nil end end
    p:next(done, done)
  end
  return try(p:await())
end

--- acquire_token_by_client_credential: the cached app token, else a
-- client-credentials request (one for concurrent callers that need the
-- same token, in this process and, through the cache plugin's refresh
-- lock, in the others that share the cache). `force_refresh` and `claims` skip the cache; past
-- refresh_on a failed request still serves the cached token.
-- @treturn promise of the result (`access_token`, `scopes`, `expires_on`,
--   `ext_expires_on`, `refresh_on`, `tenant_id`, `token_type`,
--   `from_cache`, `correlation_id`, `authority`; no account)
function client_credential.acquire(app, req)
  return Promise.async(function()
    local scopes = try(request.check_scopes(req.scopes))
    if #scopes == 0 then
      error(errors.ClientConfigurationError("empty_input_scopes_error",
        "acquire_token_by_client_credential needs scopes, such as {\"https://graph.microsoft.com/.default\"}"), 0)
    end
    local auth = app.authority
    if req.authority then auth = try(authority.for_app(app, req.authority)) end
    local ctx = { auth = auth, env = auth.cache_env, realm = auth.tenant or "", client_id = app.client_id,
      scopes = scopes, correlation_id = req.correlation_id or core.crypto.uuid4() }
    local cached
    if not (req.force_refresh or request.has_claims(req.claims)) then
      local why
      cached, why = from_cache(app, ctx)
      if cached then
        cached.correlation_id, cached.authority = ctx.correlation_id, auth.url
        if why == "hit" then return cached end
      end
    end
    if not cached then return shared_request(app, req, ctx) end
    -- past refresh_on: refresh, and serve the cached token if that fails
    local ok, r = pcall(shared_request, app, req, ctx)
    if ok then return r end
    app.log:warning("proactive refresh failed, serving the cached app token: " .. tostring(r.error_code))
    return cached
  end)
end

return client_credential

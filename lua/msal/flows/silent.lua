--- acquire_token_silent: the cached access token when one answers the
-- request by MSAL's rules, else the refresh token, else
-- InteractionRequiredAuthError.
-- @module msal.flows.silent
local Promise = require("msal.promise")
local authority = require("msal.authority")
local errors = require("msal.errors")
local events = require("msal.events")
local id_token = require("msal.id_token")
local loop = require("msal.loop")
local refresh = require("msal.lazy").require("msal.flows.refresh")
local request = require("msal.request")
local request_options = require("msal.request_options")

local policies = request_options.CacheLookupPolicy

local silent = {}

-- Why a look-up did not answer, in words for the logs.
local MISS = {
  none = "no access token for these scopes",
  expired = "the access token expired (or is within the renewal offset)",
  refresh_due = "past the access token's refresh_on: refreshing it early",
  multiple = "more than one access token matches these scopes",
}

local function miss_reason(req, why)
  if why == "skipped" then
    return req.force_refresh and "force_refresh was asked"
      or request.has_claims(req.claims) and "the request carries claims" or "cache_lookup_policy skips the access token"
  end
  return MISS[why] or tostring(why)
end

-- One line per decision, the account named only when PII logging is on.
local function log_decision(app, level, req, message)
  local log = app.log
  if not log:enabled(level) then return end
  local acct = type(req) == "table" and type(req.account) == "table" and req.account or nil
  log:log(level, "acquire_token_silent: " .. message, acct and ("acquire_token_silent: " .. message
    .. " (account " .. tostring(acct.username or acct.home_account_id) .. ")") or nil)
end

-- Checked, normalised forms of the scope lists an app asks for, by the list
-- joined with spaces: a repeated request costs one look-up, not a re-parse.
-- Apps ask for a handful of lists; the cap only bounds a misuse. One memo
-- per protocol mode: only Entra's lists are checked for a single resource.
local memos = { aad = { lists = {}, size = 0, entra = true }, oidc = { lists = {}, size = 0 } }

local function scopes_of(scopes, memo)
  if type(scopes) ~= "table" then return request.check_scopes(scopes) end
  local scope_memo = memo.lists
  local n = #scopes
  if n == 1 then
    -- most requests name one scope, its own joined form: no type checks
    -- or concat per hit
    local m = scope_memo[scopes[1]]
    if m and m.count == 1 then return m end
  end
  for i = 1, n do
    -- concat would raise on a table or boolean: check_scopes names it
    if type(scopes[i]) ~= "string" then return request.check_scopes(scopes) end
  end
  local joined = table.concat(scopes, " ")
  local m = scope_memo[joined]
  -- {"a b"} joins like {"a", "b"}: only a list of as many scopes is the same
  if m and m.count == n then return m end
  local ok, err = request.check_scopes(scopes)
  if not ok then return nil, err end
  if memo.entra then
    local _, rerr = request.single_resource(scopes)
    if rerr then return nil, rerr end
  end
  if memo.size >= 1000 then scope_memo, memo.size = {}, 0; memo.lists = scope_memo end
  m = { count = n, search = request.search_scopes(scopes) }
  scope_memo[joined], memo.size = m, memo.size + 1
  return m
end
silent.scopes_of = scopes_of

-- The granted scopes of a cached token, as an array shared by every record
-- with that target (records never change it; results get copies).
local targets, targets_size = {}, 0

local function scopes_array(target)
  local a = targets[target]
  if a then return a end
  a = request.scope_list(target)
  if targets_size >= 1000 then targets, targets_size = {}, 0 end
  targets[target], targets_size = a, targets_size + 1
  return a
end

local EMPTY = {}

-- A hit's record is an array, not a table of fields: with 10,000 accounts
-- every record is cold in the CPU's caches, and an array is half the lines.
-- 1-8: the result's values; 9-13: what the record answers for, and until
-- when; 14-15: the store's generation it was last checked at, and its home
-- account's generation.
local R_AT, R_IDT, R_SCOPES, R_EXP, R_EXT, R_REFRESH, R_ACCOUNT, R_TYPE = 1, 2, 3, 4, 5, 6, 7, 8
local R_REALM, R_AUTH, R_ENV, R_FROM, R_TO, R_GEN, R_HOME_GEN = 9, 10, 11, 12, 13, 14, 15

local function copy(list)
  local out = {}
  for i = 1, #list do out[i] = list[i] end
  return out
end

-- The result of a hit, fresh each call: callers may change what they get
-- (the account and the id token's claims are the cache's read-only
-- snapshots). Its id_token_claims are decoded when first read, as an
-- account's are: records that held them cost ~1 KB of Lua heap per account,
-- and the collector's cost per hit grows with that heap.
local result_mt = id_token.claims_on_read(function(r) return rawget(r, "id_token") end)

local function result_of(h, req, auth)
  return setmetatable({
    access_token = h[R_AT],
    id_token = h[R_IDT],
    scopes = copy(h[R_SCOPES]),
    expires_on = h[R_EXP],
    ext_expires_on = h[R_EXT],
    refresh_on = h[R_REFRESH],
    account = h[R_ACCOUNT],
    tenant_id = h[R_REALM],
    token_type = h[R_TYPE],
    from_cache = true,
    correlation_id = req.correlation_id,
    authority = auth.url,
  }, result_mt)
end

-- The cache's snapshot of the account a result carries (the caller's own
-- when it is that snapshot).
local function snapshot_of(tc, account, env, realm)
  return tc:account_for(account, account.environment or env, realm) or account
end

-- The store's answer, as a record; nil and why when it has none.
local function record_of(app, sc, account, auth, realm, env, now, gen)
  local tc = app.token_cache
  local hid = account.home_account_id
  local status, at, expires_on, ext_expires_on, refresh_on, cached_at =
    tc.store:find_access_token(hid, env, app.client_id, realm, sc.search, now, app.renewal_offset)
  -- past refresh_on MSAL refreshes and, if that fails, serves the cached
  -- token; without a refresh path the cached token is the answer
  if status ~= "hit" and status ~= "refresh_due" then return nil, status end
  local jwt = tc:id_token_for(hid, account.environment or env, app.client_id, realm)
  return {
    at.secret, jwt, scopes_array(at.target), expires_on, ext_expires_on,
    refresh_on, snapshot_of(tc, account, env, realm), at.token_type or "Bearer",
    -- the store's own test: not cached in the future, not within the
    -- renewal offset of expiry, not past refresh_on
    realm, auth, account.environment, cached_at - 1,
    math.min(expires_on - app.renewal_offset, refresh_on or math.huge),
    gen, tc.store:home_generation(hid),
  }, status
end

-- Whether the request skips cached access tokens: force_refresh, claims,
-- or a cache_lookup_policy without them (RefreshToken, RefreshTokenAndNetwork, Skip).
local function skips_access_token(req)
  return req.force_refresh or (req.claims ~= nil and request.has_claims(req.claims))
    or (req.cache_lookup_policy or 0) >= policies.RefreshToken
end

-- The cache look-up proper; runs inside the cache plugin's access hooks.
local function lookup(app, req, sc, account, auth, realm, env)
  if skips_access_token(req) then
    return nil, "skipped"
  end
  local now = app.clock()
  -- A repeated hit reads one record (these scopes, this home account)
  -- instead of the store: with 10,000 accounts the store's entries are cold
  -- in the CPU's caches, and one record keeps less alive for the collector
  -- than a memo per entry would.
  local tc = app.token_cache
  local hits, gen = tc:hits_for(sc.search)
  local hid = account.home_account_id
  local h = hits[hid]
  if h and h[R_REALM] == realm and h[R_AUTH] == auth and h[R_ENV] == account.environment
      and now >= h[R_FROM] and now <= h[R_TO] then
    if h[R_GEN] == gen then return result_of(h, req, auth), "hit" end
    -- the store changed since: another account's refresh leaves this
    -- record good (with 10,000 accounts refreshing, dropping every record
    -- at each change would make nearly every hit a first one)
    if h[R_HOME_GEN] == tc.store:home_generation(hid) then
      h[R_GEN], h[R_ACCOUNT] = gen, snapshot_of(tc, account, env, realm)
      return result_of(h, req, auth), "hit"
    end
  end
  local status
  h, status = record_of(app, sc, account, auth, realm, env, now, gen)
  if not h then return nil, status end
  if status == "hit" then hits[hid] = h end
  return result_of(h, req, auth), status
end

-- The realm (tenant id) tokens of a tenant authority are cached under: the
-- id token's tid, so a tenant named by its id is its own realm, and one
-- named by its domain is the id its metadata's issuer names. Per parsed
-- authority (the app keeps those), false when the issuer names no id.
local realms = setmetatable({}, { __mode = "k" })

-- The realm to look tokens up in: the authority's tenant when it names one
-- (by id, or by a domain whose id is known), else the account's tenant
-- (common, organizations, consumers, B2C, ADFS, OIDC providers, or a
-- domain whose metadata names no id). nil while a domain's id is unknown:
-- the network half resolves the metadata first.
local function realm_for(app, auth, account)
  local tenant = auth.realm
  if tenant == nil then return account.tenant_id or "" end
  local r = realms[auth]
  if r == nil then
    if authority.is_tenant_id(tenant) then
      r = tenant
    else
      r = authority.known_tenant_id(app, auth)
      if r == nil then return nil end
    end
    realms[auth] = r
  end
  return r or account.tenant_id or tenant
end

-- The rest of a request that changes the token request it sends (extra
-- parameters, the refresh token's expiry offset); "" for most requests.
local function extras_of(req)
  local q, o = req.extra_query_parameters, req.refresh_token_expiration_offset
  if not (q or req.extra_body_parameters or req.token_body_parameters or o) then return "" end
  local parts = { tostring(o) }
  for _, kv in ipairs(request_options.params_list(q)) do parts[#parts + 1] = "q:" .. kv[1] .. "=" .. kv[2] end
  for _, kv in ipairs(request_options.body_params(req)) do parts[#parts + 1] = "b:" .. kv[1] .. "=" .. kv[2] end
  return table.concat(parts, "\0")
end

--- The cache half of the silent flow (synchronous).
-- @treturn[1] table the result, with "hit" or "refresh_due"
-- @treturn[2] nil
-- @treturn[2] table the error of a bad request
-- @treturn[3] nil
-- @treturn[3] string why the cache did not answer ("none", "expired",
--   "multiple", "skipped", "unresolved": a domain-named tenant whose id is
--   not known yet)
-- @treturn[3] table the context the refresh flow needs
function silent.from_cache(app, req)
  if type(req) ~= "table" then
    return nil, errors.ClientConfigurationError("invalid_request", "the request must be a table")
  end
  local sc, err = scopes_of(req.scopes or EMPTY, app.authority.kind == "oidc" and memos.oidc or memos.aad)
  if not sc then return nil, err end
  local account = req.account
  -- none given: the active account, as msal-browser
  if account == nil then account = app.token_cache:get_active_account() end
  if type(account) ~= "table" or type(account.home_account_id) ~= "string" then
    return nil, errors.ClientAuthError("no_account_in_silent_request",
      "acquire_token_silent needs request.account (from get_all_accounts or get_account) or an active account")
  end
  local auth = app.authority
  if req.authority ~= nil then
    auth, err = authority.for_app(app, req.authority)
    if not auth then return nil, err end
  end
  local realm = realm_for(app, auth, account)
  local tc = app.token_cache
  local result, why
  if realm == nil then
    -- a domain-named tenant whose id is not known yet: the account's
    -- tokens may be another tenant's, so none is served before the network
    -- half has read the authority's metadata
    realm, why = account.tenant_id or auth.realm, "unresolved"
  elseif tc.plugin then
    result, why = tc:for_partition({ home_account_id = account.home_account_id, tenant_id = realm })
      :access(false, lookup, app, req, sc, account, auth, realm, auth.cache_env)
  else
    result, why = lookup(app, req, sc, account, auth, realm, auth.cache_env)
  end
  if result and why == "hit" then return result, why end
  return result, why, {
    account = account, auth = auth, realm = realm, env = auth.cache_env, scopes = sc, unresolved = why == "unresolved",
    -- requests that would send the same token request share one
    thumbprint = table.concat({ auth.url, account.home_account_id, realm, sc.search,
      req.claims or "", skips_access_token(req) and "force" or "", extras_of(req) }, "\0"),
  }
end

local function no_op() end

--- The network half: redeems a refresh token for the request. When the
-- cache is shared between processes and its plugin can lock a refresh
-- (`plugin:lock_refresh(thumbprint, {client_id, home_account_id,
-- tenant_id}) -> promise of unlock`), one process (or
-- nginx worker) refreshes while the others wait for the lock and then find
-- its token in the cache: N processes, one token request. A lock not had in
-- time resolves a no-op unlock, and the waiter refreshes itself.
-- @treturn promise of the result
function silent.refresh(app, req, ctx)
  if ctx.unresolved then
    -- the authority's metadata names the tenant's id: then the cache
    return authority.resolve(app, ctx.auth):next(function()
      local ok, result, why, again = pcall(silent.from_cache, app, req)
      if not ok then return Promise.reject(result) end
      if result and why == "hit" then return result end
      if not again then return Promise.reject(why) end
      again.unresolved = false
      local p = silent.refresh(app, req, again)
      -- past refresh_on: a failed refresh still leaves a valid token to serve
      if result then p = p:catch(function() return result end) end
      return p
    end)
  end
  local plugin = app.token_cache.plugin
  if not (plugin and plugin.lock_refresh) then return refresh.acquire(app, req, ctx) end
  local asked = loop.now_ms()
  local whose = { client_id = app.client_id, home_account_id = ctx.account.home_account_id, tenant_id = ctx.realm }
  return plugin:lock_refresh(ctx.thumbprint, whose):next(function(unlock)
    log_decision(app, "verbose", nil, ("%s the refresh lock after %d ms"):format(
      unlock and "took" or "did not get", math.floor(loop.now_ms() - asked)))
    unlock = unlock or no_op
    local ok, result, why, again = pcall(silent.from_cache, app, req)
    if ok and result and why == "hit" then
      log_decision(app, "info", req, "another process refreshed meanwhile: served from the cache")
      unlock()
      return result
    end
    local p = refresh.acquire(app, req, ok and again or ctx)
    p:next(unlock, unlock)
    return p
  end)
end

-- Runs make() unless a request with the same thumbprint is in flight, in
-- which case its promise is shared: one token request for many callers.
-- The entry is recorded before make() runs: a transport may yield inside it
-- (a cosocket in OpenResty suspends the request), and a caller arriving
-- meanwhile must find it.
local function single_flight(app, thumbprint, make, ...)
  local inflight = app.inflight
  local p = inflight[thumbprint]
  if p then
    log_decision(app, "verbose", nil, "joining the same refresh already in flight")
    return p
  end
  local settle_with
  p = Promise.new(function(resolve) settle_with = resolve end)
  inflight[thumbprint] = p
  -- handles both outcomes, so this bookkeeping never counts as an
  -- unhandled rejection
  local function done() inflight[thumbprint] = nil end
  p:next(done, done)
  local ok, made = pcall(make, ...)
  if ok then
    settle_with(made)
  else
    settle_with(Promise.reject(errors.is_error(made) and made or errors.ClientAuthError("unexpected_error", tostring(made))))
  end
  return p
end

local E = events.types


--- acquire_token_silent: the cache, else one shared refresh, with the
-- events of a silent acquisition. A hit makes no promise chain at all.
-- @treturn promise of the result
function silent.acquire(app, req)
  local ev = app.events
  local cid = type(req) == "table" and req.correlation_id or nil
  if ev.n > 0 then ev:emit(E.ACQUIRE_TOKEN_START, "silent", nil, nil, cid) end
  -- a cache plugin's hooks raise (MSAL's plugin shape): cache_unavailable,
  -- a malformed partition… reach the caller as the rejection
  local ok, result, why, ctx = pcall(silent.from_cache, app, req)
  if not ok then
    result, why = nil, errors.is_error(result) and result or errors.ClientAuthError("unexpected_error", tostring(result))
  end
  if result and why == "hit" then
    log_decision(app, "verbose", req, "served from the cache")
    if ev.n > 0 then ev:emit(E.ACQUIRE_TOKEN_SUCCESS, "silent", result, nil, cid) end
    return Promise.fulfilled(result)
  end
  local p
  local policy = type(req) == "table" and req.cache_lookup_policy
  if not ctx then
    p = Promise.reject(why)
  elseif result and policy == policies.AccessToken then
    p = Promise.fulfilled(result) -- past refresh_on but valid: the policy forbids the refresh
  elseif policy == policies.AccessToken then
    p = Promise.reject(errors.ClientAuthError("token_refresh_required",
      "no valid cached access token, and cache_lookup_policy AccessToken forbids a refresh"))
  elseif policy == policies.Skip then
    p = Promise.reject(errors.InteractionRequiredAuthError("interaction_required",
      "cache_lookup_policy Skip uses neither cached token; without a hidden iframe only an interactive flow is left"))
  else
    log_decision(app, "info", req, "cache miss: " .. miss_reason(req, why))
    if ev.n > 0 then ev:emit(E.ACQUIRE_TOKEN_NETWORK_START, "silent", nil, nil, cid) end
    p = single_flight(app, ctx.thumbprint, silent.refresh, app, req, ctx)
    if result then
      -- past refresh_on: a failed refresh still leaves a valid token to serve
      local cached = result
      p = p:catch(function(err)
        app.log:warning("proactive refresh failed, serving the cached token: " .. tostring(err.error_code))
        return cached
      end)
    end
  end
  return ev:around(p, "silent", { ok = E.ACQUIRE_TOKEN_SUCCESS, fail = E.ACQUIRE_TOKEN_FAILURE, correlation_id = cid,
    on_fail = function(err) app.log:info("acquire_token_silent failed: " .. tostring(err.error_code)) end })
end

return silent

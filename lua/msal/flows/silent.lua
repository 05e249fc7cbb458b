--- acquire_token_silent: the cached access token when one answers the
-- request by MSAL's rules, else (from the network issue on) the refresh
-- token, else InteractionRequiredAuthError.
-- @module msal.flows.silent
local errors = require("msal.errors")
local request = require("msal.request")
local authority = require("msal.authority")

local silent = {}

-- Checked, normalised forms of the scope lists an app asks for, by the list
-- joined with spaces: a repeated request costs one look-up, not a re-parse.
-- Apps ask for a handful of lists; the cap only bounds a misuse.
local scope_memo, scope_memo_size = {}, 0

local function scopes_of(scopes)
  if type(scopes) ~= "table" then return request.check_scopes(scopes) end
  local joined = table.concat(scopes, " ")
  local m = scope_memo[joined]
  if m then return m end
  local ok, err = request.check_scopes(scopes)
  if not ok then return nil, err end
  local _, rerr = request.single_resource(scopes)
  if rerr then return nil, rerr end
  if scope_memo_size >= 1000 then scope_memo, scope_memo_size = {}, 0 end
  m = { joined = joined, search = request.search_scopes(scopes) }
  scope_memo[joined], scope_memo_size = m, scope_memo_size + 1
  return m
end
silent.scopes_of = scopes_of

-- Granted scopes by target string, split once (results share the list).
local split_memo = setmetatable({}, { __mode = "v" })
local function split(s)
  local out = split_memo[s]
  if out then return out end
  out = {}
  for w in s:gmatch("%S+") do out[#out + 1] = w end
  split_memo[s] = out
  return out
end

--- Checks a silent request and works out where its token would be cached.
-- @treturn[1] table `{scopes (memo), account, authority (parsed), env, realm}`
-- @treturn[2] nil
-- @treturn[2] table error
function silent.prepare(app, req)
  if type(req) ~= "table" then
    return nil, errors.ClientConfigurationError("invalid_request", "the request must be a table")
  end
  local sc, err = scopes_of(req.scopes or {})
  if not sc then return nil, err end
  local account = req.account
  if type(account) ~= "table" or type(account.home_account_id) ~= "string" then
    return nil, errors.ClientAuthError("no_account_in_silent_request",
      "acquire_token_silent needs request.account (from get_all_accounts or get_account)")
  end
  local auth = app.authority
  if req.authority ~= nil then
    auth, err = app:parse_authority(req.authority)
    if not auth then return nil, err end
  end
  local realm = auth.tenant
  if auth.is_multi_tenant or auth.kind ~= "aad" or not realm then
    realm = account.tenant_id or ""
  end
  return {
    scopes = sc, account = account, authority = auth, realm = realm,
    env = auth.kind == "aad" and auth.hostname or authority.environment(auth),
  }
end

--- Looks the request up in the cache. Returns the result table on a hit,
-- or nil and why not ("none", "expired", "multiple", "skipped").
function silent.from_cache(app, req, ctx)
  if req.force_refresh or request.has_claims(req.claims) then return nil, "skipped" end
  local tc = app.token_cache
  local acct = ctx.account
  local status, key, secret, target, expires_on, ext_expires_on, refresh_on, _, token_type =
    tc.store:find_access_token(acct.home_account_id, ctx.env, app.client_id, ctx.realm,
      ctx.scopes.search, app.clock(), app.renewal_offset)
  -- past refresh_on MSAL refreshes and, if that fails, serves the cached
  -- token; without a refresh path the cached token is the answer
  if status ~= "hit" and status ~= "refresh_due" then return nil, status end
  local m = tc:memo_for(acct.home_account_id, acct.environment or ctx.env, app.client_id, ctx.realm)
  return {
    access_token = secret,
    id_token = m.id_token,
    id_token_claims = m.claims,
    scopes = split(target),
    expires_on = expires_on,
    ext_expires_on = ext_expires_on,
    refresh_on = refresh_on,
    account = m.account or acct,
    tenant_id = ctx.realm,
    token_type = token_type or "Bearer",
    from_cache = true,
    correlation_id = req.correlation_id,
    authority = ctx.authority.url,
    cache_key = key,
  }, status
end

--- The whole silent flow (synchronous part): a result, or nil and an error.
function silent.acquire(app, req)
  local ctx, err = silent.prepare(app, req)
  if not ctx then return nil, err end
  local tc = app.token_cache
  local result, why = tc:access(false, silent.from_cache, app, req, ctx)
  if result then return result end
  return nil, errors.InteractionRequiredAuthError("no_tokens_found",
    "no access token in the cache answers the request (" .. why .. "), and no refresh token could be used")
end

return silent

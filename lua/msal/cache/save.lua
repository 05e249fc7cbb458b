--- Writing a token response into the cache as MSAL does: the account (from
-- client_info on Entra, else the id token), the id token, the access token
-- with the granted scopes (replacing older tokens whose scopes overlap), the
-- refresh token (FOCI tokens under the family) and the app metadata.
-- @module msal.cache.save
local accounts = require("msal.cache.accounts")

local save = {}

local OIDC = { openid = true, profile = true, offline_access = true, email = true }

-- Scopes that count for "overlap" (MSAL ignores the OpenID ones unless a
-- target has nothing else).
local function scope_set(target)
  local all, other = {}, {}
  for s in target:gmatch("%S+") do
    local l = s:lower()
    all[l] = true
    if not OIDC[l] then other[l] = true end
  end
  return next(other) and other or all
end

local function overlaps(a, b)
  for s in pairs(a) do if b[s] then return true end end
  return false
end

--- Stores a checked token response.
-- @tparam table tc the TokenCache
-- @tparam table ctx `{client_id, environment, authority (parsed), realm
--   (fallback), requested_scopes (list), now (request start, seconds),
--   authority_type ("MSSTS"|"ADFS"|"Generic"), account (the request's, for
--   refresh), grant ("refresh_token"|…)}`
-- @tparam table r the checked response (msal.token_response.check)
-- @tparam[opt] table claims the id token's checked claims
-- @tparam[opt] table ci decoded client_info
-- @treturn table `{home_account_id, realm, target, expires_on,
--   ext_expires_on, refresh_on, account_key, account_added, stored}` for
--   the result
function save.response(tc, ctx, r, claims, ci)
  local store = tc.store
  local env, cid = ctx.environment, ctx.client_id
  claims = claims or {}
  local hid
  if ctx.authority_type ~= "ADFS" and ci then
    hid = ci.uid .. "." .. ci.utid
  elseif type(claims.sub) == "string" then
    hid = claims.sub
  elseif ctx.account then
    hid = ctx.account.home_account_id
  else
    hid = ""
  end
  local realm = (type(claims.tid) == "string" and claims.tid) or (type(claims.tfp) == "string" and claims.tfp)
    or (type(claims.acr) == "string" and claims.acr) or ctx.realm or ""
  local now = math.floor(ctx.now)
  local expires_on = now + r.expires_in
  local ext = expires_on + (r.ext_expires_in or 0)
  local refresh_on = r.refresh_in and r.refresh_in > 0 and now + r.refresh_in or nil
  local target = r.scope
  if not target or target == "" then target = table.concat(ctx.requested_scopes, " ") end
  local out = { home_account_id = hid, realm = realm, target = target, expires_on = expires_on,
    ext_expires_on = ext, refresh_on = refresh_on }

  -- after a refresh, tokens of an account signed out meanwhile are not
  -- stored: that would undo the sign-out
  local account_keys = store:find("Account", { home_account_id = hid, environment = env })
  if ctx.grant == "refresh_token" and #account_keys == 0 and ctx.account then
    out.stored = false
    return out
  end

  if r.id_token then
    local local_id = (ci and ci.uid) or (type(claims.oid) == "string" and claims.oid) or claims.sub or ""
    local username = claims.preferred_username or claims.upn
      or (type(claims.emails) == "table" and claims.emails[1]) or claims.email or ""
    out.account_key, out.account_added = accounts.save(store, account_keys, {
      home_account_id = hid, environment = env, local_account_id = local_id, username = username,
      authority_type = ctx.authority_type, client_info = r.client_info,
    }, claims, ci)
    store:put("IdToken", { home_account_id = hid, environment = env, credential_type = "IdToken",
      client_id = cid, secret = r.id_token, realm = realm })
  elseif #account_keys > 0 then
    out.account_key = account_keys[1]
  end

  -- older access tokens of this account, client and realm whose scopes
  -- overlap the new one's are replaced by it
  local new_set = scope_set(target)
  for _, key in ipairs(store:find("AccessToken", { home_account_id = hid, environment = env, client_id = cid, realm = realm })) do
    local old = store:get("AccessToken", key)
    if old and overlaps(scope_set(old.target or ""), new_set) then store:remove("AccessToken", key) end
  end
  local bearer = r.token_type:lower() == "bearer"
  store:put("AccessToken", {
    home_account_id = hid, environment = env,
    credential_type = bearer and "AccessToken" or "AccessToken_With_AuthScheme",
    client_id = cid, secret = r.access_token, realm = realm, target = target,
    cached_at = tostring(now), expires_on = tostring(expires_on), extended_expires_on = tostring(ext),
    refresh_on = refresh_on and tostring(refresh_on) or nil, token_type = r.token_type,
    -- the store's (and msal-node's) name for it
    userAssertionHash = ctx.user_assertion_hash,
  })

  if r.refresh_token then
    local family = r.foci
    store:put("RefreshToken", { home_account_id = hid, environment = env, credential_type = "RefreshToken",
      client_id = cid, secret = r.refresh_token, family_id = family,
      -- msal-common keeps it (expiresOn) to refuse an expired token unsent
      expires_on = r.refresh_token_expires_in and tostring(now + r.refresh_token_expires_in) or nil,
      userAssertionHash = ctx.user_assertion_hash })
  end
  store:put("AppMetadata", { client_id = cid, environment = env, family_id = r.foci or false })
  out.stored = true
  return out
end

save.scope_set = scope_set
return save

--- Writing a token response into the cache as MSAL does: the account (from
-- client_info on Entra, else the id token), the id token, the access token
-- with the granted scopes (replacing older tokens whose scopes overlap), the
-- refresh token (FOCI tokens under the family) and the app metadata.
--
-- A credential the file already holds is updated where it is, whatever its
-- key: msal-python (the Azure CLI) writes the authority's host as the
-- environment (login.microsoftonline.com where msal-node writes
-- login.windows.net), keys refresh tokens with their target and id tokens
-- with one dash less, and finds its tokens only under its own environment.
-- A second entry beside its own would leave it redeeming its older refresh
-- token (refused once the server has rotated it) and list the user twice.
-- So an entry of the same user, client and cloud (environment aliases) is
-- matched by its fields, keeps its key and environment, and any further
-- copies of that credential are removed; new entries of a user who is in
-- the cache go under that user's environment.
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

local function lower(v)
  return type(v) == "string" and v:lower() or ""
end

-- Writes a credential into the existing entry of it (keys: the entries of
-- the same user, client and cloud that the store found; same(entry): whether
-- one is this credential), else under the key made from its fields in the
-- environment env. Of several copies the one in env is kept (else the
-- first) and the others are removed: one entry per credential.
-- @treturn string the key written
local function put_credential(store, section, fields, keys, same, env, now)
  local keep, keep_env
  local extra = {}
  for _, k in ipairs(keys) do
    local e = store:get(section, k)
    if e and same(e) then
      local e_env = lower(e.environment)
      if not keep then
        keep, keep_env = k, e
      elseif e_env == env:lower() and lower(keep_env.environment) ~= env:lower() then
        extra[#extra + 1] = keep
        keep, keep_env = k, e
      else
        extra[#extra + 1] = k
      end
    end
  end
  if keep then
    for _, k in ipairs(extra) do store:remove(section, k) end
    -- its key names its environment: msal-python recomputes keys from fields
    fields.environment = keep_env.environment
    -- msal-python redeems its newest refresh token first (by this field)
    if keep_env.last_modification_time ~= nil then fields.last_modification_time = tostring(now) end
  else
    fields.environment = env
  end
  return assert(store:put(section, fields, keep))
end

local function always() return true end

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

  local uah = ctx.user_assertion_hash
  local function same_assertion(e) return e.userAssertionHash == uah end
  local write_env = env
  -- the environment of the user's entries: the one their account has
  -- (another library's host of this cloud), else this authority's
  local function account_env(key)
    local a = key and store:get("Account", key)
    if a and type(a.environment) == "string" and a.environment ~= "" then write_env = a.environment end
  end

  if r.id_token then
    local local_id = (ci and ci.uid) or (type(claims.oid) == "string" and claims.oid) or claims.sub or ""
    local username = claims.preferred_username or claims.upn
      or (type(claims.emails) == "table" and claims.emails[1]) or claims.email or ""
    out.account_key, out.account_added = accounts.save(store, account_keys, {
      home_account_id = hid, environment = env, local_account_id = local_id, username = username,
      authority_type = ctx.authority_type, client_info = r.client_info,
    }, claims, ci)
    account_env(out.account_key)
    put_credential(store, "IdToken", { home_account_id = hid, credential_type = "IdToken",
      client_id = cid, secret = r.id_token, realm = realm },
      store:find("IdToken", { home_account_id = hid, environment = env, client_id = cid, realm = realm }),
      always, write_env, now)
  elseif #account_keys > 0 then
    out.account_key = account_keys[1]
    account_env(accounts.base_entry(store, account_keys, hid))
  end

  -- older access tokens of this account, client and realm whose scopes
  -- overlap the new one's are replaced by it (one of the same target and
  -- kind in place)
  local new_set = scope_set(target)
  local bearer = r.token_type:lower() == "bearer"
  local cred_type = bearer and "AccessToken" or "AccessToken_With_AuthScheme"
  local same_at = {}
  for _, key in ipairs(store:find("AccessToken", { home_account_id = hid, environment = env, client_id = cid, realm = realm })) do
    local old = store:get("AccessToken", key)
    if old and lower(old.target) == target:lower() and old.credential_type == cred_type
        and (bearer or lower(old.token_type) == r.token_type:lower()) and same_assertion(old) then
      same_at[#same_at + 1] = key
    elseif old and overlaps(scope_set(old.target or ""), new_set) then
      store:remove("AccessToken", key)
    end
  end
  put_credential(store, "AccessToken", {
    home_account_id = hid, credential_type = cred_type,
    client_id = cid, secret = r.access_token, realm = realm, target = target,
    cached_at = tostring(now), expires_on = tostring(expires_on), extended_expires_on = tostring(ext),
    -- false: an older token's refresh_on does not stay behind
    refresh_on = refresh_on and tostring(refresh_on) or false, token_type = r.token_type,
    -- the store's (and msal-node's) name for it
    userAssertionHash = uah,
  }, same_at, always, write_env, now)

  if r.refresh_token then
    local family = r.foci
    put_credential(store, "RefreshToken", { home_account_id = hid, credential_type = "RefreshToken",
      client_id = cid, secret = r.refresh_token, family_id = family,
      -- msal-common keeps it (expiresOn) to refuse an expired token unsent
      expires_on = r.refresh_token_expires_in and tostring(now + r.refresh_token_expires_in) or false,
      userAssertionHash = uah },
      store:find("RefreshToken", { home_account_id = hid, environment = env, client_id = cid }),
      same_assertion, write_env, now)
  end
  put_credential(store, "AppMetadata", { client_id = cid, family_id = r.foci or false },
    store:find("AppMetadata", { client_id = cid, environment = env }), always, write_env, now)
  out.stored = true
  return out
end

save.scope_set = scope_set
return save

-- Cache documents for the specs, built from parts so each test states only
-- what it changes. Values are fake; the shapes are msal-node 7's.
local cjson = require("cjson")

local F = {}

F.CLIENT = "11111111-2222-3333-4444-555555555555"
F.TENANT = "00000000-0000-0000-bbbb-000000000002"
F.UID = "00000000-0000-0000-aaaa-000000000001"
F.HID = F.UID .. "." .. F.TENANT
F.ENV = "login.windows.net"
F.FUTURE = "1893456000" -- 2030
F.PAST = "1767225600"   -- 2026-01-01

local function copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  return out
end

local function b64url(s)
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local chars = 2 + (b and 1 or 0) + (c and 1 or 0)
    for j = 1, chars do
      local idx = math.floor(n / 2 ^ (6 * (4 - j))) % 64
      out[#out + 1] = alphabet:sub(idx + 1, idx + 1)
    end
  end
  return table.concat(out)
end
F.b64url = b64url

--- An unsigned JWT with the given claims.
function F.jwt(claims)
  return b64url('{"typ":"JWT","alg":"none"}') .. "." .. b64url(cjson.encode(claims)) .. ".c2ln"
end

function F.account(o)
  local a = {
    home_account_id = F.HID, environment = F.ENV, realm = F.TENANT, local_account_id = F.UID,
    username = "test.user@example.com", authority_type = "MSSTS", name = "Test User",
  }
  for k, v in pairs(o or {}) do a[k] = v end
  return a
end

function F.id_token(o)
  local t = {
    home_account_id = F.HID, environment = F.ENV, credential_type = "IdToken", client_id = F.CLIENT,
    realm = F.TENANT,
    secret = F.jwt({ aud = F.CLIENT, iss = "https://login.microsoftonline.com/" .. F.TENANT .. "/v2.0",
      tid = F.TENANT, oid = F.UID, sub = "fake-sub", name = "Test User",
      preferred_username = "test.user@example.com", exp = 1893456000, iat = 1767225600 }),
  }
  for k, v in pairs(o or {}) do t[k] = v end
  return t
end

function F.access_token(o)
  local t = {
    home_account_id = F.HID, environment = F.ENV, credential_type = "AccessToken", client_id = F.CLIENT,
    secret = "fake-access-token", realm = F.TENANT, target = "User.Read openid profile email",
    cached_at = F.PAST, expires_on = F.FUTURE, extended_expires_on = F.FUTURE, token_type = "Bearer",
  }
  for k, v in pairs(o or {}) do t[k] = v end
  return t
end

function F.refresh_token(o)
  local t = {
    home_account_id = F.HID, environment = F.ENV, credential_type = "RefreshToken", client_id = F.CLIENT,
    secret = "fake-refresh-token",
  }
  for k, v in pairs(o or {}) do t[k] = v end
  return t
end

--- A whole cache document (a Lua table) holding the given entries, keyed
-- by MSAL's keys. entries: { Account = {…}, AccessToken = {…}, … } lists.
function F.doc(entries)
  local store = require("msal.core").store
  local doc = { Account = {}, IdToken = {}, AccessToken = {}, RefreshToken = {}, AppMetadata = {} }
  for section, list in pairs(entries) do
    for _, e in ipairs(list) do doc[section][store.key(section, e)] = e end
  end
  return doc
end

--- The usual signed-in user: account, id token, one access token, refresh token.
function F.signed_in(at_overrides)
  return F.doc({
    Account = { F.account() }, IdToken = { F.id_token() },
    AccessToken = { F.access_token(at_overrides) }, RefreshToken = { F.refresh_token() },
  })
end

--- A wrapper of cache plugin `plugin` whose accesses all concern partition
-- `w.pk` (`pk` at first; a test sets it before an access): the partition
-- key TokenCache:access would pass for an account, without an account.
function F.partitioned(plugin, pk)
  local w = { pk = pk }
  function w.before_cache_access(_, ctx)
    ctx.partition_key = w.pk
    return plugin:before_cache_access(ctx)
  end
  function w.after_cache_access(_, ctx)
    return plugin:after_cache_access(ctx)
  end
  return w
end

--- The access tokens' secrets the token cache sees now, sorted.
function F.secrets(tc)
  return tc:access(false, function()
    local out = {}
    for _, k in ipairs(tc.store:find("AccessToken", {})) do out[#out + 1] = tc.store:get("AccessToken", k).secret end
    table.sort(out)
    return out
  end)
end

F.copy = copy
F.encode = cjson.encode

return F

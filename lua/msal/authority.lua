--- Authorities: parsing an authority URL, the host aliases of the Entra
-- clouds, and the environment name tokens are cached under.
-- (Discovery and instance metadata come with the network layer.)
-- @module msal.authority
local cjson = require("msal.lazy").require("cjson.safe")
local Promise = require("msal.promise")
local errors = require("msal.errors")
local network = require("msal.network")
local url = require("msal.url")

local authority = {}

-- Entra hosts that are one environment, first the one msal-node writes into
-- the cache (instance discovery's preferred_cache).
authority.CLOUDS = {
  { "login.windows.net", "login.microsoftonline.com", "login.microsoft.com", "sts.windows.net" },
  { "login.partner.microsoftonline.cn", "login.chinacloudapi.cn" },
  { "login.microsoftonline.us", "login.usgovcloudapi.net" },
  { "login-us.microsoftonline.com" },
  { "login.microsoftonline.de" },
}

local cloud_of = {}
for _, group in ipairs(authority.CLOUDS) do
  for _, host in ipairs(group) do cloud_of[host] = group end
end

--- The alias group of an Entra host (preferred cache host first), or nil.
-- @tparam string hostname lower-case
-- @treturn table|nil
function authority.cloud(hostname)
  return cloud_of[hostname]
end

--- Tenants that are not one tenant: the account's home tenant is used.
authority.MULTI_TENANT = { common = true, organizations = true, consumers = true }

authority.is_loopback = url.is_loopback

local function fail(msg)
  return nil, errors.ClientConfigurationError("url_parse_error", msg)
end

--- Whether a tenant path segment is a tenant id (a GUID) rather than a
-- domain name or common/organizations/consumers.
function authority.is_tenant_id(tenant)
  return tenant ~= nil and tenant:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil
end

--- Parses an authority URL.
-- @tparam string s e.g. `https://login.microsoftonline.com/common`
-- @tparam[opt="aad"] string protocol_mode `"aad"` or `"oidc"`
-- @treturn[1] table `{url, scheme, host (with port, lower-case), hostname,
--   port, tenant, path, kind ("aad"|"b2c"|"adfs"|"oidc"), is_multi_tenant}`
-- @treturn[2] nil
-- @treturn[2] table ClientConfigurationError
function authority.parse(s, protocol_mode)
  if type(s) ~= "string" then return fail("authority must be a URL string") end
  local u, why = url.endpoint(s)
  if not u then return fail("authority " .. why .. ": " .. s) end
  if u.query ~= "" or u.fragment ~= "" or s:find("[?#]") then
    return fail("authority is not an absolute URL without query or fragment: " .. s)
  end
  local scheme, host, hostname, port = u.scheme, u.host, u.hostname, u.port
  local path = u.path:gsub("/+$", "")
  local tenant = path:match("^/([^/]+)")
  local kind = protocol_mode == "oidc" and "oidc" or "aad"
  if kind == "aad" then
    if not tenant then return fail("an Entra authority names a tenant: https://host/{tenant}") end
    if path:lower():find("/tfp/", 1, true) or path:lower():find("b2c_1", 1, true) then
      kind = "b2c"
    elseif tenant:lower() == "adfs" then
      kind = "adfs"
    end
  end
  local a = {
    url = scheme .. "://" .. host .. path,
    scheme = scheme, host = host, hostname = hostname, port = port,
    path = path, tenant = tenant and tenant:lower() or nil, kind = kind,
    is_multi_tenant = kind == "aad" and tenant ~= nil and authority.MULTI_TENANT[tenant:lower()] == true,
  }
  -- the tenant a single-tenant Entra authority names (an id, or a domain
  -- the silent flow maps to its id); nil means "the account's"
  a.realm = (kind == "aad" and not a.is_multi_tenant) and a.tenant or nil
  -- the host cache look-ups start from (aliases do the rest)
  a.cache_env = authority.environment(a)
  return a
end

--- The environment tokens from this authority are cached under: the
-- cloud's preferred cache host for Entra clouds (as msal-node writes), else
-- the host with its port.
function authority.environment(a)
  local group = cloud_of[a.hostname]
  if group and not a.port then return group[1] end
  return a.host
end

--- Reads `auth.cloud_discovery_metadata` (the instance discovery answer:
-- `{"metadata": [{"preferred_cache", "aliases": […]}, …]}`) into alias
-- groups, preferred cache host first.
-- @treturn[1] table groups
-- @treturn[2] nil
-- @treturn[2] table ClientConfigurationError
function authority.parse_cloud_metadata(json)
  local doc = cjson.decode(json)
  if type(doc) ~= "table" or type(doc.metadata) ~= "table" then
    return nil, errors.ClientConfigurationError("invalid_cloud_discovery_metadata",
      "auth.cloud_discovery_metadata must be JSON with a metadata list")
  end
  local groups = {}
  for _, m in ipairs(doc.metadata) do
    if type(m) ~= "table" or type(m.aliases) ~= "table" then
      return nil, errors.ClientConfigurationError("invalid_cloud_discovery_metadata",
        "every auth.cloud_discovery_metadata entry needs an aliases list")
    end
    local g, seen = {}, {}
    local first = type(m.preferred_cache) == "string" and m.preferred_cache:lower() or nil
    if first then g[1], seen[first] = first, true end
    for _, h in ipairs(m.aliases) do
      if type(h) == "string" and not seen[h:lower()] then
        g[#g + 1], seen[h:lower()] = h:lower(), true
      end
    end
    groups[#groups + 1] = g
  end
  return groups
end

--- Sets a parsed authority's cache environment from extra alias groups:
-- the group's preferred cache host, as instance discovery would.
function authority.apply_groups(a, groups)
  for _, g in ipairs(groups or {}) do
    for _, h in ipairs(g) do
      if h == a.host or h == a.hostname then
        a.cache_env = g[1]
        return a
      end
    end
  end
  return a
end

-- OpenID configurations by discovery URL, per process: every app of a
-- process shares them, as MSAL shares its authority metadata cache.
local metadata_cache = {}

--- Forgets cached discovery results (tests).
function authority.clear_cache()
  metadata_cache = {}
end

--- The OpenID configuration URL of a parsed authority (Entra's v2.0 one
-- for Entra and B2C).
-- @tparam table a a parsed authority
-- @treturn string
local function discovery_url(a)
  if a.kind == "aad" or a.kind == "b2c" then return a.url .. "/v2.0/.well-known/openid-configuration" end
  return a.url .. "/.well-known/openid-configuration"
end

authority.discovery_url = discovery_url

local function endpoint_ok(s)
  return url.endpoint(s) ~= nil
end

-- Checks an OpenID configuration document; endpoints must be https (or
-- loopback http), as the authority itself.
local function check_metadata(doc, where)
  if type(doc) ~= "table" then
    return nil, errors.ClientAuthError("invalid_authority_metadata", where .. " is not a JSON object")
  end
  for _, k in ipairs({ "token_endpoint", "authorization_endpoint" }) do
    if not endpoint_ok(doc[k]) then
      return nil, errors.ClientAuthError("invalid_authority_metadata",
        where .. ": " .. k .. " is missing or not an https URL")
    end
  end
  if type(doc.issuer) ~= "string" then
    return nil, errors.ClientAuthError("invalid_authority_metadata", where .. ": issuer is missing")
  end
  for _, k in ipairs({ "device_authorization_endpoint", "end_session_endpoint", "jwks_uri" }) do
    if doc[k] ~= nil and not endpoint_ok(doc[k]) then doc[k] = nil end
  end
  return doc
end

--- The authority's endpoints (OpenID configuration): from
-- `auth.authority_metadata` when configured, else discovered once per
-- process.
-- @tparam table app the application (its config and transport)
-- @tparam table a a parsed authority
-- @treturn promise of the metadata table
function authority.resolve(app, a)
  local configured = app.config.auth.authority_metadata
  if configured and a.url == app.authority.url then
    local doc, err = check_metadata(cjson.decode(configured), "auth.authority_metadata")
    if not doc then return Promise.reject(err) end
    return Promise.resolve(doc)
  end
  local url = discovery_url(a)
  local cached = metadata_cache[url]
  if cached then return Promise.resolve(cached) end
  return network.send(network.transport(app), { method = "GET", url = url, headers = { accept = "application/json" } })
    :next(function(res)
      if res.status ~= 200 then
        return Promise.reject(errors.ClientAuthError("endpoints_resolution_error",
          ("OpenID discovery at %s answered HTTP %d"):format(url, res.status), { status = res.status }))
      end
      local doc, err = network.json(res)
      if doc then doc, err = check_metadata(doc, "the OpenID configuration at " .. url) end
      if not doc then return Promise.reject(err) end
      metadata_cache[url] = doc
      return doc
    end)
end

--- The issuer an id token from this authority must carry: Entra's
-- multi-tenant documents say `{tenantid}`, which is the token's tenant.
function authority.expected_issuer(metadata, tid)
  local iss = metadata.issuer
  if tid and iss:find("{tenantid}", 1, true) then
    iss = iss:gsub("{tenantid}", (tid:gsub("%%", "%%%%")))
  end
  return iss
end

--- The tenant id a tenant authority stands for, when its metadata is at
-- hand (configured, or discovered earlier in this process): Entra names a
-- domain-named tenant's id in its issuer. Nothing is fetched.
-- @tparam table app
-- @tparam table a a parsed authority
-- @treturn string|false|nil the tenant id (lower case); false when the
--   issuer names none; nil when the metadata is not known yet
function authority.known_tenant_id(app, a)
  local doc
  local configured = app.config.auth.authority_metadata
  if configured and a.url == app.authority.url then
    doc = cjson.decode(configured)
  else
    doc = metadata_cache[discovery_url(a)]
  end
  if type(doc) ~= "table" then return nil end
  local id = type(doc.issuer) == "string"
    and doc.issuer:match("/(%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x)/")
  return id and id:lower() or false
end

--- An authority given on a request, parsed with the app's protocol mode and
-- cloud groups (once per URL per app: requests often repeat it).
-- @tparam table app
-- @tparam string url
-- @treturn table the parsed authority, or nil and an error
function authority.for_app(app, url)
  local memo = app.authorities
  local a = memo[url]
  if a then return a end
  local err
  a, err = authority.parse(url, app.config.auth.protocol_mode)
  if a then memo[url] = authority.apply_groups(a, app.cloud_groups) end
  return a, err
end

return authority

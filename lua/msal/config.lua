--- Configuration of an application: checked against a schema so that a
-- misspelt or wrongly typed key is a ClientConfigurationError, not a
-- silently ignored setting.
-- @module msal.config
local errors = require("msal.errors")

local config = {}

-- key -> expected Lua type, or a nested schema table
local schema = {
  auth = {
    client_id = "string", authority = "string", redirect_uri = "string",
    post_logout_redirect_uri = "string", protocol_mode = "string", known_authorities = "table", authority_metadata = "string",
    cloud_discovery_metadata = "string", client_capabilities = "table",
    client_secret = "string", client_certificate = "table", client_assertion = "string|function",
    azure_region = "string",
    oidc_options = { default_scopes = "table" },
  },
  cache = "table|string",
  system = {
    transport = "table", open_browser = "function", loopback_timeout = "number",
    token_renewal_offset = "number", logger = "table", validate_id_token_signature = "boolean",
    state_store = "table", clock = "function", http_timeout_ms = "number",
  },
}

-- The schema is the list of accepted keys: scripts/gen-types makes the LuaLS
-- classes of the configuration from it, so the annotations cannot drift.
config.SCHEMA = schema

local function fail(msg)
  return nil, errors.ClientConfigurationError("invalid_configuration", msg)
end

-- MSAL.js names its options in camelCase; ours are the same words in
-- snake_case. A few differ in more than case.
local RENAMED = {
  claimsRequest = "claims", tokenQueryParameters = "extra_query_parameters",
  refreshTokenExpirationOffsetSeconds = "refresh_token_expiration_offset",
  tokenRenewalOffsetSeconds = "token_renewal_offset",
}

--- The snake_case option a camelCase key means, when the schema has it
-- (`forceRefresh` -> `force_refresh`); nil otherwise.
-- @tparam string key
-- @tparam table sch the schema the key was checked against
function config.snake_case_of(key, sch)
  if type(key) ~= "string" or not key:find("%l%u") then return nil end
  local snake = RENAMED[key] or key:gsub("(%l)(%u)", "%1_%2"):gsub("(%u)(%u%l)", "%1_%2"):lower()
  if sch[snake] ~= nil then return snake end
  return nil
end

--- Checks a table against a schema (key -> "type|type", or a nested
-- schema): the first unknown or wrongly typed key is a
-- ClientConfigurationError naming it, with the snake_case name when the
-- key is MSAL.js's camelCase spelling of a known one.
-- @tparam table tbl
-- @tparam table sch
-- @tparam string path prefix of the names in messages (`"auth."`)
-- @tparam[opt] table how `{noun = "configuration key", code = "invalid_configuration"}`
-- @treturn[1] true
-- @treturn[2] nil
-- @treturn[2] table ClientConfigurationError
function config.check(tbl, sch, path, how)
  local noun = how and how.noun or "configuration key"
  local code = how and how.code or "invalid_configuration"
  -- no string is made unless a key is wrong: requests are checked on
  -- every acquire_token_silent, a cache hit included
  for k, v in pairs(tbl) do
    local want, got = sch[k], type(v)
    if want == nil then
      local snake = config.snake_case_of(k, sch)
      return nil, errors.ClientConfigurationError(code, "unknown " .. noun .. " '" .. path .. tostring(k) .. "'" ..
        (snake and ("; use '" .. path .. snake .. "' (MSAL.js's camelCase names are snake_case here)") or ""))
    end
    if type(want) == "table" then
      if got ~= "table" then
        return nil, errors.ClientConfigurationError(code, "'" .. path .. tostring(k) .. "' must be a table, not a " .. got)
      end
      local ok, err = config.check(v, want, path .. tostring(k) .. ".", how)
      if not ok then return nil, err end
    elseif got ~= want and not ("|" .. want .. "|"):find("|" .. got .. "|", 1, true) then
      return nil, errors.ClientConfigurationError(code,
        "'" .. path .. tostring(k) .. "' must be a " .. want:gsub("|", " or ") .. ", not a " .. got)
    end
  end
  return true
end
local check = config.check

local function check_list_of_strings(list, where)
  if list == nil then return true end
  for i = 1, #list do
    if type(list[i]) ~= "string" then return fail("'" .. where .. "' must be a list of strings") end
  end
  return true
end

-- The scopes every request gets besides its own: MSAL's OIDC defaults
-- (openid profile offline_access), or `auth.oidc_options.default_scopes`
-- (MSAL's OIDCOptions.defaultScopes) for providers that refuse one of them,
-- offline_access most often. As MSAL does, openid is always among them.
function config.default_scopes(oidc_options)
  local list = oidc_options and oidc_options.default_scopes
  if list == nil then return { "openid", "profile", "offline_access" } end
  local out, has_openid = {}, false
  for i = 1, #list do
    local s = list[i]
    if type(s) ~= "string" or s == "" or s:find("%s") then
      return fail("'auth.oidc_options.default_scopes' must be a list of scopes (strings without spaces)")
    end
    out[i] = s
    has_openid = has_openid or s == "openid"
  end
  if not has_openid then table.insert(out, 1, "openid") end
  return out
end

local CREDENTIALS = { "client_secret", "client_certificate", "client_assertion", "azure_region" }

--- Checks a configuration table and fills in defaults. A confidential
-- client's credential becomes `auth.credential` (msal.client_credential):
-- the secret or key itself is not copied into the result, so nothing that
-- prints the configuration can show it. A public client refuses the
-- credential keys instead of dropping them.
-- @tparam table cfg
-- @tparam[opt] table opts `{confidential = true}`
-- @treturn[1] table the configuration, with defaults
-- @treturn[2] nil
-- @treturn[2] table ClientConfigurationError
function config.normalize(cfg, opts)
  if type(cfg) ~= "table" then return fail("configuration must be a table") end
  local ok, err = check(cfg, schema, "")
  if not ok then return nil, err end
  local auth = cfg.auth
  if not auth or type(auth.client_id) ~= "string" or auth.client_id == "" then
    return fail("'auth.client_id' is required")
  end
  local mode = auth.protocol_mode or "aad"
  if mode ~= "aad" and mode ~= "oidc" then return fail("'auth.protocol_mode' must be \"aad\" or \"oidc\"") end
  ok, err = check_list_of_strings(auth.client_capabilities, "auth.client_capabilities")
  if not ok then return nil, err end
  ok, err = check_list_of_strings(auth.known_authorities, "auth.known_authorities")
  if not ok then return nil, err end
  local default_scopes
  default_scopes, err = config.default_scopes(auth.oidc_options)
  if not default_scopes then return nil, err end
  local system = cfg.system or {}
  local offset = system.token_renewal_offset or 300
  if offset < 0 or offset ~= offset or offset == math.huge then
    return fail("'system.token_renewal_offset' must be a number of seconds >= 0")
  end
  local logger = system.logger or {}
  local credential
  if opts and opts.confidential then
    credential, err = require("msal.client_credential").new(auth, system.clock or require("msal.core").time)
    if not credential then return nil, err end
  else
    for _, k in ipairs(CREDENTIALS) do
      if auth[k] ~= nil then
        return fail("'auth." .. k .. "' is for confidential clients: use msal.ConfidentialClientApplication")
      end
    end
  end
  return {
    auth = {
      client_id = auth.client_id,
      authority = auth.authority or "https://login.microsoftonline.com/common",
      redirect_uri = auth.redirect_uri, protocol_mode = mode,
      post_logout_redirect_uri = auth.post_logout_redirect_uri,
      known_authorities = auth.known_authorities or {},
      authority_metadata = auth.authority_metadata,
      cloud_discovery_metadata = auth.cloud_discovery_metadata,
      client_capabilities = auth.client_capabilities or {},
      credential = credential, azure_region = auth.azure_region,
      oidc_options = { default_scopes = default_scopes },
    },
    cache = cfg.cache or { location = "memory" },
    system = {
      transport = system.transport, open_browser = system.open_browser,
      loopback_timeout = system.loopback_timeout or 300, token_renewal_offset = offset,
      logger = logger, validate_id_token_signature = system.validate_id_token_signature == true,
      state_store = system.state_store, clock = system.clock,
      http_timeout_ms = system.http_timeout_ms or 30000,
    },
  }
end

-- The keys each built-in cache location takes.
local CACHE_KEYS = {
  memory = { location = true },
  file = { location = true, path = true, encrypt = true, lock = true, refresh_lock_wait_ms = true },
  redis = { location = true, url = true, partition = true, ttl_slack_s = true, local_ttl_ms = true, key_prefix = true,
    timeout_ms = true, refresh_token_ttl_s = true, local_max_partitions = true, refresh_lock_wait_ms = true, tls = true },
}

config.CACHE_KEYS = CACHE_KEYS

--- What `cache` names: "plugin" (a table with the two hooks), or a
-- built-in location ("memory", "file", "redis") whose keys are known.
-- @param c the `cache` configuration (nil: memory)
-- @treturn string the kind, or nil and a ClientConfigurationError
function config.cache_kind(c)
  if type(c) == "table" and c.before_cache_access then
    if type(c.before_cache_access) ~= "function" or type(c.after_cache_access) ~= "function" then
      return nil, errors.ClientConfigurationError("invalid_cache_plugin",
        "a cache plugin has before_cache_access(ctx) and after_cache_access(ctx) functions")
    end
    return "plugin"
  end
  local location = type(c) == "string" and c or type(c) == "table" and c.location or "memory"
  local allowed = CACHE_KEYS[location]
  if not allowed then
    return nil, errors.ClientConfigurationError("invalid_cache_location",
      "cache.location '" .. tostring(location) .. "' is not available; use \"memory\", \"file\", \"redis\" or a cache plugin")
  end
  for k in pairs(type(c) == "table" and c or {}) do
    if not allowed[k] then
      return nil, errors.ClientConfigurationError("invalid_configuration", "unknown configuration key 'cache." .. tostring(k) .. "'")
    end
  end
  return location
end

--- A host's defaults for `system` (msal.openresty, msal.nvim): a copy of
-- cfg whose `system` has `defaults[k]()` for every field k the caller left
-- nil. The caller's tables stay as they were (a plugin may keep and pass
-- them again); a cfg that is not a table, or whose `system` is not one, is
-- returned as it is, so the configuration check names what is wrong.
-- @tparam table cfg
-- @tparam table defaults field name -> function making the default
-- @treturn table
function config.with_system_defaults(cfg, defaults)
  if type(cfg) ~= "table" or (cfg.system ~= nil and type(cfg.system) ~= "table") then return cfg end
  local c, system = {}, {}
  for k, v in pairs(cfg) do c[k] = v end
  for k, v in pairs(cfg.system or {}) do system[k] = v end
  for k, make in pairs(defaults) do
    if system[k] == nil then system[k] = make() end
  end
  c.system = system
  return c
end

--- A host's application class (msal.openresty, msal.nvim): `new` runs the
-- host's `setup()`, then msal's constructor with the host's system
-- defaults (`with_system_defaults`).
-- @tparam function setup
-- @tparam table defaults
-- @tparam[opt="PublicClientApplication"] string class msal's class: also
--   "ConfidentialClientApplication"
-- @treturn table `{new = function(cfg) -> app}`
function config.host_application(setup, defaults, class)
  class = class or "PublicClientApplication"
  return {
    new = function(cfg)
      setup()
      return require("msal")[class].new(config.with_system_defaults(cfg, defaults))
    end,
  }
end

return config

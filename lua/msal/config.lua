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
    client_secret = "string", client_certificate = "table", client_assertion = "string",
  },
  cache = "table|string",
  system = {
    transport = "table", open_browser = "function", loopback_timeout = "number",
    token_renewal_offset = "number", logger = "table", validate_id_token_signature = "boolean",
    state_store = "table", clock = "function", http_timeout_ms = "number",
  },
}

local function fail(msg)
  return nil, errors.ClientConfigurationError("invalid_configuration", msg)
end

local function check(tbl, sch, path)
  for k, v in pairs(tbl) do
    local want = sch[k]
    local where = path .. tostring(k)
    if want == nil then return fail("unknown configuration key '" .. where .. "'") end
    if type(want) == "table" then
      if type(v) ~= "table" then return fail("'" .. where .. "' must be a table") end
      local ok, err = check(v, want, where .. ".")
      if not ok then return nil, err end
    elseif not ("|" .. want .. "|"):find("|" .. type(v) .. "|", 1, true) then
      return fail("'" .. where .. "' must be a " .. want:gsub("|", " or ") .. ", not a " .. type(v))
    end
  end
  return true
end

local function check_list_of_strings(list, where)
  if list == nil then return true end
  for i = 1, #list do
    if type(list[i]) ~= "string" then return fail("'" .. where .. "' must be a list of strings") end
  end
  return true
end

--- Checks a configuration table and fills in defaults.
-- @treturn[1] table the configuration, with defaults
-- @treturn[2] nil
-- @treturn[2] table ClientConfigurationError
function config.normalize(cfg)
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
  local system = cfg.system or {}
  local offset = system.token_renewal_offset or 300
  if offset < 0 or offset ~= offset or offset == math.huge then
    return fail("'system.token_renewal_offset' must be a number of seconds >= 0")
  end
  local logger = system.logger or {}
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
      client_secret = auth.client_secret, client_certificate = auth.client_certificate,
      client_assertion = auth.client_assertion,
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

--- A host's `PublicClientApplication` (msal.openresty, msal.nvim): `new`
-- runs the host's `setup()`, then msal's constructor with the host's
-- system defaults (`with_system_defaults`).
-- @tparam function setup
-- @tparam table defaults
-- @treturn table `{new = function(cfg) -> app}`
function config.host_application(setup, defaults)
  return {
    new = function(cfg)
      setup()
      return require("msal").PublicClientApplication.new(config.with_system_defaults(cfg, defaults))
    end,
  }
end

return config

--- Configuration of a ManagedIdentityApplication: which identity (system-
-- assigned, or one user-assigned id), the cache, and the system options,
-- checked so that a misspelt or wrongly typed key is a
-- ClientConfigurationError rather than a setting silently ignored.
-- @module msal.managed_identity.config
local errors = require("msal.errors")

local mi_config = {}

--- The identity a configuration names when it names none (MSAL's id for the
-- cache's client_id field).
mi_config.SYSTEM_ASSIGNED = "system_assigned_managed_identity"

--- MSAL's default directory of Azure Arc's key files on Linux.
mi_config.ARC_TOKEN_DIR = "/var/opt/azcmagent/tokens/"
--- The Azure Arc agent whose presence means Arc on Linux (no variables).
mi_config.ARC_HIMDS_PATH = "/opt/azcmagent/bin/himds"

-- key -> expected Lua type, or a nested schema
local schema = {
  managed_identity = {
    user_assigned_client_id = "string", user_assigned_resource_id = "string", user_assigned_object_id = "string",
  },
  client_capabilities = "table",
  cache = "table|string",
  system = {
    transport = "table", logger = "table", clock = "function", token_renewal_offset = "number",
    http_timeout_ms = "number", disable_internal_retries = "boolean", env = "table",
    arc_token_dir = "string", arc_himds_path = "string",
  },
}

-- read by scripts/gen-types for the LuaLS classes of the configuration
mi_config.SCHEMA = schema

-- The user-assigned kinds, in MSAL's order of precedence.
local KINDS = { "user_assigned_client_id", "user_assigned_resource_id", "user_assigned_object_id" }

local function fail(code, msg)
  return nil, errors.ClientConfigurationError(code, msg)
end

local function check(tbl, sch, path)
  for k, v in pairs(tbl) do
    local want = sch[k]
    local where = path .. tostring(k)
    if want == nil then return fail("invalid_configuration", "unknown configuration key '" .. where .. "'") end
    if type(want) == "table" then
      if type(v) ~= "table" then return fail("invalid_configuration", "'" .. where .. "' must be a table") end
      local ok, err = check(v, want, where .. ".")
      if not ok then return nil, err end
    elseif not ("|" .. want .. "|"):find("|" .. type(v) .. "|", 1, true) then
      return fail("invalid_configuration", "'" .. where .. "' must be a " .. want:gsub("|", " or ") .. ", not a " .. type(v))
    end
  end
  return true
end

-- The identity: `{kind = "system_assigned" | one of KINDS, id}`.
local function identity_of(mi)
  local kind, id
  for _, k in ipairs(KINDS) do
    local v = mi[k]
    if v ~= nil then
      if v == "" then return fail("invalid_managed_identity_id", "'managed_identity." .. k .. "' is empty") end
      if kind then
        return fail("invalid_managed_identity_id_type",
          "a managed identity is named by one id: both '" .. kind .. "' and '" .. k .. "' are set")
      end
      kind, id = k, v
    end
  end
  if not kind then return { kind = "system_assigned", id = mi_config.SYSTEM_ASSIGNED } end
  return { kind = kind, id = id }
end

--- Checks a configuration and fills in defaults.
-- @tparam[opt] table cfg `{managed_identity = {user_assigned_client_id |
--   user_assigned_resource_id | user_assigned_object_id},
--   client_capabilities, cache, system}`
-- @treturn[1] table `{identity = {kind, id}, client_capabilities, cache, system}`
-- @treturn[2] nil
-- @treturn[2] table ClientConfigurationError
function mi_config.normalize(cfg)
  if cfg == nil then cfg = {} end
  if type(cfg) ~= "table" then return fail("invalid_configuration", "configuration must be a table") end
  local ok, err = check(cfg, schema, "")
  if not ok then return nil, err end
  local identity
  identity, err = identity_of(cfg.managed_identity or {})
  if not identity then return nil, err end
  local caps = cfg.client_capabilities or {}
  for i = 1, #caps do
    if type(caps[i]) ~= "string" then return fail("invalid_configuration", "'client_capabilities' must be a list of strings") end
  end
  if next(caps) ~= nil and #caps == 0 then
    return fail("invalid_configuration", "'client_capabilities' must be a list of strings")
  end
  local system = cfg.system or {}
  local offset = system.token_renewal_offset or 300
  if offset < 0 or offset ~= offset or offset == math.huge then
    return fail("invalid_configuration", "'system.token_renewal_offset' must be a number of seconds >= 0")
  end
  for k, v in pairs(system.env or {}) do
    if type(k) ~= "string" or type(v) ~= "string" then
      return fail("invalid_configuration", "'system.env' maps variable names to string values")
    end
  end
  local dir = system.arc_token_dir or mi_config.ARC_TOKEN_DIR
  -- the key file's path is compared with dir .. name: one trailing slash
  if dir:sub(-1) ~= "/" then dir = dir .. "/" end
  return {
    identity = identity,
    client_capabilities = caps,
    cache = cfg.cache or { location = "memory" },
    system = {
      transport = system.transport, logger = system.logger or {}, clock = system.clock,
      token_renewal_offset = offset, http_timeout_ms = system.http_timeout_ms or 30000,
      disable_internal_retries = system.disable_internal_retries == true,
      env = system.env, arc_token_dir = dir, arc_himds_path = system.arc_himds_path or mi_config.ARC_HIMDS_PATH,
    },
  }
end

return mi_config

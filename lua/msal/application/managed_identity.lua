--- ManagedIdentityApplication: tokens for the identity Azure gives a VM,
-- an App Service or Functions app, a container, an Arc-enabled server,
-- Cloud Shell or a Service Fabric service, with no secret in the program.
-- The source is detected from the environment as MSAL does (see
-- msal.managed_identity.sources); tokens are cached as MSAL caches them.
-- @module msal.application.managed_identity
local cache = require("msal.cache")
local config = require("msal.config")
local logger = require("msal.logger")
local core = require("msal.core")
local mi_config = require("msal.managed_identity.config")
local sources = require("msal.lazy").require("msal.managed_identity.sources")
local flow = require("msal.lazy").require("msal.flows.managed_identity")

local M = {}

local App = {}
App.__index = App

-- The token cache the configuration asks for (as PublicClientApplication's).
local function make_cache(c, client_id)
  local kind, err = config.cache_kind(c)
  if not kind then return nil, err end
  if kind == "plugin" then return cache.new(client_id, c) end
  if kind == "memory" then return cache.new(client_id) end
  return cache.new(client_id, require("msal.cache." .. kind).new(c))
end

--- Makes a managed identity application. Raises a ClientConfigurationError
-- on a bad configuration (an unknown key, two user-assigned ids).
-- @tparam[opt] table cfg `{managed_identity = {user_assigned_client_id |
--   user_assigned_resource_id | user_assigned_object_id} (none: the
--   system-assigned identity), client_capabilities (e.g. `{"cp1"}`: sent
--   as xms_cc), cache = {location = "memory"} | plugin,
--   system = {transport, logger, clock, token_renewal_offset,
--   http_timeout_ms, disable_internal_retries, env (a table read instead of
--   the process environment: OpenResty clears it), arc_token_dir,
--   arc_himds_path}}`
-- @treturn table the application
function M.new(cfg)
  local c, err = mi_config.normalize(cfg)
  if not c then error(err, 2) end
  local tc
  tc, err = make_cache(c.cache, c.identity.id)
  if not tc then error(err, 2) end
  return setmetatable({
    config = c,
    identity = c.identity,
    client_id = c.identity.id,
    token_cache = tc,
    renewal_offset = c.system.token_renewal_offset,
    log = logger.new(c.system.logger),
    clock = c.system.clock or core.time,
    inflight = {},
  }, App)
end

--- Acquires a token for a resource: from the cache until its refresh_on
-- (half its lifetime when that exceeds two hours), else from the managed
-- identity source. `force_refresh` and `claims` skip the cached token.
-- @tparam table req `{resource = "https://vault.azure.net", force_refresh,
--   claims, correlation_id}`
-- @treturn promise of the result (`access_token`, `token_type`,
--   `expires_on`, `refresh_on`, `scopes`, `from_cache`, `correlation_id`),
--   rejected with a ManagedIdentityError or ServerError whose `source`
--   names the source, or a ClientConfigurationError for a bad request
function App:acquire_token(req)
  return flow.acquire(self, req)
end

--- The source the environment names, by MSAL's names: "ServiceFabric",
-- "AppService", "MachineLearning", "CloudShell", "AzureArc" or
-- "DefaultToImds".
-- @treturn string
function App:get_managed_identity_source()
  return self.source and self.source.name ~= "Imds" and self.source.name or sources.name(self.config.system)
end

--- The token cache: `serialize()`, `deserialize(json)`…
function App:get_token_cache()
  return self.token_cache
end

return M

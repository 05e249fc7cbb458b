--- Where a managed identity's token comes from: the source MSAL detects from
-- the environment, in MSAL's order (Service Fabric, App Service, Machine
-- Learning, Cloud Shell, Azure Arc, else IMDS), and the request each source
-- takes (method, endpoint, api-version, secret header, and the parameter
-- name of a user-assigned id).
-- @module msal.managed_identity.sources
local errors = require("msal.errors")
local network = require("msal.network")
local url = require("msal.url")

local sources = {}

local IMDS_PATH = "/metadata/identity/oauth2/token"
--- The IMDS endpoint when AZURE_POD_IDENTITY_AUTHORITY_HOST names none.
sources.IMDS_ENDPOINT = "http://169.254.169.254" .. IMDS_PATH
--- Azure Arc's endpoint when only the agent's presence says Arc.
sources.ARC_ENDPOINT = "http://127.0.0.1:40342" .. IMDS_PATH

-- The query parameter of each user-assigned kind: most sources, IMDS and
-- Azure Arc (which read the resource id as msi_res_id), Machine Learning's
-- 2017 API (client ids only).
local PARAM = {
  user_assigned_client_id = "client_id", user_assigned_object_id = "object_id",
  user_assigned_resource_id = "mi_res_id",
}
local IMDS_PARAM = {
  user_assigned_client_id = "client_id", user_assigned_object_id = "object_id",
  user_assigned_resource_id = "msi_res_id",
}

local function mi_error(source, code, msg)
  return nil, errors.ManagedIdentityError(code, source .. ": " .. msg, { source = source })
end

-- An endpoint from the environment, checked: an absolute http(s) URL.
-- MSAL's error code names the variable.
local function endpoint(source, var, value)
  local u = url.parse(value)
  if not u or (u.scheme ~= "http" and u.scheme ~= "https") then
    return mi_error(source, var:lower() .. "_url_malformed",
      "the " .. var .. " environment variable is not an http(s) URL")
  end
  return value
end

-- Each source: its name, whether the environment names it (`vars`), and
-- how to make it from the environment.
local function service_fabric(env)
  local ep, err = endpoint("ServiceFabric", "IDENTITY_ENDPOINT", env.IDENTITY_ENDPOINT)
  if not ep then return nil, err end
  return { name = "ServiceFabric", method = "GET", url = ep, api_version = "2019-07-01-preview",
    secret_header = "secret", secret = env.IDENTITY_HEADER, params = PARAM }
end

local function app_service(env)
  local ep, err = endpoint("AppService", "IDENTITY_ENDPOINT", env.IDENTITY_ENDPOINT)
  if not ep then return nil, err end
  return { name = "AppService", method = "GET", url = ep, api_version = "2019-08-01",
    secret_header = "X-IDENTITY-HEADER", secret = env.IDENTITY_HEADER, params = PARAM }
end

local function machine_learning(env, identity)
  local ep, err = endpoint("MachineLearning", "MSI_ENDPOINT", env.MSI_ENDPOINT)
  if not ep then return nil, err end
  if identity.kind ~= "system_assigned" and identity.kind ~= "user_assigned_client_id" then
    return mi_error("MachineLearning", "invalid_managed_identity_id_type",
      "only system-assigned identities and user-assigned client ids are supported")
  end
  -- the 2017 API names the client id "clientid"; a system-assigned identity
  -- is asked for by the client id the platform puts in the environment
  return { name = "MachineLearning", method = "GET", url = ep, api_version = "2017-09-01", metadata = true,
    secret_header = "secret", secret = env.MSI_SECRET,
    params = { user_assigned_client_id = "clientid" }, default_client_id = env.DEFAULT_IDENTITY_CLIENT_ID }
end

local function cloud_shell(env, identity)
  local ep, err = endpoint("CloudShell", "MSI_ENDPOINT", env.MSI_ENDPOINT)
  if not ep then return nil, err end
  if identity.kind ~= "system_assigned" then
    return mi_error("CloudShell", "unable_to_create_cloud_shell",
      "Cloud Shell supports only the system-assigned identity, not a user-assigned id")
  end
  return { name = "CloudShell", method = "POST", url = ep, metadata = true }
end

local function azure_arc(env, _, opts, by_file)
  local ep = sources.ARC_ENDPOINT
  if not by_file then
    local err
    ep, err = endpoint("AzureArc", "IDENTITY_ENDPOINT", env.IDENTITY_ENDPOINT)
    if not ep then return nil, err end
    local ok
    ok, err = endpoint("AzureArc", "IMDS_ENDPOINT", env.IMDS_ENDPOINT)
    if not ok then return nil, err end
  end
  -- as MSAL: the agent listens on the IPv4 loopback
  ep = ep:gsub("^(https?://)localhost([:/])", "%1127.0.0.1%2", 1)
  return { name = "AzureArc", method = "GET", url = ep, api_version = "2020-06-01", metadata = true,
    params = IMDS_PARAM, arc = { token_dir = opts.arc_token_dir }, confirm_identity = true }
end

--- The IMDS token endpoint: AZURE_POD_IDENTITY_AUTHORITY_HOST's (AKS pod
-- identity), else IMDS's own address.
-- @tparam table env the variables (`{name = value}`)
-- @treturn string the URL, or nil and a ManagedIdentityError
function sources.imds_endpoint(env)
  local host = env.AZURE_POD_IDENTITY_AUTHORITY_HOST
  if not host then return sources.IMDS_ENDPOINT end
  return endpoint("Imds", "AZURE_POD_IDENTITY_AUTHORITY_HOST", host:gsub("/$", "") .. IMDS_PATH)
end

local function imds(env)
  local ep, err = sources.imds_endpoint(env)
  if not ep then return nil, err end
  return { name = "Imds", method = "GET", url = ep, api_version = "2018-02-01", metadata = true,
    params = IMDS_PARAM, imds = true }
end

local function readable(path)
  local f = io.open(path, "rb")
  if not f then return false end
  f:close()
  return true
end

-- The variables each source needs, in MSAL's order of detection.
local ORDER = {
  { name = "ServiceFabric", vars = { "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT" }, make = service_fabric },
  { name = "AppService", vars = { "IDENTITY_ENDPOINT", "IDENTITY_HEADER" }, make = app_service },
  { name = "MachineLearning", vars = { "MSI_ENDPOINT", "MSI_SECRET" }, make = machine_learning },
  { name = "CloudShell", vars = { "MSI_ENDPOINT" }, make = cloud_shell },
  { name = "AzureArc", vars = { "IDENTITY_ENDPOINT", "IMDS_ENDPOINT" }, make = azure_arc },
}

-- The variables a source reads, from system.env or the process.
local NAMES = { "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT",
  "MSI_ENDPOINT", "MSI_SECRET", "DEFAULT_IDENTITY_CLIENT_ID", "AZURE_POD_IDENTITY_AUTHORITY_HOST" }

local function environment(opts)
  local env = {}
  for _, n in ipairs(NAMES) do
    local v
    if opts.env then v = opts.env[n] else v = os.getenv(n) end
    -- an empty variable counts as unset, as in MSAL
    if v ~= nil and v ~= "" then env[n] = v end
  end
  return env
end

local function all_set(env, vars)
  for _, v in ipairs(vars) do if not env[v] then return false end end
  return true
end

--- The name of the source the environment names (MSAL's
-- getManagedIdentitySource): "ServiceFabric", "AppService",
-- "MachineLearning", "CloudShell", "AzureArc" or "DefaultToImds".
-- @tparam table opts the normalized `system` options (`env`, `arc_himds_path`)
-- @treturn string
function sources.name(opts)
  local env = environment(opts)
  for _, s in ipairs(ORDER) do
    if all_set(env, s.vars) then return s.name end
  end
  if readable(opts.arc_himds_path) then return "AzureArc" end
  return "DefaultToImds"
end

--- Makes the source the environment names, for an identity.
-- @tparam table opts the normalized `system` options
-- @tparam table identity `{kind, id}`
-- @treturn[1] table the source
-- @treturn[2] nil
-- @treturn[2] table ManagedIdentityError naming the source
function sources.detect(opts, identity)
  local env = environment(opts)
  for _, s in ipairs(ORDER) do
    if all_set(env, s.vars) then return s.make(env, identity, opts) end
  end
  if readable(opts.arc_himds_path) then return azure_arc(env, identity, opts, true) end
  return imds(env)
end

local function add(q, name, value)
  q[#q + 1] = network.url_encode(name) .. "=" .. network.url_encode(value)
end

--- The request for a token of resource.
-- @tparam table src the source (detect)
-- @tparam string resource
-- @tparam table identity `{kind, id}`
-- @tparam table extra `{correlation_id, token_sha256_to_refresh,
--   client_capabilities}`
-- @treturn table `{method, url, headers, body}`; `headers` hold the
--   source's secret: never log them
function sources.request(src, resource, identity, extra)
  local headers = { ["content-type"] = "application/x-www-form-urlencoded;charset=utf-8" }
  if src.metadata then headers.metadata = "true" end
  if src.secret_header then headers[src.secret_header] = src.secret end
  local q, body = {}, nil
  if src.method == "POST" then
    -- Cloud Shell: the resource in a form body
    body = network.form_encode({ { "resource", resource } })
  else
    add(q, "api-version", src.api_version)
    add(q, "resource", resource)
    if identity.kind ~= "system_assigned" then
      add(q, src.params[identity.kind], identity.id)
    elseif src.default_client_id then
      add(q, "clientid", src.default_client_id)
    end
  end
  if extra.token_sha256_to_refresh then add(q, "token_sha256_to_refresh", extra.token_sha256_to_refresh) end
  -- as msal-node: in the query, also for Cloud Shell's POST
  if extra.client_capabilities and #extra.client_capabilities > 0 then
    add(q, "xms_cc", table.concat(extra.client_capabilities, ","))
  end
  if src.imds then
    local refresh = require("msal.flows.refresh")
    headers["x-client-sku"], headers["x-client-ver"] = refresh.SKU, refresh.VERSION
    headers["x-ms-client-request-id"] = extra.correlation_id
  end
  local u = src.url
  if #q > 0 then u = u .. (u:find("?", 1, true) and "&" or "?") .. table.concat(q, "&") end
  return { method = src.method, url = u, headers = headers, body = body }
end

return sources

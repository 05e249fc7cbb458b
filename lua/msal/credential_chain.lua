--- A credential chain for automation, in the order of azure-identity's
-- DefaultAzureCredential: a service principal from the environment, a
-- managed identity, the shared token cache, then an interactive sign-in.
-- Each step either gets the token, or says it cannot be used here
-- (`credential_unavailable`, or for the cache an InteractionRequiredAuthError)
-- and the chain tries the next one; any other failure (the authority
-- refused, the network, an unreadable cache) stops the chain, since a later
-- step would hide it.
--
-- The environment step is a ConfidentialClientApplication (a service
-- principal: client credentials), the managed-identity step a
-- ManagedIdentityApplication; each is skipped when its variables are unset.
-- The managed-identity step knows most sources by their variables; IMDS
-- (VMs, scale sets, AKS pod identity) has none, so it is probed over the
-- network, by default only on a machine whose SMBIOS says Azure (see
-- `imds_probe`). `credential_chain.steps` maps each name to its step's
-- maker.
-- @module msal.credential_chain
local Promise = require("msal.promise")
local errors = require("msal.errors")

local credential_chain = {}

--- The steps in the order they are tried.
credential_chain.ORDER = { "environment", "managed_identity", "shared_cache", "interactive" }

--- The public client the Azure CLI uses (azure-identity's default for its
-- developer credentials): tokens it cached are found with it.
credential_chain.DEFAULT_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
credential_chain.DEFAULT_AUTHORITY = "https://login.microsoftonline.com/organizations"

local function unavailable(name, message, fields)
  fields = fields or {}
  fields.credential = name
  return errors.ClientAuthError("credential_unavailable", message, fields)
end

local function set(env, name)
  local v = env(name)
  return v ~= nil and v ~= ""
end

--- The shared cache file: `$XDG_CACHE_HOME/msal/token_cache.json`, else
-- `~/.cache/msal/token_cache.json` (nil when neither variable is set).
-- @tparam[opt] function env a getenv (default os.getenv)
-- @treturn string|nil the path
function credential_chain.default_cache_path(env)
  env = env or os.getenv
  local xdg = env("XDG_CACHE_HOME")
  if xdg and xdg:sub(1, 1) == "/" then return xdg .. "/msal/token_cache.json" end
  local home = env("HOME")
  if home and home ~= "" then return home .. "/.cache/msal/token_cache.json" end
  return nil
end

--- Makes the cache file's directory, private (0700), when it is missing, so
-- the first sign-in can save its tokens there (the file cache writes the
-- file, not its directories).
-- @tparam string path the cache file
-- @treturn[1] true
-- @treturn[2] nil
-- @treturn[2] table ClientAuthError `cache_io_error`
function credential_chain.ensure_cache_dir(path)
  local dir = path:match("^(.*)/[^/]+$")
  if not dir or dir == "" then return true end
  local fileio = require("msal.core").fileio
  local st, _, code = fileio.stat(dir)
  if st or code ~= "ENOENT" then return true end
  local ok, err = fileio.mkdirs(dir)
  if ok then return true end
  return nil, errors.ClientAuthError("cache_io_error", "cannot make the cache directory: " .. tostring(err))
end

--- How to sign in when the chain gets that far: "never" in CI (`CI` set),
-- "browser" when there is a display ($DISPLAY, $WAYLAND_DISPLAY, macOS),
-- else "device_code".
-- @tparam[opt] function env a getenv (default os.getenv)
-- @treturn string
function credential_chain.default_interactive(env)
  env = env or os.getenv
  local ci = env("CI")
  if ci and ci ~= "" and ci ~= "0" and ci:lower() ~= "false" then return "never" end
  if set(env, "DISPLAY") or set(env, "WAYLAND_DISPLAY") then return "browser" end
  local mac = io.open("/System/Library/CoreServices/SystemVersion.plist", "rb")
  if mac then
    mac:close()
    return "browser"
  end
  return "device_code"
end

-- Steps. Each is made once per chain by `make(chain)` and has a `name` and
-- `get_token(req) -> promise`.
local steps = {}
credential_chain.steps = steps

-- A file's content, or nil and a ClientConfigurationError naming the
-- variable that points at it.
local function read_file(var, path)
  local f, why = io.open(path, "rb")
  local text = f and f:read("*a")
  if f then f:close() end
  if not text then
    return nil, errors.ClientConfigurationError("invalid_environment",
      var .. " names a file that cannot be read: " .. tostring(why or path))
  end
  return text
end

-- The service principal's ConfidentialClientApplication, made once from
-- the variables azure-identity's EnvironmentCredential reads.
local function service_principal(chain, given)
  if chain.service_principal then return chain.service_principal end
  local env = chain.env
  local host = set(env, "AZURE_AUTHORITY_HOST") and env("AZURE_AUTHORITY_HOST") or "https://login.microsoftonline.com"
  local auth = { client_id = env("AZURE_CLIENT_ID"), authority = host:gsub("/+$", "") .. "/" .. env("AZURE_TENANT_ID") }
  if given == "AZURE_CLIENT_SECRET" then
    auth.client_secret = env("AZURE_CLIENT_SECRET")
  elseif given == "AZURE_CLIENT_CERTIFICATE_PATH" then
    -- one PEM file with the key and the certificate, as azure-identity takes it
    local pem, err = read_file(given, env(given))
    if not pem then return nil, err end
    auth.client_certificate = { private_key = pem, certificate = pem,
      passphrase = set(env, "AZURE_CLIENT_CERTIFICATE_PASSWORD") and env("AZURE_CLIENT_CERTIFICATE_PASSWORD") or nil,
      x5c = env("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN") == "true" or env("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN") == "1" }
  else
    -- workload identity: the platform rotates the file, so it is read per request
    local path = env(given)
    auth.client_assertion = function()
      local jwt, err = read_file(given, path)
      if not jwt then error(err, 0) end
      return (jwt:gsub("%s+$", ""))
    end
  end
  local ok, app = pcall(require("msal").ConfidentialClientApplication.new, { auth = auth, system = chain.system })
  if not ok then return nil, app end
  chain.service_principal = app
  return app
end

-- The request keys a step passes on to its client.
local function pass_on(req, extra)
  local out = extra or {}
  out.force_refresh, out.claims, out.correlation_id = req.force_refresh, req.claims, req.correlation_id
  return out
end

--- environment: AZURE_CLIENT_ID, AZURE_TENANT_ID and one of
-- AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH (with
-- AZURE_CLIENT_CERTIFICATE_PASSWORD, AZURE_CLIENT_SEND_CERTIFICATE_CHAIN),
-- AZURE_FEDERATED_TOKEN_FILE; AZURE_AUTHORITY_HOST for other clouds. The
-- scopes are an app's (`<resource>/.default`).
function steps.environment(chain)
  local env = chain.env
  local kinds = { "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE" }
  return { name = "environment", get_token = function(_, req)
    local given
    for _, k in ipairs(kinds) do
      if set(env, k) then
        given = k
        break
      end
    end
    if not given then
      return Promise.reject(unavailable("environment",
        "not configured (no AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH or AZURE_FEDERATED_TOKEN_FILE)",
        { skipped = true }))
    end
    if not (set(env, "AZURE_CLIENT_ID") and set(env, "AZURE_TENANT_ID")) then
      return Promise.reject(unavailable("environment",
        given .. " is set but AZURE_CLIENT_ID and AZURE_TENANT_ID are not both set"))
    end
    local app, err = service_principal(chain, given)
    if not app then return Promise.reject(err) end
    return app:acquire_token_by_client_credential(pass_on(req, { scopes = req.scopes }))
  end }
end

-- The variables MSAL's managed-identity sources read (passed to the
-- ManagedIdentityApplication as system.env, so the chain's env applies).
local MI_VARS = { "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT",
  "MSI_ENDPOINT", "MSI_SECRET", "DEFAULT_IDENTITY_CLIENT_ID", "AZURE_POD_IDENTITY_AUTHORITY_HOST" }

local MI_SYSTEM = { "transport", "logger", "clock", "http_timeout_ms", "token_renewal_offset" }

-- MSAL's managed-identity sources, found from the environment in MSAL's
-- order (the Azure Arc agent's file stands for its variables).
local function managed_identity_source(env)
  if set(env, "IDENTITY_ENDPOINT") then
    if set(env, "IDENTITY_HEADER") then
      return set(env, "IDENTITY_SERVER_THUMBPRINT") and "Service Fabric" or "App Service"
    end
    if set(env, "IMDS_ENDPOINT") then return "Azure Arc" end
  end
  if set(env, "MSI_ENDPOINT") then return "Cloud Shell" end
  return nil
end

-- A resource from the scopes (managed identity asks by resource).
local function resource_of(scopes)
  local s = type(scopes) == "table" and #scopes == 1 and scopes[1]
  if type(s) ~= "string" then return nil end
  return (s:gsub("/%.default$", ""))
end

-- Azure VMs carry this chassis asset tag (cloud-init recognises Azure by it
-- too). Elsewhere nothing answers at IMDS's link-local address, and a
-- probe there waits for its whole timeout on every run.
local AZURE_ASSET_TAG = "7783-7084-3265-9085-8269-3286-77"
local ASSET_TAG_FILE = "/sys/class/dmi/id/chassis_asset_tag"
local IMDS_PROBE_TIMEOUT_MS = 1000

local function on_azure_vm(chain)
  local f = io.open(chain.azure_vm_tag_file or ASSET_TAG_FILE, "r")
  if not f then return false end
  local tag = f:read("*l")
  f:close()
  return tag ~= nil and tag:match("^%s*(.-)%s*$") == AZURE_ASSET_TAG
end

-- Why IMDS is not tried here, or nil when it is.
local function imds_skipped(chain)
  local mode = chain.imds_probe
  if mode == "never" then return "IMDS probing is off (imds_probe = \"never\")" end
  if mode == "always" or set(chain.env, "AZURE_POD_IDENTITY_AUTHORITY_HOST") or on_azure_vm(chain) then return nil end
  return "this is not an Azure VM (its SMBIOS asset tag says so; imds_probe = \"always\" probes anyway)"
end

-- Whether IMDS answers at all, asked once per chain like azure-identity's
-- probe: a request without the Metadata header, which IMDS refuses with an
-- HTTP error, quickly; only no answer within the timeout means no IMDS.
local function probe_imds(chain, url)
  if chain.imds_answered ~= nil then return Promise.fulfilled(chain.imds_answered) end
  local transport = chain.system and chain.system.transport or require("msal.transport.curl").new()
  local ms = chain.imds_probe_timeout_ms or IMDS_PROBE_TIMEOUT_MS
  return Promise.new(function(resolve)
    transport:request({ method = "GET", url = url .. "?api-version=2018-02-01", headers = {},
      timeout_ms = ms, connect_timeout_ms = ms }, function(err)
      chain.imds_answered = err == nil
      resolve(chain.imds_answered)
    end)
  end)
end

-- A token from the managed identity application the environment describes.
local function managed_identity_token(chain, req, resource, source)
  local env = chain.env
  if not chain.managed_identity then
    local vars = {}
    for _, k in ipairs(MI_VARS) do
      if set(env, k) then vars[k] = env(k) end
    end
    -- the chain's system options a managed-identity client takes
    local system = { env = vars }
    for _, k in ipairs(MI_SYSTEM) do system[k] = (chain.system or {})[k] end
    local ok, app = pcall(require("msal").ManagedIdentityApplication.new, { system = system,
      managed_identity = set(env, "AZURE_CLIENT_ID") and { user_assigned_client_id = env("AZURE_CLIENT_ID") } or nil })
    if not ok then return Promise.reject(app) end
    chain.managed_identity = app
  end
  return chain.managed_identity:acquire_token({ resource = resource, force_refresh = req.force_refresh,
    claims = req.claims, correlation_id = req.correlation_id }):catch(function(err)
    if type(err) == "table" and (err.error_code == "network_error" or err.error_code == "request_timeout") then
      return Promise.reject(unavailable("managed_identity", "the " .. source .. " endpoint cannot be reached: "
        .. tostring(err.error_message)))
    end
    return Promise.reject(err)
  end)
end

--- managed_identity: App Service, Azure Arc, Service Fabric, Machine
-- Learning and Cloud Shell are found from their variables (AZURE_CLIENT_ID
-- names a user-assigned identity); IMDS by a probe (`imds_probe`). A source
-- that cannot be reached is unavailable and the chain moves on.
function steps.managed_identity(chain)
  return { name = "managed_identity", get_token = function(_, req)
    local env = chain.env
    local source = managed_identity_source(env)
    local probe_url
    if not source then
      local skipped = imds_skipped(chain)
      if skipped then
        return Promise.reject(unavailable("managed_identity", "no managed identity found in the environment, and "
          .. skipped, { skipped = true }))
      end
      local url, err = require("msal.managed_identity.sources").imds_endpoint({
        AZURE_POD_IDENTITY_AUTHORITY_HOST = env("AZURE_POD_IDENTITY_AUTHORITY_HOST") })
      if not url then return Promise.reject(err) end
      source, probe_url = "IMDS", url
    end
    local resource = resource_of(req.scopes)
    if not resource then
      return Promise.reject(unavailable("managed_identity", "a managed identity takes one scope (<resource>/.default)"))
    end
    if probe_url then
      return probe_imds(chain, probe_url):next(function(answered)
        if not answered then
          return Promise.reject(unavailable("managed_identity", "IMDS did not answer at " .. probe_url .. " within "
            .. (chain.imds_probe_timeout_ms or IMDS_PROBE_TIMEOUT_MS) .. " ms"))
        end
        return managed_identity_token(chain, req, resource, source)
      end)
    end
    return managed_identity_token(chain, req, resource, source)
  end }
end

-- The account the cache step signs in silently: the one named, else the
-- only one (one per home account: a guest in several tenants is one user).
local function pick_account(app, username)
  local accounts = app:get_all_accounts()
  if username then
    local want = username:lower()
    for _, a in ipairs(accounts) do
      if a.username and a.username:lower() == want then return a end
    end
    return nil, errors.InteractionRequiredAuthError("no_account",
      "no account with that username in the token cache: sign-in needed", { credential = "shared_cache" })
  end
  local homes, first, n = {}, nil, 0
  for _, a in ipairs(accounts) do
    if not homes[a.home_account_id] then
      homes[a.home_account_id] = true
      n = n + 1
      first = first or a
    end
  end
  if n == 0 then
    return nil, errors.InteractionRequiredAuthError("no_account", "no account in the token cache: sign-in needed",
      { credential = "shared_cache" })
  end
  if n > 1 then
    return nil, unavailable("shared_cache", n .. " accounts in the token cache: name one (account / --account)")
  end
  return first
end

--- shared_cache: a silent call for the cache's account.
function steps.shared_cache(chain)
  return { name = "shared_cache", get_token = function(_, req)
    local app = chain.app
    local ok, account, err = pcall(pick_account, app, chain.account)
    if not ok then return Promise.reject(account) end -- the cache cannot be read
    if not account then return Promise.reject(err) end
    chain.log:verbose("shared_cache: silent call for the cached account")
    return app:acquire_token_silent({ scopes = req.scopes, account = account, claims = req.claims,
      force_refresh = req.force_refresh, correlation_id = req.correlation_id })
  end }
end

--- interactive: the system browser (loopback redirect) or a device code.
function steps.interactive(chain)
  return { name = "interactive", get_token = function(_, req, last)
    local app = chain.app
    -- a claims challenge the cache step met goes to the sign-in
    local claims = req.claims or (last and last.claims) or nil
    if chain.interactive == "device_code" then
      return app:acquire_token_by_device_code({ scopes = req.scopes, claims = claims,
        device_code_callback = chain.device_code_callback, correlation_id = req.correlation_id })
    end
    return app:acquire_token_popup({ scopes = req.scopes, claims = claims, login_hint = chain.account,
      correlation_id = req.correlation_id })
  end }
end

local function default_device_code_callback(info)
  io.stderr:write(info.message, "\n")
end

local Chain = {}
Chain.__index = Chain

local function bad(msg)
  error(errors.ClientConfigurationError("invalid_configuration", msg), 3)
end

-- The options credential_chain.new accepts (scripts/gen-types makes the
-- LuaLS class of them from this list).
credential_chain.OPTIONS = { client_id = true, authority = true, protocol_mode = true, cache = true, account = true,
  exclude = true, interactive = true, device_code_callback = true, system = true, env = true, imds_probe = true,
  imds_probe_timeout_ms = true, azure_vm_tag_file = true }

local IMDS_PROBES = { azure = true, always = true, never = true }

local CHOICES = { browser = true, device_code = true, never = true }

-- The application the cache and interactive steps share: the cache option
-- as a file path, a cache configuration or a plugin.
local function make_app(opts, env)
  local cache = opts.cache
  if cache == nil then cache = credential_chain.default_cache_path(env) end
  if type(cache) == "string" then
    -- a failure shows when the tokens are saved, as cache_io_error
    credential_chain.ensure_cache_dir(cache)
    cache = { location = "file", path = cache }
  end
  local msal = require("msal")
  return msal.PublicClientApplication.new({
    auth = { client_id = opts.client_id or credential_chain.DEFAULT_CLIENT_ID,
      authority = opts.authority or credential_chain.DEFAULT_AUTHORITY, protocol_mode = opts.protocol_mode },
    cache = cache, system = opts.system,
  })
end

--- Makes a credential chain.
-- Raises a ClientConfigurationError on a bad option.
-- @tparam table opts `{client_id, authority, protocol_mode, cache (a file
--   path, a cache configuration or a plugin; default the shared cache file),
--   account (a username), exclude = {step names}, interactive ("browser" |
--   "device_code" | "never"; default `default_interactive()`),
--   device_code_callback(info) (default: the message on stderr), system (the
--   application's), env (a getenv, default os.getenv), imds_probe ("azure":
--   probe IMDS only on an Azure VM or with AZURE_POD_IDENTITY_AUTHORITY_HOST
--   set, the default, or the MSAL_IMDS_PROBE variable's; "always"; "never"),
--   imds_probe_timeout_ms (default
--   1000), azure_vm_tag_file (the SMBIOS chassis asset tag that marks an
--   Azure VM; default /sys/class/dmi/id/chassis_asset_tag)}`
-- @treturn table the chain: `get_token(req)`, and `app`, the
--   PublicClientApplication of its cache and interactive steps
function credential_chain.new(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then bad("credential_chain takes a table of options") end
  for k in pairs(opts) do
    if not credential_chain.OPTIONS[k] then bad("unknown credential_chain option '" .. tostring(k) .. "'") end
  end
  local env = opts.env or os.getenv
  if type(env) ~= "function" then bad("'env' must be a function like os.getenv") end
  if opts.account ~= nil and type(opts.account) ~= "string" then bad("'account' must be a username") end
  local interactive = opts.interactive or credential_chain.default_interactive(env)
  if not CHOICES[interactive] then bad("'interactive' must be \"browser\", \"device_code\" or \"never\"") end
  local excluded = {}
  if opts.exclude ~= nil and type(opts.exclude) ~= "table" then bad("'exclude' must be a list of step names") end
  for _, name in ipairs(opts.exclude or {}) do
    if not steps[name] then
      bad("unknown credential '" .. tostring(name) .. "' in exclude: " .. table.concat(credential_chain.ORDER, ", "))
    end
    excluded[name] = true
  end
  if interactive == "never" then excluded.interactive = true end
  local probe = opts.imds_probe or env("MSAL_IMDS_PROBE") or "azure"
  if not IMDS_PROBES[probe] then
    bad((opts.imds_probe and "'imds_probe'" or "MSAL_IMDS_PROBE") .. " must be \"azure\", \"always\" or \"never\"")
  end
  local ms = opts.imds_probe_timeout_ms
  if ms ~= nil and not (type(ms) == "number" and ms >= 1 and ms <= 60000) then
    bad("'imds_probe_timeout_ms' must be a number of milliseconds from 1 to 60000")
  end
  if opts.azure_vm_tag_file ~= nil and type(opts.azure_vm_tag_file) ~= "string" then
    bad("'azure_vm_tag_file' must be a path")
  end
  local app = make_app(opts, env)
  local self = setmetatable({
    app = app, log = app.log, env = env, system = opts.system, account = opts.account, interactive = interactive,
    device_code_callback = opts.device_code_callback or default_device_code_callback,
    excluded = excluded, list = {}, imds_probe = probe, imds_probe_timeout_ms = ms,
    azure_vm_tag_file = opts.azure_vm_tag_file,
  }, Chain)
  for _, name in ipairs(credential_chain.ORDER) do
    if not excluded[name] then self.list[#self.list + 1] = steps[name](self) end
  end
  return self
end

-- Whether the chain goes on after a step failed so: the step cannot be used
-- here, or the cache has no token and a later step may sign in.
local function moves_on(step, err)
  if err.error_code == "credential_unavailable" then return true end
  return step.name == "shared_cache" and errors.is_interaction_required(err)
end

-- The chain's answer when no step could get a token: the cache's
-- InteractionRequiredAuthError when there was one (a sign-in would help),
-- else credential_unavailable. Its message says what each step that was
-- there met (steps with nothing configured are left out) and which steps
-- were excluded.
local function exhausted(self, attempts)
  local parts, skipped, wanted = {}, {}, nil
  for _, a in ipairs(attempts) do
    local note = a.name .. ": " .. tostring(a.error.error_message)
    if errors.is_interaction_required(a.error) then
      wanted = a.error
      table.insert(parts, 1, note)
    elseif a.error.skipped then
      skipped[#skipped + 1] = note
    else
      parts[#parts + 1] = note
    end
  end
  if #parts == 0 then parts = skipped end
  local excluded = {}
  for _, name in ipairs(credential_chain.ORDER) do
    if self.excluded[name] then excluded[#excluded + 1] = name end
  end
  if #parts == 0 then parts[1] = "no step to try" end
  if #excluded > 0 then parts[#parts + 1] = "excluded: " .. table.concat(excluded, ", ") end
  local summary = table.concat(parts, "; ")
  if wanted then
    return errors.InteractionRequiredAuthError(wanted.error_code, summary, { suberror = wanted.suberror,
      claims = wanted.claims, correlation_id = wanted.correlation_id, attempts = attempts })
  end
  return errors.ClientAuthError("credential_unavailable", "no credential of the chain could get a token: " .. summary,
    { attempts = attempts })
end

--- Gets a token from the first step that can.
-- @tparam table req `{scopes, claims, force_refresh, correlation_id}`
-- @treturn promise of the step's result (as acquire_token_silent's) with
--   `credential`, the step's name; rejected with the first error that stops
--   the chain, or, when every step was unavailable, InteractionRequiredAuthError
--   (the cache had nothing and interaction is excluded) or ClientAuthError
--   `credential_unavailable`; the error's `attempts` lists `{name, error}`
function Chain:get_token(req)
  if type(req) ~= "table" then
    return Promise.reject(errors.ClientConfigurationError("invalid_request", "get_token takes {scopes = {...}}"))
  end
  return Promise.async(function()
    local attempts, last = {}, nil
    for _, step in ipairs(self.list) do
      local r, err = step:get_token(req, last):await()
      if r then
        self.log:info("credential chain: token from " .. step.name)
        r.credential = step.name
        return r
      end
      if not errors.is_error(err) then err = errors.ClientAuthError("unexpected_error", tostring(err)) end
      if err.error_code == "credential_unavailable" then
        -- the chain's own words: no user data in them
        self.log:info("credential chain: " .. step.name .. ": " .. tostring(err.error_message))
      else
        self.log:info("credential chain: " .. step.name .. ": " .. tostring(err.error_code))
      end
      attempts[#attempts + 1] = { name = step.name, error = err }
      if not moves_on(step, err) then
        err.attempts = attempts
        error(err, 0)
      end
      last = err
    end
    error(exhausted(self, attempts), 0)
  end)
end

return credential_chain

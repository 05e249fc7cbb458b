--- A run's settings: each option from the command line, else its
-- environment variable, else the configuration file, else its default.
-- The configuration file is JSON read as data (never code to run), so a
-- file someone else wrote can only set values.
-- @module msal.cli.settings
local cjson = require("msal.lazy").require("cjson.safe")
local args = require("msal.cli.args")
local exit_codes = require("msal.cli.exit_codes")
local credential_chain = require("msal.credential_chain")

local settings = {}

local usage = exit_codes.usage

-- The keys a configuration file may hold, and their JSON types.
local CONFIG_KEYS = {
  client_id = "string", tenant = "string", authority = "string", protocol_mode = "string", cache = "string",
  azure_cli_cache = "boolean", scope = "string|array", account = "string", output = "string", interactive = "string",
}

--- The configuration file's path: --config, else MSAL_CONFIG, else
-- `$XDG_CONFIG_HOME/msal/config.json`, else `~/.config/msal/config.json`.
-- @treturn string|nil the path
-- @treturn boolean whether it was named (then it must exist)
function settings.config_path(given, getenv)
  if given.config then return given.config, true end
  local named = getenv("MSAL_CONFIG")
  if named and named ~= "" then return named, true end
  local xdg = getenv("XDG_CONFIG_HOME")
  if xdg and xdg:sub(1, 1) == "/" then return xdg .. "/msal/config.json", false end
  local home = getenv("HOME")
  if home and home ~= "" then return home .. "/.config/msal/config.json", false end
  return nil, false
end

local function is_array_of_strings(v)
  if type(v) ~= "table" then return false end
  local n = 0
  for _ in pairs(v) do n = n + 1 end
  for i = 1, n do
    if type(v[i]) ~= "string" then return false end
  end
  return true
end

--- Reads a configuration file: a JSON object of known keys.
-- @tparam string path
-- @tparam boolean required whether a missing file is an error
-- @treturn[1] table the values (empty when there is no file)
-- @treturn[2] nil
-- @treturn[2] table a usage error naming the file
function settings.read_config(path, required)
  local f = path and io.open(path, "rb")
  if not f then
    if required then return nil, usage("cannot read the configuration file " .. tostring(path)) end
    return {}
  end
  local text = f:read("*a")
  f:close()
  local doc, err = cjson.decode(text)
  if type(doc) ~= "table" or (next(doc) ~= nil and doc[1] ~= nil) then
    return nil, usage("the configuration file " .. path .. " is not a JSON object" .. (err and (": " .. err) or ""))
  end
  for k, v in pairs(doc) do
    local want = CONFIG_KEYS[k]
    if not want then
      return nil, usage("the configuration file " .. path .. " has an unknown key '" .. tostring(k) .. "'")
    end
    local ok = type(v) == want or (want == "string|array" and (type(v) == "string" or is_array_of_strings(v)))
    if not ok then
      return nil, usage(("the configuration file %s: '%s' must be a %s"):format(path, k, want:gsub("|", " or ")))
    end
  end
  return doc
end

local function split_scopes(s)
  local out = {}
  for w in s:gmatch("[^%s,]+") do out[#out + 1] = w end
  return out
end

local function in_choices(o, v)
  for _, c in ipairs(o.choices) do
    if c == v then return true end
  end
  return false
end

-- An option's value and the level it came from (1 the command line, 2 the
-- caller's extra layer (git's settings), 3 the environment, 4 the file).
local function lookup(o, given, extra, getenv, file)
  local key = args.key(o[1])
  if given[key] ~= nil then return given[key], 1, "--" .. o[1] end
  if extra and extra[key] ~= nil then return extra[key], 2, "git config msal." .. key end
  local v = o.env and getenv(o.env)
  if v ~= nil and v ~= "" then return v, 3, o.env end
  if o.config and file[o.config] ~= nil then return file[o.config], 4, "configuration key " .. o.config end
  return nil
end

-- The authority URL with its first path segment (the tenant) replaced.
local function with_tenant(url, tenant)
  local base, rest = url:match("^(%a[%w+.-]*://[^/?#]+)/?[^/?#]*(.*)$")
  if not base then return nil end
  return base .. "/" .. tenant .. rest
end

local function azure_cli_cache_path(getenv)
  local dir = getenv("AZURE_CONFIG_DIR")
  if not dir or dir == "" then
    local home = getenv("HOME")
    if not home or home == "" then return nil end
    dir = home .. "/.azure"
  end
  return dir .. "/msal_token_cache.json"
end

local function resolve_cache(given, values, levels, getenv)
  if given.cache and given.azure_cli_cache then return nil, usage("give --cache or --azure-cli-cache, not both") end
  local lc, la = levels.cache or math.huge, levels.azure_cli_cache or math.huge
  if values.azure_cli_cache == true and la <= lc then
    local p = azure_cli_cache_path(getenv)
    if not p then return nil, usage("--azure-cli-cache needs HOME (or AZURE_CONFIG_DIR)") end
    return p
  end
  if values.cache then return values.cache end
  local p = credential_chain.default_cache_path(getenv)
  if not p then return nil, usage("no cache file: set HOME or XDG_CACHE_HOME, or give --cache") end
  return p
end

local function resolve_authority(values, levels)
  local authority, tenant = values.authority, values.tenant
  if levels.authority == 1 and levels.tenant == 1 then
    return nil, usage("give --tenant or --authority, not both")
  end
  if tenant and (not authority or levels.tenant <= levels.authority) then
    local url = with_tenant(authority or credential_chain.DEFAULT_AUTHORITY, tenant)
    if not url or tenant:find("[/?#%s]") then
      return nil, usage("cannot make an authority of the tenant '" .. tenant .. "'")
    end
    return url
  end
  return authority or credential_chain.DEFAULT_AUTHORITY
end

--- Resolves a command's settings.
-- @tparam table cmd an entry of msal.cli.commands.LIST
-- @tparam table given the parsed command line (msal.cli.args)
-- @tparam table sys msal.cli.system's table
-- @tparam[opt] table extra values between the command line and the
--   environment, by key (git's `msal.*` settings)
-- @treturn[1] table `{client_id, authority, protocol_mode, cache, scopes,
--   account, output, interactive, credentials, all, verbose, color}`
-- @treturn[2] nil
-- @treturn[2] table a usage error
function settings.resolve(cmd, given, sys, extra)
  local getenv = sys.getenv
  local file = {}
  local wants_file = false
  for _, o in ipairs(cmd.options) do
    if o.config then wants_file = true end
  end
  if wants_file then
    local path, required = settings.config_path(given, getenv)
    local err
    file, err = settings.read_config(path, required)
    if not file then return nil, err end
  end
  local values, levels, has_cache = {}, {}, false
  for _, o in ipairs(cmd.options) do
    local key = args.key(o[1])
    if key == "cache" then has_cache = true end
    local v, level, source = lookup(o, given, extra, getenv, file)
    if v ~= nil then
      if o.repeatable and type(v) == "string" then v = split_scopes(v) end
      if o.choices and level > 1 and not in_choices(o, v) then
        return nil, usage(source .. " must be one of " .. table.concat(o.choices, ", ") .. ", not '" .. tostring(v) .. "'")
      end
      if key == "azure_cli_cache" and type(v) ~= "boolean" then v = true end
      values[key], levels[key] = v, level
    end
  end
  local s = {
    client_id = values.client_id or credential_chain.DEFAULT_CLIENT_ID, protocol_mode = values.protocol_mode,
    scopes = values.scope, account = values.account, output = values.output, all = values.all == true,
    credentials = values.credential, verbose = values.verbose == true, color = values.color or "auto",
  }
  local err
  s.authority, err = resolve_authority(values, levels)
  if not s.authority then return nil, err end
  if has_cache then
    s.cache, err = resolve_cache(given, values, levels, getenv)
    if not s.cache then return nil, err end
  end
  if values.interactive then
    s.interactive = values.interactive:gsub("%-", "_")
  else
    s.interactive = credential_chain.default_interactive(getenv)
  end
  return s
end

return settings

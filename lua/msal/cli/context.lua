--- What the commands share: the application or credential chain a run's
-- settings describe, with the run's logger and interaction on stderr.
-- @module msal.cli.context
local credential_chain = require("msal.credential_chain")
local errors = require("msal.errors")
local interact = require("msal.cli.interact")

local context = {}

--- The application's `system` settings for a run: logs on stderr with
-- --verbose (PII stays off), the browser opener that says what it does.
-- @tparam table s the run's settings
-- @tparam table out the run's writer
-- @treturn table
function context.system_config(s, out)
  local sys = { open_browser = interact.open_browser(out) }
  if s.verbose then sys.logger = { level = "verbose", sink = out:log_sink() } end
  return sys
end

-- Runs a constructor that raises configuration errors: the object, or nil
-- and the error.
local function construct(fn, ...)
  local ok, v = pcall(fn, ...)
  if ok then return v end
  if errors.is_error(v) then return nil, v end
  return nil, errors.ClientConfigurationError("invalid_configuration", tostring(v))
end

--- The application over the run's cache (for accounts and logout).
-- @treturn table|nil the app, or nil and the error
function context.app(s, out)
  return construct(require("msal").PublicClientApplication.new, {
    auth = { client_id = s.client_id, authority = s.authority, protocol_mode = s.protocol_mode },
    cache = { location = "file", path = s.cache }, system = context.system_config(s, out),
  })
end

--- The credential chain of a run (msal token, msal git-credential).
-- @treturn[1] table the chain
-- @treturn[1] function stop: ends the device code's countdown
-- @treturn[2] nil
-- @treturn[2] table the error
function context.chain(s, out, sys)
  local ok, err = credential_chain.ensure_cache_dir(s.cache)
  if not ok then return nil, err end
  local exclude
  if s.credentials then
    local chosen = {}
    for _, name in ipairs(s.credentials) do chosen[name] = true end
    exclude = {}
    for _, name in ipairs(credential_chain.ORDER) do
      if not chosen[name] then exclude[#exclude + 1] = name end
    end
  end
  local callback, stop = interact.device_code(out)
  local chain
  chain, err = construct(credential_chain.new, {
    client_id = s.client_id, authority = s.authority, protocol_mode = s.protocol_mode, cache = s.cache,
    account = s.account, exclude = exclude, interactive = s.interactive, device_code_callback = callback,
    system = context.system_config(s, out), env = sys.getenv,
  })
  if not chain then return nil, err end
  chain.log:verbose("cache file " .. s.cache .. "; interaction: " .. s.interactive)
  return chain, stop
end

return context

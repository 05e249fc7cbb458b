--- The exit statuses of `msal`, each kind of failure its own, so that a
-- script can tell "sign in first" from "the network is down".
-- @module msal.cli.exit_codes
local exit_codes = {
  OK = 0, FAILURE = 1, USAGE = 2, INTERACTION_REQUIRED = 3, SERVER = 4, NETWORK = 5, CACHE = 6, UNAVAILABLE = 7,
}

--- What each status means, in order: the help text and the man page show it.
exit_codes.MEANINGS = {
  { 0, "the token was printed (or the command did what it was asked)" },
  { 1, "any other failure (the browser could not be opened, the device code expired, ...)" },
  { 2, "usage: a bad option, argument, environment variable or configuration file" },
  { 3, "interaction required but not allowed (--interactive never, or CI is set)" },
  { 4, "the authority refused (an OAuth error answer: ServerError)" },
  { 5, "network: the authority could not be reached, or did not answer in time" },
  { 6, "the token cache cannot be read or written" },
  { 7, "no credential of the chain could be used (e.g. several cached accounts and no --account)" },
}

-- Error codes of the cache plugins: the file is unreadable, insecure,
-- locked, or the store behind it is down.
local CACHE_CODES = {
  invalid_cache = true, cache_io_error = true, cache_file_insecure = true, cache_decryption_failed = true,
  cache_lock_timeout = true, cache_unavailable = true, invalid_cache_key = true,
}

--- The exit status for an error object of msal.errors (or the command
-- line's own usage error).
-- @tparam table err
-- @treturn integer
function exit_codes.of(err)
  if type(err) ~= "table" then return exit_codes.FAILURE end
  local name, code = err.name, err.error_code
  if name == "UsageError" or name == "ClientConfigurationError" then return exit_codes.USAGE end
  if name == "InteractionRequiredAuthError" then return exit_codes.INTERACTION_REQUIRED end
  if name == "ServerError" or code == "endpoints_resolution_error" then return exit_codes.SERVER end
  if code == "network_error" or code == "request_timeout" then return exit_codes.NETWORK end
  if CACHE_CODES[code] then return exit_codes.CACHE end
  if code == "credential_unavailable" then return exit_codes.UNAVAILABLE end
  return exit_codes.FAILURE
end

--- A usage error of the command line (exit status 2).
-- @tparam string message
-- @treturn table an error with `name` "UsageError"
function exit_codes.usage(message)
  local e = require("msal.errors").ClientConfigurationError("usage", message)
  e.name = "UsageError"
  return e
end

return exit_codes

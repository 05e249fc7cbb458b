--- `msal token`: an access token on stdout, from the credential chain.
-- @module msal.cli.token
local context = require("msal.cli.context")
local exit_codes = require("msal.cli.exit_codes")
local output = require("msal.cli.output")

local token = {}

--- Runs the command.
-- @tparam table s the run's settings
-- @tparam table _ the positionals (none)
-- @tparam table out the run's writer
-- @tparam table sys msal.cli.system's table
-- @treturn integer the exit status
function token.run(s, _, out, sys)
  if not s.scopes or #s.scopes == 0 then
    return out:fail(exit_codes.usage("a scope is needed: --scope SCOPE (or MSAL_SCOPE, or scope in the configuration file)"))
  end
  local chain, stop = context.chain(s, out, sys)
  if not chain then return out:fail(stop) end
  local r, err = chain:get_token({ scopes = s.scopes }):await()
  stop()
  if not r then return out:fail(err) end
  out:print(output.format_token(r, s.output))
  return exit_codes.OK
end

return token

--- `msal logout`: removes accounts and their tokens from the cache (the
-- authority is not told; its session stays).
-- @module msal.cli.logout
local context = require("msal.cli.context")
local errors = require("msal.errors")
local exit_codes = require("msal.cli.exit_codes")

local logout = {}

-- One account per home account: removing it removes it in every tenant.
local function homes(list)
  local seen, out = {}, {}
  for _, a in ipairs(list) do
    if not seen[a.home_account_id] then
      seen[a.home_account_id] = true
      out[#out + 1] = a
    end
  end
  return out
end

--- Runs the command.
-- @treturn integer the exit status
function logout.run(s, _, out)
  if s.all and s.account then return out:fail(exit_codes.usage("give --account or --all, not both")) end
  local app, err = context.app(s, out)
  if not app then return out:fail(err) end
  local tc = app:get_token_cache()
  if s.all then
    local ok, n = pcall(tc.remove_all_accounts, tc)
    if not ok then return out:fail(n) end
    out:say(n > 0 and "removed every account and its tokens" or "the cache holds no account")
    return exit_codes.OK
  end
  local ok, list = pcall(app.get_all_accounts, app)
  if not ok then return out:fail(list) end
  list = homes(list)
  local target
  if s.account then
    for _, a in ipairs(list) do
      if a.username and a.username:lower() == s.account:lower() then target = a end
    end
    if not target then
      return out:fail(errors.ClientAuthError("no_account", "no account with that username in the cache"))
    end
  elseif #list == 0 then
    out:say("the cache holds no account")
    return exit_codes.OK
  elseif #list > 1 then
    return out:fail(exit_codes.usage(#list .. " accounts in the cache: give --account USER or --all"))
  else
    target = list[1]
  end
  local _, rerr = app:remove_account(target):await()
  if rerr then return out:fail(rerr) end
  out:say("removed the account and its tokens")
  return exit_codes.OK
end

return logout

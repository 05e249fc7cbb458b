--- `msal accounts`: the token cache's accounts.
-- @module msal.cli.accounts
local context = require("msal.cli.context")
local exit_codes = require("msal.cli.exit_codes")
local output = require("msal.cli.output")

local accounts = {}

--- Runs the command.
-- @treturn integer the exit status
function accounts.run(s, _, out)
  local app, err = context.app(s, out)
  if not app then return out:fail(err) end
  local ok, list = pcall(app.get_all_accounts, app)
  if not ok then return out:fail(list) end
  if s.output == "json" then
    local rows = {}
    for i, a in ipairs(list) do
      rows[i] = { username = a.username, home_account_id = a.home_account_id, tenant_id = a.tenant_id,
        environment = a.environment, name = a.name, local_account_id = a.local_account_id }
    end
    out:print(output.json(output.array(rows)))
  else
    local lines = {}
    for i, a in ipairs(list) do
      lines[i] = table.concat({ a.username or "", a.home_account_id or "", a.tenant_id or "" }, "\t") .. "\n"
    end
    out:print(table.concat(lines))
  end
  return exit_codes.OK
end

return accounts

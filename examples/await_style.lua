-- The same pattern with await, inside msal.async (a coroutine the loop
-- drives); top-level await works too and runs the loop itself.
--   scripts/examples
local msal = require("msal")
local example = require("local_authority")

local app = example.app()

msal.async(function()
  for round = 1, 2 do
    local request = { scopes = { "User.Read" }, account = app:get_all_accounts()[1] }
    local result, err
    if request.account then result, err = app:acquire_token_silent(request):await() end
    if not result and (not err or msal.is_interaction_required(err)) then
      result, err = app:acquire_token_popup(request):await()
    end
    if not result then error(tostring(err)) end
    print(("round %d: token for %s, from cache: %s"):format(round, result.account.username, tostring(result.from_cache)))
  end
end):catch(function(err) print("failed: " .. tostring(err)); os.exit(1) end)
msal.run()

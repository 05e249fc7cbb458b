-- The seed's first snippet, promise style: silent, and on
-- InteractionRequiredAuthError the popup; then call the API with the token.
--   scripts/examples
local msal = require("msal")
local example = require("local_authority")

local app = example.app()

local function call_api(token) print("calling the API with a token of " .. #token .. " characters") end

local function acquire()
  local request = { scopes = { "User.Read" }, account = app:get_all_accounts()[1] }
  local first = request.account and app:acquire_token_silent(request)
    or msal.Promise.reject(msal.InteractionRequiredAuthError("no_account", "nobody signed in yet"))
  return first
    :next(function(result)
      print("silent: from cache = " .. tostring(result.from_cache))
      call_api(result.access_token)
    end)
    :catch(function(err)
      if not msal.is_interaction_required(err) then return msal.Promise.reject(err) end
      print("silent failed (" .. err.error_code .. "): opening the browser")
      return app:acquire_token_popup(request):next(function(result)
        print("popup: signed in as " .. result.account.username)
        call_api(result.access_token)
      end)
    end)
end

acquire():next(acquire):catch(function(err) print("failed: " .. tostring(err)); os.exit(1) end)
msal.run()

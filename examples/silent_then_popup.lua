-- The pattern of the seed document, in Lua: silent first, the browser only
-- when the user must interact, then silent again from the cache.
--
--   scripts/example    (starts the bundled local Entra-like authority)
--
-- MSAL_EXAMPLE_AUTHORITY names the authority (the local one by default);
-- with MSAL_EXAMPLE_BROWSER=auto a stand-in "browser" follows the
-- authority's redirect itself, so the example runs offline with no display.
local msal = require("msal")

local authority = assert(os.getenv("MSAL_EXAMPLE_AUTHORITY"), "set MSAL_EXAMPLE_AUTHORITY (scripts/example does)")
local open_browser
if os.getenv("MSAL_EXAMPLE_BROWSER") == "auto" then
  -- what a browser does here: load the authorize page (the local authority
  -- signs the user in at once) and follow its redirect to our listener
  open_browser = function(url)
    print("browser: opening the sign-in page")
    msal.async(function()
      local http = require("msal.transport.curl").new()
      local page = assert(http:send({ method = "GET", url = url }):await())
      assert(http:send({ method = "GET", url = page.headers.location }):await())
      http:close()
    end)
  end
end

local app = msal.PublicClientApplication.new({
  auth = { client_id = "lua-msal-example", authority = authority },
  system = { open_browser = open_browser, loopback_timeout = 120 },
})

local request = { scopes = { "User.Read" } }

local function get_token()
  request.account = app:get_all_accounts()[1]
  if not request.account then
    print("no account in the cache yet -> interactive sign-in in the browser")
    return app:acquire_token_popup(request)
  end
  return app:acquire_token_silent(request)
    :catch(function(err)
      if not msal.is_interaction_required(err) then error(err) end
      print("silent: " .. err.error_code .. " -> interactive sign-in in the browser")
      return app:acquire_token_popup(request)
    end)
end

local first = assert(get_token():await())
print(("1. %s for %s (from cache: %s)"):format(first.token_type, first.account.username, tostring(first.from_cache)))
local second = assert(get_token():await())
print(("2. %s for %s (from cache: %s)"):format(second.token_type, second.account.username, tostring(second.from_cache)))
assert(second.from_cache and second.access_token == first.access_token, "the second call should hit the cache")

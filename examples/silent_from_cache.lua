-- Silent acquisition from a token cache written by MSAL (msal-node,
-- msal-python or the Azure CLI write this format): list the accounts, then
-- get an access token for the first one with no network at all.
--
--   lua5.4 examples/silent_from_cache.lua [cache.json]
local msal = require("msal")

local path = arg[1] or "examples/cache.json"
local f = assert(io.open(path, "rb"))
local cache_json = f:read("*a")
f:close()

local app = msal.PublicClientApplication.new({
  auth = {
    client_id = "11111111-2222-3333-4444-555555555555",
    authority = "https://login.microsoftonline.com/common",
  },
})
app:get_token_cache():deserialize(cache_json)

local accounts = app:get_all_accounts()
for _, a in ipairs(accounts) do
  print(("account: %s (%s), tenant %s"):format(a.username, a.home_account_id, a.tenant_id))
end

local request = { scopes = { "User.Read" }, account = accounts[1] }
local result, err = app:acquire_token_silent(request):await()
if not result then
  if msal.is_interaction_required(err) then
    print("the cache cannot answer; an interactive flow would run now: " .. tostring(err))
  else
    print("error: " .. tostring(err))
  end
  os.exit(1)
end
print(("token for %s, from cache: %s, expires %s, scopes: %s"):format(
  result.account.username, tostring(result.from_cache), os.date("!%Y-%m-%d %H:%M:%SZ", result.expires_on),
  table.concat(result.scopes, " ")))
print("access token: " .. result.access_token:sub(1, 8) .. "…")

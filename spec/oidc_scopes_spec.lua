-- "One resource per request" is Entra's rule (#14 item 6): a generic OpenID
-- provider's scopes are not split into Microsoft resources, and no message
-- about them names Microsoft Graph.
local msal = require("msal")
local cjson = require("cjson")
local F = require("fixtures")

local function app(mode, authority)
  return msal.PublicClientApplication.new({
    auth = { client_id = F.CLIENT, authority = authority, protocol_mode = mode, redirect_uri = "http://localhost:8400/cb",
      authority_metadata = cjson.encode({ issuer = authority, token_endpoint = authority .. "/token",
        authorization_endpoint = authority .. "/authorize", device_authorization_endpoint = authority .. "/device" }) },
    system = { transport = require("fake_transport").new() },
  })
end

local MIXED = { "read:messages", "https://api.example.com/write" }

describe("scopes of a generic OpenID provider", function()
  it("are sent as asked, in one authorize request", function()
    local r = assert(app("oidc", "https://auth.example.com"):acquire_token_redirect({ scopes = MIXED }):await())
    local q = require("msal.network").form_decode(r.url:match("%?(.*)$"))
    assert.matches("read:messages https://api.example.com/write", q.scope, 1, true)
  end)

  it("reach the cache look-up and the device flow without a resource error", function()
    local a = app("oidc", "https://auth.example.com")
    local _, err = a:acquire_token_silent({ scopes = MIXED, account = { home_account_id = "x" } }):await()
    assert.are_not.equal("multiple_resources", err.error_code)
    _, err = a:acquire_token_by_device_code({ scopes = MIXED, device_code_callback = function() end }):await()
    assert.are_not.equal("multiple_resources", err and err.error_code)
    assert.is_nil(tostring(err and err.error_message):find("graph", 1, true))
  end)
end)

describe("scopes of two Entra resources", function()
  it("are still refused, naming both", function()
    local a = app(nil, "https://login.microsoftonline.com/" .. F.TENANT)
    local _, err = a:acquire_token_redirect({ scopes = { "User.Read", "https://vault.azure.net/user_impersonation" } })
      :await()
    assert.equal("multiple_resources", err.error_code)
    assert.matches("https://graph.microsoft.com and https://vault.azure.net", err.error_message, 1, true)
  end)
end)

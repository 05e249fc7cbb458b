-- examples/openresty as a user runs it: its nginx.conf and app.lua, only
-- the port and the paths to this tree changed, against the Entra-like
-- authority: a browser signs in by redirect and calls the downstream API
-- through /api/ with the token acquire_token_silent gives the app.
local entra = require("entra")
local nginx = require("nginx")
local network = require("msal.network")


local function example_conf() return nginx.example_conf("openresty", "127.0.0.1:8080") end

describe("examples/openresty #host", function()
  local srv

  setup(function()
    entra.reset()
    srv = nginx.start({ conf = example_conf(), env = {
      MSAL_CLIENT_ID = "lua-msal-example", MSAL_AUTHORITY = entra.base() .. "/" .. entra.TENANT,
      MSAL_API_URL = entra.base() .. "/oidc", MSAL_SCOPE = "User.Read",
      -- the app's public URL; the test's "browser" follows the redirect's
      -- path to the server it runs on
      MSAL_REDIRECT_URI = "http://localhost/auth/callback",
    } })
  end)

  teardown(function() if srv then srv:stop() end end)

  it("signs a browser in by redirect and calls the API with the user's token", function()
    local authorize, cookie, back = srv:sign_in()
    assert.truthy(authorize:find(entra.base(), 1, true), authorize)
    assert.truthy(cookie)
    -- the downstream API (the authority's userinfo) with the bearer token
    local status, body = srv:get("/api/userinfo", { cookie = cookie, accept = "application/json" })
    assert.equal(200, status, body)
    assert.truthy(body:find('"preferred_username"', 1, true), body)
    -- the same state cannot be redeemed twice
    status = srv:get(back)
    assert.equal(400, status)
  end)

  it("sends a browser without a session to /login", function()
    local status, _, headers = srv:get("/api/userinfo", { cookie = "msal_account=" .. network.url_encode("nobody.nowhere") })
    assert.equal(302, status)
    assert.truthy(headers.location:find("/login$"), headers.location)
  end)
end)

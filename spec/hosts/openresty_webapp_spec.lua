-- examples/openresty_webapp as a user runs it (only the port and the paths
-- to this tree changed), against the Entra-like authority: a confidential
-- web app signs a browser in with the code flow (PKCE and its secret),
-- then calls the downstream API with the user's token.
local entra = require("entra")
local nginx = require("nginx")
local network = require("msal.network")

local SECRET = "s3cret"

describe("examples/openresty_webapp #host", function()
  local srv

  setup(function()
    entra.reset()
    srv = nginx.start({ conf = nginx.example_conf("openresty_webapp", "127.0.0.1:8082"), env = {
      MSAL_CLIENT_ID = "lua-msal-confidential", MSAL_CLIENT_SECRET = SECRET,
      MSAL_AUTHORITY = entra.base() .. "/" .. entra.TENANT, MSAL_API_URL = entra.base() .. "/oidc",
      MSAL_SCOPE = "User.Read",
      -- the app's public URL; the test's "browser" follows the redirect's
      -- path to the server it runs on
      MSAL_REDIRECT_URI = "http://localhost/auth/callback",
    } })
  end)

  teardown(function()
    if srv then
      local log = srv:error_log()
      srv:stop()
      assert.falsy(log:find(SECRET, 1, true), "the secret is in nginx's error log")
    end
  end)

  it("signs a browser in with the code flow and its secret, then calls the API with the user's token", function()
    local authorize, cookie, back = srv:sign_in()
    local query = network.form_decode(authorize:match("%?(.*)$"))
    assert.equal("S256", query.code_challenge_method)
    assert.truthy(query.state and query.nonce and query.code_challenge)
    local form = entra.grant_forms("authorization_code")[1]
    assert.equal(SECRET, form.client_secret)
    assert.equal("lua-msal-confidential", form.client_id)
    assert.is_string(form.code_verifier)
    -- the downstream API (the authority's userinfo) with the bearer token
    local status, body = srv:get("/api/userinfo", { cookie = cookie, accept = "application/json" })
    assert.equal(200, status, body)
    assert.truthy(body:find('"preferred_username"', 1, true), body)
    -- a state is used once
    status, body = srv:get(back)
    assert.equal(400, status)
    assert.truthy(body:find("unknown_state", 1, true), body)
  end)

  it("refuses a callback with a state it did not issue, and sends a browser without a session to /login", function()
    local status, body = srv:get("/auth/callback?code=abc&state=forged")
    assert.equal(400, status)
    assert.truthy(body:find("unknown_state", 1, true), body)
    local headers
    status, _, headers = srv:get("/api/me")
    assert.equal(302, status)
    assert.truthy(headers.location:find("/login$"), headers.location)
  end)
end)

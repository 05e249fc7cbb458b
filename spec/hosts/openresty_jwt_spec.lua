-- examples/openresty_api as a user runs it (only the port and the paths to
-- this tree changed): access_by_lua protects /api/ with msal.jwt.verify
-- against the real oidc-provider's access tokens, inside nginx.
local nginx = require("nginx")

local API = "https://api.example.test"

local oidc = require("oidc").base

local function example_conf() return nginx.example_conf("openresty_api", "127.0.0.1:8081") end

local app_token = require("oidc").app_token

describe("examples/openresty_api #host", function()
  local srv, token

  setup(function()
    token = app_token("api.read")
    srv = nginx.start({ conf = example_conf(), env = {
      MSAL_AUTHORITY = oidc(), MSAL_PROTOCOL_MODE = "oidc", MSAL_AUDIENCE = API, MSAL_SCOPE = "api.read",
    } })
  end)
  teardown(function() if srv then srv:stop() end end)

  it("serves a request with a valid bearer token, and hands the handler its claims", function()
    for _ = 1, 5 do
      local status, body = srv:get("/api/hello", { authorization = "Bearer " .. token })
      assert.equal(200, status, body)
      assert.truthy(body:find('"client":"lua-msal-confidential"', 1, true), body)
      assert.truthy(body:find('"scopes":"api.read"', 1, true), body)
    end
  end)

  it("answers 401 without a token or with a bad one, 403 without the scope (RFC 6750)", function()
    local status, body, headers = srv:get("/api/hello")
    assert.equal(401, status, body)
    assert.equal('Bearer realm="api"', headers["www-authenticate"])
    local forged = token:gsub("[^.]*$", "AAAA")
    status, body, headers = srv:get("/api/hello", { authorization = "Bearer " .. forged })
    assert.equal(401, status, body)
    assert.truthy(headers["www-authenticate"]:find('error="invalid_token"', 1, true))
    assert.truthy(body:find("invalid_signature", 1, true), body)
    status, body = srv:get("/api/hello", { authorization = "Bearer not.a.jwt" })
    assert.equal(401, status, body)
    status, body, headers = srv:get("/api/hello", { authorization = "Bearer " .. app_token("api.write") })
    assert.equal(403, status, body)
    assert.truthy(headers["www-authenticate"]:find('error="insufficient_scope"', 1, true))
    -- the log says which check failed, never the token
    assert.truthy(srv:error_log():find("invalid_signature", 1, true))
    assert.falsy(srv:error_log():find(token:match("^[^.]*%.[^.]*"), 1, true))
  end)
end)

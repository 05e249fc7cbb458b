-- msal.openresty's ConfidentialClientApplication inside real nginx workers
-- (a daemon or an API calling another as itself): app tokens over
-- cosockets, kept in a lua_shared_dict, one client-credentials request for
-- many concurrent requests on two workers (the dictionary's refresh lock),
-- and a refused secret that leaves the cache as it was.
local cjson = require("cjson")
local entra = require("entra")
local nginx = require("nginx")

local CLIENT, SECRET = "lua-msal-confidential", "s3cret"

local function app_token_requests() return #entra.grant_forms("client_credentials") end

describe("msal.openresty ConfidentialClientApplication #host", function()
  local srv

  setup(function()
    srv = nginx.start_app({
      app = "cc_host_app",
      init = ("%q, %q, %q"):format(entra.base() .. "/" .. entra.TENANT, CLIENT, SECRET),
      http = [[
        lua_shared_dict cc_tokens 1m;
        lua_shared_dict cc_locks 1m;
      ]],
      server = [[
        location = /app_token { content_by_lua_block { require("cc_host_app").token() } }
      ]],
    })
  end)

  teardown(function()
    if srv then
      local log = srv:error_log()
      srv:stop()
      assert.falsy(log:find("lua entry thread aborted", 1, true), log)
      assert.falsy(log:find(SECRET, 1, true), "the secret is in nginx's error log")
    end
  end)

  before_each(function()
    entra.reset()
  end)

  -- first, on a worker that has not resolved the authority yet: there a
  -- rejection used to leave the request unanswered (promise.lua, body)
  it("answers a refused secret with ServerError invalid_client and caches nothing", function()
    entra.next({ endpoint = "token", canned = "invalid_client_secret" })
    local status, body = srv:get("/app_token?scope=api://second/.default")
    assert.equal(500, status, body)
    local doc = cjson.decode(body)
    assert.equal("ServerError", doc.name)
    assert.equal("invalid_client", doc.error)
    -- the next request asks again: nothing was cached by the failure
    status, body = srv:get("/app_token?scope=api://second/.default")
    assert.equal(200, status, body)
    assert.is_false(cjson.decode(body).from_cache)
    assert.equal(2, app_token_requests())
  end)

  it("makes one client-credentials request for 30 concurrent requests on two workers, then serves the cache", function()
    -- a slow authority: every worker needs the token while it is in flight
    entra.next({ endpoint = "token", when = { grant_type = "client_credentials" }, override = {}, delay_ms = 400,
      count = 100 })
    local docs, nworkers = srv:concurrent("/app_token?scope=api://first/.default", 30)
    assert.equal(2, nworkers, "the requests did not reach both workers")
    for _, d in ipairs(docs) do
      assert.equal(docs[1].access_token, d.access_token)
      assert.equal(entra.TENANT, d.tenant_id)
    end
    assert.equal(1, app_token_requests())
    local form = entra.grant_forms("client_credentials")[1]
    assert.equal(SECRET, form.client_secret)
    assert.equal("api://first/.default", form.scope)
    docs = srv:concurrent("/app_token?scope=api://first/.default", 10)
    for _, d in ipairs(docs) do
      assert.is_true(d.from_cache)
      assert.equal(docs[1].access_token, d.access_token)
    end
    assert.equal(1, app_token_requests())
  end)

end)

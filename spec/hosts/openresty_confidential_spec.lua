-- msal.openresty's ConfidentialClientApplication inside real nginx workers
-- (a daemon or an API calling another as itself): app tokens over
-- cosockets, kept in a lua_shared_dict, one client-credentials request for
-- many concurrent requests on two workers (the dictionary's refresh lock),
-- and a refused secret that leaves the cache as it was.
local cjson = require("cjson")
local Promise = require("msal.promise")
local entra = require("entra")
local nginx = require("nginx")

local CLIENT, SECRET = "lua-msal-confidential", "s3cret"

local function app_token_requests()
  local n = 0
  for _, r in ipairs(entra.requests("token")) do
    if r.form and r.form.grant_type == "client_credentials" then n = n + 1 end
  end
  return n
end

describe("msal.openresty ConfidentialClientApplication #host", function()
  local srv
  local http = require("msal.transport.curl").new()

  setup(function()
    local app_dir = os.getenv("MSAL_TEST_ROOT") .. "/spec/support/openresty"
    srv = nginx.start({
      workers = 2,
      reuseport = true,
      http = ([[
        lua_shared_dict cc_tokens 1m;
        lua_shared_dict cc_locks 1m;
        init_worker_by_lua_block {
          package.path = "%s/?.lua;" .. package.path
          require("cc_host_app").init("%s", "%s", "%s")
        }
      ]]):format(app_dir, entra.base() .. "/" .. entra.TENANT, CLIENT, SECRET),
      server = [[
        location = /app_token { content_by_lua_block { require("cc_host_app").token() } }
      ]],
    })
  end)

  teardown(function()
    http:close()
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

  -- n requests at once, each on its own connection so that they spread
  -- over the workers; their decoded bodies and the workers that answered
  local function concurrent(path, n)
    local list = {}
    for i = 1, n do
      list[i] = http:send({ url = srv.base .. path, headers = { connection = "close" }, timeout_ms = 20000 })
    end
    local all = assert(Promise.all(list):await())
    local docs, workers = {}, {}
    for i, res in ipairs(all) do
      assert.equal(200, res.status, res.body)
      docs[i] = cjson.decode(res.body)
      workers[res.headers["x-worker"]] = true
    end
    return docs, workers
  end

  it("makes one client-credentials request for 30 concurrent requests on two workers, then serves the cache", function()
    -- a slow authority: every worker needs the token while it is in flight
    entra.next({ endpoint = "token", when = { grant_type = "client_credentials" }, override = {}, delay_ms = 400,
      count = 100 })
    local docs, workers = concurrent("/app_token?scope=api://first/.default", 30)
    local n = 0
    for _ in pairs(workers) do n = n + 1 end
    assert.equal(2, n, "the requests did not reach both workers")
    for _, d in ipairs(docs) do
      assert.equal(docs[1].access_token, d.access_token)
      assert.equal(entra.TENANT, d.tenant_id)
    end
    assert.equal(1, app_token_requests())
    local form = entra.requests("token")[1].form
    assert.equal(SECRET, form.client_secret)
    assert.equal("api://first/.default", form.scope)
    docs = concurrent("/app_token?scope=api://first/.default", 10)
    for _, d in ipairs(docs) do
      assert.is_true(d.from_cache)
      assert.equal(docs[1].access_token, d.access_token)
    end
    assert.equal(1, app_token_requests())
  end)

  it("answers a refused secret with ServerError invalid_client and caches nothing", function()
    entra.next({ endpoint = "token", canned = "invalid_client_secret" })
    local status, body = srv:get("/app_token?scope=api://second/.default")
    assert.equal(500, status)
    local doc = cjson.decode(body)
    assert.equal("ServerError", doc.name)
    assert.equal("invalid_client", doc.error)
    -- the next request asks again: nothing was cached by the failure
    status, body = srv:get("/app_token?scope=api://second/.default")
    assert.equal(200, status, body)
    assert.is_false(cjson.decode(body).from_cache)
    assert.equal(2, app_token_requests())
  end)
end)

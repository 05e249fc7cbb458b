-- msal.openresty's ManagedIdentityApplication inside a real nginx worker:
-- IMDS with retries (the delays are nginx timers, the requests cosockets),
-- the cache (a shared dictionary, the realm's partition), one request for
-- concurrent handlers on two workers, and Azure Arc's challenge, against
-- spec/support/mi_server.py.
local cjson = require("cjson")
local nginx = require("nginx")
local proc = require("proc")
local files = require("files")
local mi_fake = require("mi_fake")

describe("msal.openresty ManagedIdentityApplication #host", function()
  local srv, fake, dir, rmdir

  setup(function()
    fake = mi_fake.start()
    dir, rmdir = proc.tempdir()
    -- the workers run as nobody when nginx starts as root: as the himds
    -- group on an Arc machine, they must be able to read the key
    proc.run("chmod 755 " .. proc.quote(dir), { plain = true })
    srv = nginx.start_app({
      app = "mi_host_app",
      init = ("%q, %q"):format(fake.url, dir),
      http = [[
        lua_shared_dict mi_tokens 1m;
        lua_shared_dict mi_locks 1m;
      ]],
      server = [[
        location = /mi { content_by_lua_block { require("mi_host_app").token() } }
        location = /dict { content_by_lua_block {
          ngx.say(ngx.shared.mi_tokens:get("msal:system_assigned_managed_identity:managed_identity") or "")
        } }
      ]],
    })
  end)

  teardown(function()
    if srv then
      local log = srv:error_log()
      srv:stop()
      assert.falsy(log:find("lua entry thread aborted", 1, true), log)
    end
    if fake then fake:stop() end
    if rmdir then rmdir() end
  end)

  local function get(path)
    local status, body = srv:get(path)
    return status, cjson.decode(body)
  end

  it("gets an IMDS token after two 503s, then serves it from the cache", function()
    fake:reset()
    fake:script({ { status = 503, json = {} }, { status = 503, json = {} } })
    local status, doc = get("/mi?source=imds")
    assert.are.equal(200, status, cjson.encode(doc))
    assert.are.equal("tok-1", doc.access_token)
    assert.is_false(doc.from_cache)
    status, doc = get("/mi?source=imds")
    assert.are.equal(200, status)
    assert.is_true(doc.from_cache)
    assert.are.equal(3, #fake:log())
    status, doc = get("/mi?source=imds&force=1")
    assert.are.equal("tok-2", doc.access_token)
    local status2, body = srv:get("/dict")
    assert.are.equal(200, status2)
    assert.matches('"realm":"managed_identity"', body, 1, true)
  end)

  it("makes one request for 20 concurrent handlers on two workers that need the same token", function()
    fake:reset()
    local resource = "https://storage.azure.com"
    fake:script({ { delay_ms = 500, json = { access_token = "slow-token", expires_on = tostring(os.time() + 86400),
      resource = resource, token_type = "Bearer" } } })
    local docs, n = srv:concurrent("/mi?source=imds&resource=" .. resource, 20)
    for _, d in ipairs(docs) do assert.are.equal("slow-token", d.access_token) end
    assert.are.equal(2, n, "the requests did not reach both workers")
    assert.are.equal(1, #fake:log())
  end)

  it("answers Azure Arc's challenge from the worker, and refuses a forged one", function()
    files.write(dir .. "/agent.key", "arc-worker-secret")
    proc.run("chmod 644 " .. proc.quote(dir .. "/agent.key"), { plain = true })
    fake:reset({ arc_realm = dir .. "/agent.key", arc_secret = "arc-worker-secret" })
    local status, doc = get("/mi?source=arc")
    assert.are.equal(200, status, cjson.encode(doc))
    assert.are.equal("tok-1", doc.access_token)
    assert.are.equal("Basic arc-worker-secret", fake:log()[2].headers.authorization)
    fake:reset({ arc_realm = "/etc/shadow.key" })
    status, doc = get("/mi?source=arc&force=1")
    assert.are.equal(500, status)
    assert.are.same({ name = "ManagedIdentityError", error = "invalid_file_path", source = "AzureArc" }, doc)
  end)
end)

--- ManagedIdentityApplication against a fake of every managed identity
-- source on 127.0.0.1 (spec/support/mi_server.py, started and stopped
-- here): the requests each source takes, Azure Arc's challenge, IMDS's
-- retries, the cache, and the configuration and request checks.
local cjson = require("cjson")
local msal = require("msal")
local core = require("msal.core")
local retry = require("msal.managed_identity.retry")
local mi_fake = require("mi_fake")
local proc = require("proc")
local files = require("files")

local VAULT = "https://vault.azure.net"

describe("ManagedIdentityApplication", function()
  local srv, dir, rmdir
  local saved_delays

  local function reset(opts) srv:reset(opts) end
  local function script(list) srv:script(list) end
  local function log() return srv:log() end

  local function app(env, mi, system)
    system = system or {}
    system.env = env
    return msal.ManagedIdentityApplication.new({ managed_identity = mi, system = system })
  end
  local function imds_env() return { AZURE_POD_IDENTITY_AUTHORITY_HOST = srv.url } end

  -- The rejection of a promise that must reject.
  local function rejection(p)
    local v, err = p:await()
    assert.is_nil(v, "the promise was fulfilled")
    assert.is_table(err)
    return err
  end

  setup(function()
    srv = mi_fake.start()
    dir, rmdir = proc.tempdir()
    saved_delays = retry.delays
    -- MSAL's delays are seconds long; the policy is the same at 1/100
    retry.delays = { imds_min = 10, imds_max = 40, imds_delta = 20, imds_gone = 30, default = 10 }
  end)

  teardown(function()
    retry.delays = saved_delays
    if srv then srv:stop() end
    if rmdir then rmdir() end
  end)

  before_each(function() reset() end)

  describe("IMDS (the default source)", function()
    it("asks IMDS with Metadata: true and api-version 2018-02-01, then serves the cache", function()
      local a = app(imds_env())
      assert.are.equal("DefaultToImds", a:get_managed_identity_source())
      local r = a:acquire_token({ resource = VAULT .. "/.default" }):await()
      assert.are.equal("tok-1", r.access_token)
      assert.is_false(r.from_cache)
      assert.are.equal("Bearer", r.token_type)
      assert.are.same({ VAULT }, r.scopes)
      local l = log()
      assert.are.equal(1, #l)
      assert.are.equal("GET", l[1].method)
      assert.are.equal("/metadata/identity/oauth2/token", l[1].path)
      assert.are.same({ ["api-version"] = "2018-02-01", resource = VAULT }, l[1].query)
      assert.are.equal("true", l[1].headers.metadata)
      assert.is_string(l[1].headers["x-ms-client-request-id"])
      assert.are.equal("lua-msal", l[1].headers["x-client-sku"])

      local again = a:acquire_token({ resource = VAULT }):await()
      assert.are.equal("tok-1", again.access_token)
      assert.is_true(again.from_cache)
      assert.are.equal(1, #log(), "a cached token makes no request")

      local forced = a:acquire_token({ resource = VAULT, force_refresh = true }):await()
      assert.are.equal("tok-2", forced.access_token)
      assert.is_false(forced.from_cache)
      assert.are.equal(2, #log())
    end)

    it("retries 503 twice with backoff, then takes the token", function()
      script({ { status = 503, json = { error = "busy" } }, { status = 503, json = { error = "busy" } } })
      local r = app(imds_env()):acquire_token({ resource = VAULT }):await()
      assert.are.equal("tok-1", r.access_token)
      assert.are.equal(3, #log())
    end)

    it("gives up after three retries of 429: a ServerError naming IMDS", function()
      local answers = {}
      for i = 1, 5 do answers[i] = { status = 429, json = { error = "too_many_requests", error_description = "slow down" } } end
      script(answers)
      local err = rejection(app(imds_env()):acquire_token({ resource = VAULT }))
      assert.are.equal("ServerError", err.name)
      assert.are.equal("too_many_requests", err.error_code)
      assert.are.equal("Imds", err.source)
      assert.are.equal(429, err.status)
      assert.matches("slow down", err.error_message, 1, true)
      assert.are.equal(4, #log(), "one request and three retries")
    end)

    it("retries 410 (IMDS updating) up to seven times", function()
      local answers = {}
      for i = 1, 9 do answers[i] = { status = 410, body = "gone" } end
      script(answers)
      local err = rejection(app(imds_env()):acquire_token({ resource = VAULT }))
      assert.are.equal(410, err.status)
      assert.are.equal(8, #log())
    end)

    it("does not retry a 400, and makes no retry when internal retries are off", function()
      script({ { status = 400, json = { error = "invalid_request", error_description = "Identity not found" } } })
      local err = rejection(app(imds_env()):acquire_token({ resource = VAULT }))
      assert.are.equal("invalid_request", err.error_code)
      assert.are.equal(1, #log())
      reset()
      script({ { status = 503, json = {} } })
      err = rejection(app(imds_env(), nil, { disable_internal_retries = true }):acquire_token({ resource = VAULT }))
      assert.are.equal(503, err.status)
      assert.are.equal(1, #log())
    end)

    it("sends each user-assigned id under IMDS's parameter names", function()
      local cases = {
        { { user_assigned_client_id = "cid-1" }, "client_id", "cid-1" },
        { { user_assigned_object_id = "oid-1" }, "object_id", "oid-1" },
        { { user_assigned_resource_id = "/subscriptions/s/rg/r" }, "msi_res_id", "/subscriptions/s/rg/r" },
      }
      for _, c in ipairs(cases) do
        reset()
        app(imds_env(), c[1]):acquire_token({ resource = VAULT }):await()
        assert.are.equal(c[3], log()[1].query[c[2]])
      end
    end)

    it("caches as MSAL does: no account, the identity as client_id, realm managed_identity", function()
      local a = app(imds_env(), { user_assigned_client_id = "cid-1" })
      a:acquire_token({ resource = VAULT }):await()
      local doc = cjson.decode(a:get_token_cache():serialize())
      local key, at = next(doc.AccessToken)
      assert.is_string(key)
      assert.are.equal("", at.home_account_id)
      assert.are.equal("login.microsoftonline.com", at.environment)
      assert.are.equal("cid-1", at.client_id)
      assert.are.equal("managed_identity", at.realm)
      assert.are.equal(VAULT, at.target)
      assert.are.equal("AccessToken", at.credential_type)
      assert.is_nil(next(doc.AccessToken, key))
      local sys = app(imds_env())
      sys:acquire_token({ resource = VAULT }):await()
      local _, at2 = next(cjson.decode(sys:get_token_cache():serialize()).AccessToken)
      assert.are.equal("system_assigned_managed_identity", at2.client_id)
    end)

    it("refreshes past refresh_on (half a lifetime over two hours) and serves the cached token if that fails", function()
      local skew = 0
      local a = app(imds_env(), nil, { clock = function() return os.time() + skew end })
      local r = a:acquire_token({ resource = VAULT }):await()
      assert.is_near(r.expires_on - 43200, r.refresh_on, 2)
      skew = 43300
      local fresh = a:acquire_token({ resource = VAULT }):await()
      assert.are.equal("tok-2", fresh.access_token)
      assert.are.equal(2, #log())
      -- the new token's refresh_on: half of what was left (86400 - 43300)
      -- after its request; past it, before expiry, with IMDS down
      assert.is_near(os.time() + 43300 + 21550, fresh.refresh_on, 2)
      skew = 70000
      script({ { status = 400, json = { error = "down" } } })
      local served = a:acquire_token({ resource = VAULT }):await()
      assert.are.equal("tok-2", served.access_token)
      assert.is_true(served.from_cache)
      assert.are.equal(3, #log())
    end)

    it("has no refresh_on for a lifetime under two hours, and asks again near expiry", function()
      reset({ expires_in = 3600, expires_format = "iso" })
      local skew = 0
      local a = app(imds_env(), nil, { clock = function() return os.time() + skew end })
      local r = a:acquire_token({ resource = VAULT }):await()
      assert.is_nil(r.refresh_on)
      assert.is_near(os.time() + 3600, r.expires_on, 2)
      skew = 3600 - 200 -- within the 5 minutes' renewal offset
      assert.are.equal("tok-2", a:acquire_token({ resource = VAULT }):await().access_token)
    end)

    it("shares one request among callers of the same resource", function()
      local a = app(imds_env())
      local p1 = a:acquire_token({ resource = VAULT })
      local p2 = a:acquire_token({ resource = VAULT })
      assert.are.equal(p1:await().access_token, p2:await().access_token)
      assert.are.equal(1, #log())
    end)

    it("reports an unreachable endpoint as a network error naming the source", function()
      local a = app({ AZURE_POD_IDENTITY_AUTHORITY_HOST = "http://127.0.0.1:" .. proc.dead_pid() % 20000 + 40000 })
      local err = rejection(a:acquire_token({ resource = VAULT }))
      assert.are.equal("ClientAuthError", err.name)
      assert.are.equal("network_error", err.error_code)
      assert.are.equal("Imds", err.source)
    end)

    it("reads expires_on as ISO 8601 with fractions and offsets, independent of the local time zone", function()
      local iso = require("msal.managed_identity.response").iso8601
      assert.are.equal(1714550400, iso("2024-05-01T10:00:00.123+02:00"))
      assert.are.equal(1714550400, iso("2024-05-01T08:00:00Z"))
      assert.are.equal(946684799, iso("1999-12-31T23:59:59"))
      assert.is_nil(iso("2024-05-01"))
      assert.is_nil(iso("2024-05-01T08:00:00 GMT"))
    end)

    it("refuses an answer without a usable lifetime", function()
      script({ { json = { access_token = "x", expires_on = "next tuesday" } } })
      local err = rejection(app(imds_env()):acquire_token({ resource = VAULT }))
      assert.are.equal("invalid_response", err.error_code)
      assert.are.equal("Imds", err.source)
    end)
  end)

  describe("App Service", function()
    local function env()
      return { IDENTITY_ENDPOINT = srv.url .. "/msi/token", IDENTITY_HEADER = "app-service-secret" }
    end

    it("sends X-IDENTITY-HEADER and api-version 2019-08-01", function()
      local a = app(env())
      assert.are.equal("AppService", a:get_managed_identity_source())
      assert.are.equal("tok-1", a:acquire_token({ resource = VAULT }):await().access_token)
      local l = log()
      assert.are.equal("/msi/token", l[1].path)
      assert.are.equal("app-service-secret", l[1].headers["x-identity-header"])
      assert.are.same({ ["api-version"] = "2019-08-01", resource = VAULT }, l[1].query)
    end)

    it("names user-assigned ids client_id, object_id and mi_res_id", function()
      local cases = {
        { { user_assigned_client_id = "c" }, "client_id" }, { { user_assigned_object_id = "o" }, "object_id" },
        { { user_assigned_resource_id = "r" }, "mi_res_id" },
      }
      for _, c in ipairs(cases) do
        reset()
        app(env(), c[1]):acquire_token({ resource = VAULT }):await()
        local _, id = next(c[1])
        assert.are.equal(id, log()[1].query[c[2]])
      end
    end)

    it("retries a 500 once a second by default (MSAL's default policy) and reads App Service's error shape", function()
      script({ { status = 500, json = {} }, { status = 500, json = {} }, { status = 500, json = {} },
        { status = 500, json = { error = { code = "Unavailable", message = "try later" } } } })
      local err = rejection(app(env()):acquire_token({ resource = VAULT }))
      assert.are.equal("Unavailable", err.error_code)
      assert.are.equal("AppService", err.source)
      assert.matches("try later", err.error_message, 1, true)
      assert.are.equal(4, #log())
    end)

    it("refuses a malformed IDENTITY_ENDPOINT with a typed error", function()
      local err = rejection(app({ IDENTITY_ENDPOINT = "not a url", IDENTITY_HEADER = "h" }):acquire_token({ resource = VAULT }))
      assert.are.equal("ManagedIdentityError", err.name)
      assert.are.equal(msal.ManagedIdentityError("x").name, err.name)
      assert.are.equal("identity_endpoint_url_malformed", err.error_code)
      assert.are.equal("AppService", err.source)
    end)
  end)

  describe("Service Fabric", function()
    local function env()
      return { IDENTITY_ENDPOINT = srv.url .. "/sf", IDENTITY_HEADER = "sf-secret", IDENTITY_SERVER_THUMBPRINT = "AB12" }
    end

    it("comes before App Service, sends the secret header and api-version 2019-07-01-preview", function()
      local a = app(env(), { user_assigned_resource_id = "r" })
      assert.are.equal("ServiceFabric", a:get_managed_identity_source())
      a:acquire_token({ resource = VAULT }):await()
      local l = log()
      assert.are.equal("sf-secret", l[1].headers.secret)
      assert.are.equal("2019-07-01-preview", l[1].query["api-version"])
      assert.are.equal("r", l[1].query.mi_res_id)
    end)

    it("sends the refused token's hash with a claims challenge", function()
      local a = app(env())
      local first = a:acquire_token({ resource = VAULT }):await()
      local r = a:acquire_token({ resource = VAULT, claims = '{"access_token":{"xms_cc":{"values":["cp1"]}}}' }):await()
      assert.are.equal("tok-2", r.access_token)
      local l = log()
      assert.are.equal(2, #l)
      assert.are.equal(core.crypto.sha256_hex(first.access_token), l[2].query.token_sha256_to_refresh)
      assert.is_nil(l[1].query.token_sha256_to_refresh)
    end)
  end)

  describe("Cloud Shell", function()
    it("POSTs the resource as a form with Metadata: true", function()
      local a = app({ MSI_ENDPOINT = srv.url .. "/cloudshell" })
      assert.are.equal("CloudShell", a:get_managed_identity_source())
      assert.are.equal("tok-1", a:acquire_token({ resource = VAULT }):await().access_token)
      local l = log()
      assert.are.equal("POST", l[1].method)
      assert.are.equal(VAULT, l[1].form.resource)
      assert.are.equal("true", l[1].headers.metadata)
      assert.is_nil(next(l[1].query))
    end)

    it("refuses a user-assigned identity without a request", function()
      local err = rejection(app({ MSI_ENDPOINT = srv.url .. "/cloudshell" }, { user_assigned_client_id = "c" })
        :acquire_token({ resource = VAULT }))
      assert.are.equal("ManagedIdentityError", err.name)
      assert.are.equal("unable_to_create_cloud_shell", err.error_code)
      assert.are.equal("CloudShell", err.source)
      assert.are.equal(0, #log())
    end)
  end)

  describe("Machine Learning", function()
    local function env()
      return { MSI_ENDPOINT = srv.url .. "/ml", MSI_SECRET = "ml-secret", DEFAULT_IDENTITY_CLIENT_ID = "ml-default" }
    end

    it("uses the 2017 API: secret header, clientid (the platform's for system-assigned)", function()
      local a = app(env())
      assert.are.equal("MachineLearning", a:get_managed_identity_source())
      a:acquire_token({ resource = VAULT }):await()
      app(env(), { user_assigned_client_id = "mine" }):acquire_token({ resource = VAULT }):await()
      local l = log()
      assert.are.equal("ml-secret", l[1].headers.secret)
      assert.are.equal("2017-09-01", l[1].query["api-version"])
      assert.are.equal("ml-default", l[1].query.clientid)
      assert.are.equal("mine", l[2].query.clientid)
    end)

    it("refuses object and resource ids", function()
      local err = rejection(app(env(), { user_assigned_object_id = "o" }):acquire_token({ resource = VAULT }))
      assert.are.equal("invalid_managed_identity_id_type", err.error_code)
      assert.are.equal("MachineLearning", err.source)
    end)
  end)

  describe("Azure Arc", function()
    local SECRET = "arc-key-0123456789"
    local function env() return { IDENTITY_ENDPOINT = srv.url .. "/arc/token", IMDS_ENDPOINT = srv.url } end
    local function arc_app(mi, system)
      system = system or {}
      system.arc_token_dir = dir
      return app(env(), mi, system)
    end

    it("answers the challenge with the key file's content", function()
      files.write(dir .. "/agent.key", SECRET)
      reset({ arc_realm = dir .. "/agent.key", arc_secret = SECRET })
      local a = arc_app()
      assert.are.equal("AzureArc", a:get_managed_identity_source())
      local r = a:acquire_token({ resource = VAULT }):await()
      assert.are.equal("tok-1", r.access_token)
      local l = log()
      assert.are.equal(2, #l)
      assert.is_nil(l[1].headers.authorization)
      assert.are.equal("Basic " .. SECRET, l[2].headers.authorization)
      assert.are.equal("true", l[1].headers.metadata)
      assert.are.same({ ["api-version"] = "2020-06-01", resource = VAULT }, l[2].query)
      assert.is_true(a:acquire_token({ resource = VAULT }):await().from_cache)
      assert.are.equal(2, #log())
    end)

    it("refuses a key file outside the agent's directory", function()
      local other, rm_other = proc.tempdir()
      files.write(other .. "/agent.key", SECRET)
      reset({ arc_realm = other .. "/agent.key", arc_secret = SECRET })
      local err = rejection(arc_app():acquire_token({ resource = VAULT }))
      rm_other()
      assert.are.equal("ManagedIdentityError", err.name)
      assert.are.equal("invalid_file_path", err.error_code)
      assert.are.equal("AzureArc", err.source)
      assert.are.equal(1, #log(), "the secret was not sent anywhere")
    end)

    it("refuses a path that climbs out of the directory, and a file that is not .key", function()
      files.write(dir .. "/agent.key", SECRET)
      reset({ arc_realm = dir .. "/../" .. dir:match("[^/]+$") .. "/agent.key", arc_secret = SECRET })
      assert.are.equal("invalid_file_path", rejection(arc_app():acquire_token({ resource = VAULT })).error_code)
      files.write(dir .. "/agent.txt", SECRET)
      reset({ arc_realm = dir .. "/agent.txt", arc_secret = SECRET })
      assert.are.equal("invalid_file_extension", rejection(arc_app():acquire_token({ resource = VAULT })).error_code)
    end)

    it("refuses a key file over 4096 bytes", function()
      files.write(dir .. "/big.key", ("k"):rep(4097))
      reset({ arc_realm = dir .. "/big.key", arc_secret = "k" })
      local err = rejection(arc_app():acquire_token({ resource = VAULT }))
      assert.are.equal("invalid_secret", err.error_code)
      assert.are.equal(1, #log())
    end)

    it("refuses a 401 without WWW-Authenticate, and a missing key file", function()
      script({ { status = 401, json = {} } })
      local err = rejection(arc_app():acquire_token({ resource = VAULT }))
      assert.are.equal("www_authenticate_header_missing", err.error_code)
      reset({ arc_realm = dir .. "/absent.key" })
      err = rejection(arc_app():acquire_token({ resource = VAULT }))
      assert.are.equal("unable_to_read_secret_file", err.error_code)
    end)

    it("forwards a user-assigned id and fails closed when the agent does not echo it", function()
      files.write(dir .. "/agent.key", SECRET)
      reset({ arc_realm = dir .. "/agent.key", arc_secret = SECRET })
      local err = rejection(arc_app({ user_assigned_resource_id = "/sub/x/rg/id" }):acquire_token({ resource = VAULT }))
      assert.are.equal("user_assigned_managed_identity_not_confirmed", err.error_code)
      assert.are.equal("/sub/x/rg/id", log()[2].query.msi_res_id)
      reset({ arc_realm = dir .. "/agent.key", arc_secret = SECRET, echo = true })
      local r = arc_app({ user_assigned_client_id = "cid-9" }):acquire_token({ resource = VAULT }):await()
      assert.are.equal("tok-1", r.access_token)
    end)

    it("is detected by the agent's presence when no variable names it", function()
      local himds = dir .. "/himds"
      files.write(himds, "")
      assert.are.equal("AzureArc", app({}, nil, { arc_himds_path = himds }):get_managed_identity_source())
      assert.are.equal("DefaultToImds", app({}, nil, { arc_himds_path = dir .. "/absent" }):get_managed_identity_source())
    end)
  end)

  describe("beside msal-node", function()
    -- msal-node's request to the same fake endpoint, for one case
    local function node_request(env, id, caps)
      reset()
      local arg = cjson.encode({ env = env, id = id, caps = caps, resource = VAULT })
      local out, code, err = proc.run("node " .. proc.quote((os.getenv("MSAL_TEST_ROOT") or ".")
        .. "/spec/support/node/mi_peer.js") .. " " .. proc.quote(arg), { plain = true })
      assert.are.equal(0, code, err)
      local doc = cjson.decode(out)
      assert.are.equal("tok-1", doc.accessToken, out)
      return log()[1]
    end
    local function our_request(env, mi, caps)
      reset()
      msal.ManagedIdentityApplication.new({ managed_identity = mi, client_capabilities = caps, system = { env = env } })
        :acquire_token({ resource = VAULT }):await()
      return log()[1]
    end
    local NODE_ID = { user_assigned_client_id = "userAssignedClientId",
      user_assigned_resource_id = "userAssignedResourceId", user_assigned_object_id = "userAssignedObjectId" }

    it("sends the request msal-node sends, for each source and kind of id", function()
      local cases = {
        { "IMDS", imds_env() },
        { "IMDS", imds_env(), { user_assigned_client_id = "c-1" } },
        { "IMDS", imds_env(), { user_assigned_resource_id = "/subscriptions/s/r" } },
        { "IMDS", imds_env(), { user_assigned_object_id = "o-1" } },
        { "AppService", { IDENTITY_ENDPOINT = srv.url .. "/as", IDENTITY_HEADER = "h" } },
        { "AppService", { IDENTITY_ENDPOINT = srv.url .. "/as", IDENTITY_HEADER = "h" }, { user_assigned_resource_id = "r" } },
        { "ServiceFabric", { IDENTITY_ENDPOINT = srv.url .. "/sf", IDENTITY_HEADER = "h", IDENTITY_SERVER_THUMBPRINT = "t" },
          { user_assigned_client_id = "c-2" } },
        { "CloudShell", { MSI_ENDPOINT = srv.url .. "/cs" } },
        { "MachineLearning", { MSI_ENDPOINT = srv.url .. "/ml", MSI_SECRET = "s", DEFAULT_IDENTITY_CLIENT_ID = "d" } },
        { "IMDS", imds_env(), nil, { "cp1", "cp2" } },
        { "CloudShell", { MSI_ENDPOINT = srv.url .. "/cs" }, nil, { "cp1" } },
      }
      for _, c in ipairs(cases) do
        local name, env, mi, caps = c[1], c[2], c[3], c[4]
        local node_id
        if mi then
          local k, v = next(mi)
          node_id = { [NODE_ID[k]] = v }
        end
        local theirs, ours = node_request(env, node_id, caps), our_request(env, mi, caps)
        local what = name .. " " .. cjson.encode(mi or {}) .. " " .. cjson.encode(caps or {})
        assert.are.equal(theirs.method, ours.method, what)
        -- msal-node canonicalizes AZURE_POD_IDENTITY_AUTHORITY_HOST's URL
        -- with a trailing slash (UrlString); the endpoint takes either
        assert.are.equal((theirs.path:gsub("/$", "")), ours.path, what)
        assert.are.same(theirs.query, ours.query, what)
        assert.are.same(theirs.form, ours.form, what)
        if caps then assert.are.equal(table.concat(caps, ","), ours.query.xms_cc, what) end
        for _, h in ipairs({ "metadata", "x-identity-header", "secret", "authorization", "content-type" }) do
          assert.are.equal(theirs.headers[h], ours.headers[h], what .. ": header " .. h)
        end
      end
    end)
  end)

  describe("logs", function()
    it("never carry the token, the secret header nor Arc's key", function()
      local lines = {}
      local system = { logger = { level = "trace", pii = true, sink = function(_, m) lines[#lines + 1] = m end } }
      files.write(dir .. "/agent.key", "arc-secret-xyz")
      reset({ arc_realm = dir .. "/agent.key", arc_secret = "arc-secret-xyz" })
      system.arc_token_dir = dir
      local r = app({ IDENTITY_ENDPOINT = srv.url .. "/arc/t", IMDS_ENDPOINT = srv.url }, nil, system)
        :acquire_token({ resource = VAULT }):await()
      reset()
      script({ { status = 503, json = {} } })
      local r2 = app({ IDENTITY_ENDPOINT = srv.url .. "/as", IDENTITY_HEADER = "hdr-secret-abc" }, nil,
        { logger = system.logger }):acquire_token({ resource = VAULT }):await()
      assert.is_true(#lines > 0)
      local all = table.concat(lines, "\n")
      for _, secret in ipairs({ r.access_token, r2.access_token, "arc-secret-xyz", "hdr-secret-abc" }) do
        assert.is_nil(all:find(secret, 1, true), "a log line carries " .. secret)
      end
      assert.is_nil(tostring(r):find(r.access_token, 1, true))
    end)
  end)

  describe("configuration and requests", function()
    local function config_error(cfg)
      local ok, err = pcall(msal.ManagedIdentityApplication.new, cfg)
      assert.is_false(ok)
      assert.are.equal("ClientConfigurationError", err.name)
      return err
    end

    it("takes no configuration (system-assigned) and one user-assigned id", function()
      assert.is_table(msal.ManagedIdentityApplication.new())
      assert.is_table(msal.ManagedIdentityApplication.new({ managed_identity = { user_assigned_object_id = "o" } }))
    end)

    it("refuses two ids, empty ids, unknown keys and wrong types", function()
      assert.are.equal("invalid_managed_identity_id_type", config_error({ managed_identity =
        { user_assigned_client_id = "a", user_assigned_resource_id = "b" } }).error_code)
      assert.are.equal("invalid_managed_identity_id", config_error({ managed_identity =
        { user_assigned_client_id = "" } }).error_code)
      assert.matches("managed_identity.client_id", config_error({ managed_identity = { client_id = "a" } }).error_message, 1, true)
      assert.matches("auth", config_error({ auth = { client_id = "a" } }).error_message, 1, true)
      assert.matches("system.env", config_error({ system = { env = "x" } }).error_message, 1, true)
      config_error({ system = { env = { IDENTITY_ENDPOINT = 1 } } })
      config_error({ cache = { location = "nowhere" } })
      config_error({ client_capabilities = "cp1" })
      config_error({ client_capabilities = { cp1 = true } })
      config_error("system-assigned")
    end)

    it("checks request tables strictly", function()
      local a = app(imds_env())
      local err = rejection(a:acquire_token({ resource = VAULT, forceRefresh = true }))
      assert.are.equal("ClientConfigurationError", err.name)
      assert.matches("force_refresh", err.error_message, 1, true)
      assert.are.equal("ClientConfigurationError", rejection(a:acquire_token({ resource = 5 })).name)
      assert.are.equal("url_empty_error", rejection(a:acquire_token({})).error_code)
      assert.are.equal("url_empty_error", rejection(a:acquire_token()).error_code)
      assert.are.equal("ClientConfigurationError", rejection(a:acquire_token({ scopes = { VAULT } })).name)
      assert.are.equal(0, #log())
    end)

    it("reads the process environment: examples/managed_identity.lua", function()
      -- only this variable names a source, whatever the test runner's environment holds
      local unset = " -u IDENTITY_ENDPOINT -u IDENTITY_HEADER -u IDENTITY_SERVER_THUMBPRINT -u IMDS_ENDPOINT -u MSI_ENDPOINT"
      local out, code = proc.sh(("env" .. unset .. " AZURE_POD_IDENTITY_AUTHORITY_HOST=%s %s examples/managed_identity.lua %s cid-7")
        :format(proc.quote(srv.url), proc.LUA, VAULT), { dir = os.getenv("MSAL_TEST_ROOT") or "." })
      assert.are.equal(0, code, out)
      assert.matches("source: DefaultToImds", out, 1, true)
      assert.matches("round 1: Bearer token for " .. VAULT .. ", from cache: false", out, 1, true)
      assert.matches("round 2: Bearer token for " .. VAULT .. ", from cache: true", out, 1, true)
      assert.is_nil(out:find("tok-1", 1, true), "the example prints no token")
      local l = log()
      assert.are.equal(1, #l)
      assert.are.equal("cid-7", l[1].query.client_id)
    end)

    it("keeps tokens in a file cache another process can read", function()
      local path = dir .. "/mi-cache.json"
      local a = msal.ManagedIdentityApplication.new({ cache = { location = "file", path = path }, system = { env = imds_env() } })
      a:acquire_token({ resource = VAULT }):await()
      local b = msal.ManagedIdentityApplication.new({ cache = { location = "file", path = path }, system = { env = imds_env() } })
      assert.is_true(b:acquire_token({ resource = VAULT }):await().from_cache)
      assert.are.equal(1, #log())
    end)
  end)
end)
